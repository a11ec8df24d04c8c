"""Drift checks and their stored reports."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from appliance.api.deps import App, Operator, Viewer
from appliance.domain.drift import DriftOptions, DriftReport, canonical_test
from appliance.domain.traffic import LiveMetrics, Traffic

router = APIRouter(prefix="/api/v1/monitor", tags=["monitor"])


class DriftRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window_hours: float = Field(24.0, gt=0, le=24 * 365)
    dataset_version: int | None = Field(None, ge=1)
    p_val: float = Field(0.05, gt=0, lt=1)
    tests: dict[str, str] = Field(default_factory=dict, description=(
        "column -> drift test instead of the automatic choice (ks, chisquare, z, "
        "jensenshannon, wasserstein, psi, anderson, cramer_von_mises, fisher_exact, "
        "abs_text_content_drift, perc_text_content_drift)"))
    thresholds: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict, description="column -> threshold for its test")
    multivariate: bool = Field(True, description="run the classifier-based detector")

    @field_validator("tests")
    @classmethod
    def _known(cls, value: dict[str, str]) -> dict[str, str]:
        return {col: canonical_test(name) for col, name in value.items()}

    def options(self) -> DriftOptions:
        return DriftOptions(tests=self.tests, thresholds=self.thresholds,
                            multivariate=self.multivariate)


@router.post("/{model}/drift", status_code=201)
async def run_check(app: App, who: Operator, model: str,
                    body: DriftRequest | None = None) -> DriftReport:
    """Test the window of the prediction log (or a dataset version) against the champion's
    training data, one automatically chosen test per column (or the one named in ``tests``)
    and one multivariate detector; the report is stored and returned. CPU-bound: runs off
    the event loop."""
    req = body or DriftRequest.model_validate({})
    return await run_in_threadpool(
        lambda: app.drift.check(model, window_hours=req.window_hours,
                                dataset_version=req.dataset_version, p_val=req.p_val,
                                options=req.options(), by=who))


@router.get("/{model}/drift")
def reports(app: App, _: Viewer, model: str,
            limit: int = Query(50, ge=1, le=1000)) -> list[DriftReport]:
    """Stored drift reports, newest first."""
    return app.drift.history(model, limit)


@router.get("/{model}/traffic")
def traffic(app: App, _: Viewer, model: str, minutes: int = 60,
            bucket_seconds: int = 60) -> Traffic:
    """Requests, requests/s and latency p50/p95/p99 (ms) per time bucket and version over the
    last ``minutes``, with per-class prediction counts for a classifier. Out-of-range values
    (``minutes`` 1-10080, ``bucket_seconds`` 1-86400, at most 1440 buckets) are 400."""
    return app.traffic.traffic(model, minutes=minutes, bucket_seconds=bucket_seconds)


@router.get("/{model}/metrics")
def live_metrics(app: App, _: Viewer, model: str, hours: int = 168,
                 bucket_hours: int = 24) -> LiveMetrics:
    """Accuracy (classifier) or RMSE (regressor) and label coverage from delayed labels, per
    bucket of prediction time and version over the last ``hours`` (1-8784; at most 1440
    buckets; out-of-range values are 400)."""
    return app.traffic.metrics(model, hours=hours, bucket_hours=bucket_hours)
