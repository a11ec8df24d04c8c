"""Drift reports as typed results: per-feature tests against the champion's training data,
the test chosen per column and why, and one multivariate score for the whole input."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from appliance.domain.results import Timestamp, is_none

# Evidently's names (evidently/legacy/calculations/stattests); appliance/monitor/stattests.py
# implements each one (tests/monitor/test_stattests.py pins that the two lists agree).
TEST_NAMES = ("abs_text_content_drift", "anderson", "chisquare", "cramer_von_mises",
              "fisher_exact", "jensenshannon", "ks", "perc_text_content_drift", "psi",
              "wasserstein", "z")
TEST_ALIASES = {"chi2": "chisquare", "kolmogorov_smirnov": "ks", "js": "jensenshannon",
                "cvm": "cramer_von_mises", "anderson_darling": "anderson",
                "fisher": "fisher_exact", "text": "abs_text_content_drift"}
MAX_COLUMNS_NAMED = 10_000


def canonical_test(name: str) -> str:
    """The registered name of a test or alias; ValueError names the choices."""
    key = TEST_ALIASES.get(name, name)
    if key not in TEST_NAMES:
        raise ValueError(f"unknown drift test {name!r}: choose one of {', '.join(TEST_NAMES)} "
                         f"(or {', '.join(sorted(TEST_ALIASES))})")
    return key


class DriftOptions(BaseModel):
    """Per-column choices for a drift check (the job file's ``drift:`` section, or the
    request): a test instead of the automatic one, a threshold instead of the test's default
    (a p-value test's default is the check's ``p_val`` after the correction), and whether to
    run the multivariate detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tests: dict[str, str] = Field(default_factory=dict, max_length=MAX_COLUMNS_NAMED,
                                  description="column -> test name (e.g. {age: psi})")
    thresholds: dict[str, float] = Field(default_factory=dict, max_length=MAX_COLUMNS_NAMED,
                                         description="column -> threshold for its test")
    multivariate: bool = Field(default=True, description="run the classifier-based detector")

    @field_validator("tests")
    @classmethod
    def _known_tests(cls, value: dict[str, str]) -> dict[str, str]:
        return {col: canonical_test(name) for col, name in value.items()}

    @field_validator("thresholds")
    @classmethod
    def _finite(cls, value: dict[str, float]) -> dict[str, float]:
        for col, thr in value.items():
            if not (thr == thr and 0 <= thr < float("inf")):  # NaN fails thr == thr
                raise ValueError(f"threshold for {col!r} must be a finite number >= 0")
        return value


class FeatureDrift(BaseModel):
    """One input column's two-sample test: which test and why, its score, threshold and
    verdict."""

    model_config = ConfigDict(frozen=True, extra="allow")

    column: str
    test: str = Field(description="the test's name, as Evidently names it (ks, chisquare, z, "
                      "jensenshannon, wasserstein, psi, anderson, cramer_von_mises, "
                      "fisher_exact, abs_text_content_drift, perc_text_content_drift); "
                      "older reports say chi2 for alibi-detect's contingency test")
    statistic: float | None
    p_value: float | None = Field(description="for p-value tests; null for distances")
    distance: float | None = Field(default=None, exclude_if=is_none,
                                   description="for distance tests (and text's ROC AUC)")
    note: str | None = Field(default=None, exclude_if=is_none,
                             description="why there is no statistic (no values on one side)")
    threshold: float = Field(description="what the p-value or distance is compared with: a "
                             "p-value test's after the correction across features")
    drift: bool
    kind: str | None = Field(default=None, exclude_if=is_none,
                             description="numerical, categorical or text (inferred as "
                             "Evidently infers it)")
    reason: str | None = Field(default=None, exclude_if=is_none,
                               description="why this test: kind, distinct values, rows")
    chosen: Literal["auto", "override"] | None = Field(default=None, exclude_if=is_none)
    n_unique: int | None = Field(default=None, exclude_if=is_none)
    rows_reference: int | None = Field(default=None, exclude_if=is_none)
    rows_current: int | None = Field(default=None, exclude_if=is_none)

    @property
    def score(self) -> float | None:
        """What was compared with the threshold: the p-value, or the distance."""
        return self.p_value if self.p_value is not None else self.distance


class MultivariateDrift(BaseModel):
    """A domain classifier told reference rows from current rows across all the columns:
    out-of-fold ROC AUC (0.5: indistinguishable) and a p-value for "no drift"."""

    model_config = ConfigDict(frozen=True)

    method: str = Field(description="e.g. alibi-detect ClassifierDrift (sklearn backend)")
    auc: float | None = Field(description="out-of-fold ROC AUC of the domain classifier")
    distance: float | None = Field(description="alibi-detect's distance: accuracy - 0.5")
    p_value: float | None
    threshold: float
    drift: bool
    columns: list[str]
    rows_reference: int
    rows_current: int
    duration_ms: float
    note: str | None = Field(default=None, exclude_if=is_none)


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
    correction: str = Field(description="bonferroni, fdr or none (p-value tests only)")
    features: list[FeatureDrift]
    prediction: dict[str, Any] = Field(description=(
        "the predicted class (chi2) or value (ks) distribution test; keys vary with the test"))
    multivariate: MultivariateDrift | None = Field(
        default=None, description="the whole input at once; null in older reports or "
        "when turned off")
    rows_reference: int
    rows_current: int
    duration_ms: float | None
    created_at: Timestamp
    created_by: str

    @property
    def drifted(self) -> list[str]:
        """The columns that drifted."""
        return [f.column for f in self.features if f.drift]
