"""Serving's typed results: an answer to predict, canary/shadow routing, labels, live metrics."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypedDict  # pydantic reads typing's TypedDict only from 3.12


# The one result that is a TypedDict, not a model: predict is the hot path, and a TypedDict
# is the plain dict it answers (building a pydantic model cost ~10 us a request).
class Prediction(TypedDict):
    """The answer to a predict request: one prediction (and request id) per record."""

    model: str
    version: Annotated[int, Field(description="the version that scored the request")]
    route: Annotated[str, Field(description="primary, or canary when the canary answered")]
    predictions: list[Any]
    probabilities: Annotated[list[dict[str, float]] | None, Field(
        description="per record, class -> probability; null for a model without them")]
    request_ids: list[str]


class CanaryRoute(BaseModel):
    """``percent`` of the champion's requests go to ``version``, sticky on column ``key``."""

    model_config = ConfigDict(frozen=True)

    version: int
    percent: float
    key: str | None


class ShadowRoute(BaseModel):
    """Every champion request is also scored by ``version`` and logged, never answered."""

    model_config = ConfigDict(frozen=True)

    version: int


class RoutingConfig(BaseModel):
    """A model's canary and shadow settings for its champion's traffic."""

    model_config = ConfigDict(frozen=True)

    canary: CanaryRoute | None = None
    shadow: ShadowRoute | None = None


class ModelRouting(BaseModel):
    """The routing in force and the requests logged per role (primary, canary, shadow)."""

    model_config = ConfigDict(frozen=True)

    model: str
    routing: RoutingConfig
    served: dict[str, int] = Field(description="role -> predictions logged")


class Feedback(BaseModel):
    """Delayed labels received: how many matched a logged prediction."""

    model_config = ConfigDict(frozen=True)

    received: int
    matched: int
    unknown_request_ids: list[str] = Field(description="at most 20 ids with no prediction")


class VersionPerformance(BaseModel):
    """One version's live metrics from joined labels over the window."""

    model_config = ConfigDict(frozen=True)

    version: int
    predictions: int
    labelled: int
    label_coverage: float | None
    accuracy: float | None
    rmse: float | None
    mean_label_delay_s: float | None
    auc: float | None = Field(default=None, description=(
        "ROC AUC from the logged probability of the larger of two label values; null "
        "unless a binary classifier has both classes labelled"))


class LivePerformance(BaseModel):
    """Live metrics per model version over the last ``window_hours``."""

    model_config = ConfigDict(frozen=True)

    model: str
    window_hours: float
    versions: list[VersionPerformance]


class Invocation(BaseModel):
    """MLflow's scoring answer (``/invocations``): one prediction per row."""

    model_config = ConfigDict(frozen=True)

    predictions: list[Any]
