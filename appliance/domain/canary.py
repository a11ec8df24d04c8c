"""A canary's statistical verdict and what the canary rule did about it: typed results.

The verdict compares the canary version with the primary (the champion) on the
requests each answered since the canary was routed, from their delayed labels:
accuracy for a classifier, the mean squared error for a regressor (RMSE is
shown per arm). See ``appliance.monitor.sequential`` for the test.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from appliance.domain.results import Timestamp

DEFAULT_ALPHA = 0.05
DEFAULT_TAU = 0.1
DEFAULT_MIN_SAMPLES = 200


class Verdict(StrEnum):
    canary_better = "canary_better"
    canary_worse = "canary_worse"
    not_yet_conclusive = "not_yet_conclusive"


class CanaryActionKind(StrEnum):
    none = "none"                              # no verdict yet, or the rule does not act
    promoted = "promoted"                      # champion moved to the canary version
    rolled_back = "rolled_back"                # the canary was taken out of the routing
    approval_requested = "approval_requested"  # better, but a person must approve the move


class ArmEvidence(BaseModel):
    """One arm of the test: the version, its labelled requests and its metric."""

    model_config = ConfigDict(frozen=True)

    role: str = Field(description="primary or canary")
    version: int
    n: int = Field(description="labelled requests in the test")
    mean: float | None = Field(description="accuracy, or mean squared error")
    metric: float | None = Field(description="accuracy, or RMSE")


class EvidencePoint(BaseModel):
    """The test after the first ``n`` labelled requests (in label arrival order)."""

    model_config = ConfigDict(frozen=True)

    n: int
    n_primary: int
    n_canary: int
    difference: float
    lower: float | None
    upper: float | None
    p_value: float


class CanaryVerdict(BaseModel):
    """canary_better, canary_worse or not_yet_conclusive, with the evidence for it."""

    model_config = ConfigDict(frozen=True)

    model: str
    primary_version: int
    canary_version: int
    since: Timestamp = Field(description="when the canary was routed: the test's start")
    metric: str = Field(description="accuracy or rmse (the arms' metric)")
    tested: str = Field(description="the mean compared: accuracy or mean_squared_error")
    higher_is_better: bool
    verdict: Verdict
    reason: str
    alpha: float
    tau: float = Field(description="mixture sd, in units of the outcome's pooled sd")
    min_samples: int = Field(description="labelled requests per arm before any verdict")
    p_value: float = Field(description="always-valid p-value (no difference)")
    difference: float | None = Field(description="canary mean - primary mean")
    lower: float | None = Field(description="confidence sequence for the difference")
    upper: float | None
    decided_at: int | None = Field(description="labelled requests (both arms) at the verdict")
    primary: ArmEvidence
    canary: ArmEvidence
    history: list[EvidencePoint]
    truncated: bool = Field(default=False, description="more labelled requests than read")
    rule_auto: bool | None = Field(default=None, description=(
        "the job file's promote.canary auto (it acts on the verdict); null without a rule"))

    @property
    def conclusive(self) -> bool:
        return self.verdict is not Verdict.not_yet_conclusive


class CanaryAction(BaseModel):
    """A scheduled canary check: the verdict and what the job file's rule did."""

    model_config = ConfigDict(frozen=True)

    model: str
    verdict: CanaryVerdict | None
    action: CanaryActionKind
    message: str
