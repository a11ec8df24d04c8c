"""Drift reports as typed results: per-feature tests against the champion's training data."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.domain.results import Timestamp, is_none


class FeatureDrift(BaseModel):
    """One input column's two-sample test, its corrected threshold and verdict."""

    model_config = ConfigDict(frozen=True, extra="allow")

    column: str
    test: str = Field(description="ks (numeric column) or chi2 (text column)")
    statistic: float | None
    p_value: float | None
    note: str | None = Field(default=None, exclude_if=is_none,
                             description="why there is no statistic (no values on one side)")
    threshold: float = Field(description="p-value threshold after the correction across features")
    drift: bool


class DriftReport(BaseModel):
    """A stored drift check: the champion's training data against a window of the prediction
    log (``log:<model>:<hours>h``) or a dataset version."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    model: str
    version: int = Field(description="the champion version checked")
    reference: str = Field(description="lineage node of the reference data")
    current: str = Field(description="what was compared: a dataset version or a log window")
    drift: bool
    p_val: float
    correction: str = Field(description="bonferroni or fdr")
    features: list[FeatureDrift]
    prediction: dict[str, Any] = Field(description=(
        "the predicted class (chi2) or value (ks) distribution test; keys vary with the test"))
    rows_reference: int
    rows_current: int
    duration_ms: float | None
    created_at: Timestamp
    created_by: str

    @property
    def drifted(self) -> list[str]:
        """The columns that drifted."""
        return [f.column for f in self.features if f.drift]
