"""Outliers on live inputs: a version's detector and the share of its inputs it flagged.

``OutlierDetector`` describes the detector fitted beside a model version at training
(``appliance.train.child.outliers``); ``OutlierReport`` is the answer of
``GET /api/v1/models/{name}/outliers``: per window, version and time bucket, the rows
a detector checked and flagged, and the most outlying rows as examples.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.domain.results import Timestamp

MAX_CELL = 200   # characters of an example's cell shown


class OutlierDetector(BaseModel):
    """The outlier detector of a model version (an ONNX file beside the model's)."""

    model_config = ConfigDict(frozen=True)

    sha256: str = Field(description="its ONNX file, content-addressed like the model's")
    method: str = Field(description="isolation_forest")
    contamination: float | None = Field(description="share of training rows it flags")
    range_margin: float | None = Field(
        description="numbers farther than this x their training range outside it are "
                    "outliers too; null: no range rule")
    training_rate: float | None = Field(description="share of training rows flagged")
    holdout_rate: float | None = Field(description="share of holdout rows flagged")
    parity: dict[str, Any] | None = Field(description="ONNX against the native detector")

    @classmethod
    def from_facts(cls, sha256: str, facts: Any) -> OutlierDetector:
        f = facts if isinstance(facts, dict) else {}
        return cls(sha256=sha256, method=str(f.get("method") or "isolation_forest"),
                   contamination=f.get("contamination"), range_margin=f.get("range_margin"),
                   training_rate=f.get("training_rate"), holdout_rate=f.get("holdout_rate"),
                   parity=f.get("parity"))


class OutlierVersion(BaseModel):
    """One version's checked and flagged rows over the window (shadow scores left out)."""

    model_config = ConfigDict(frozen=True)

    version: int
    rows: int = Field(description="rows logged")
    checked: int = Field(description="rows its outlier detector scored")
    outliers: int = Field(description="rows it flagged")
    share: float | None = Field(description="outliers / checked; null when none was checked")
    contamination: float | None = Field(
        description="the detector's training share: the share to expect without drift")


class OutlierBucket(BaseModel):
    """One version's outlier share in one time bucket."""

    model_config = ConfigDict(frozen=True)

    bucket: Timestamp = Field(description="the bucket's start, aligned to the epoch")
    version: int
    checked: int
    outliers: int
    share: float | None


class OutlierExample(BaseModel):
    """A flagged row: its request, score (lower: more outlying) and inputs (cells cut to
    200 characters)."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    version: int
    at: Timestamp
    score: float | None
    inputs: dict[str, str]


class OutlierReport(BaseModel):
    """Outliers among a model's live inputs over the last ``window_hours``."""

    model_config = ConfigDict(frozen=True)

    model: str
    window_hours: float
    bucket_hours: float
    rows: int = Field(description="rows logged (shadow scores left out)")
    checked: int
    outliers: int
    share: float | None
    versions: list[OutlierVersion]
    series: list[OutlierBucket]
    examples: list[OutlierExample] = Field(description="the most outlying flagged rows")


def cut_cells(record: Any) -> dict[str, str]:
    """A logged record's cells as text of at most :data:`MAX_CELL` characters."""
    if not isinstance(record, dict):
        return {}
    out = {}
    for key, value in list(record.items())[:500]:
        text = "" if value is None else str(value)
        out[str(key)[:MAX_CELL]] = text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"
    return out
