"""Explanations as typed results: global importances of a model version, and the
per-feature contributions behind one prediction.

Contributions are Shapley values: ``base_value + sum(contributions) == score``,
where ``score`` is the model's output in the units ``output`` names (``margin``:
XGBoost's raw score, log-odds for a binary classifier; ``probability``: the
probability of ``explained_class``; ``value``: a regressor's prediction).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.domain.results import Timestamp

Method = Literal["tree_shap", "sampling_shapley"]
TREE_SHAP: Final = "tree_shap"
SAMPLING_SHAPLEY: Final = "sampling_shapley"
Output = Literal["margin", "probability", "value"]


class FeatureContribution(BaseModel):
    """One raw input column's share of the score (one-hot columns summed back)."""

    model_config = ConfigDict(frozen=True)

    feature: str
    value: Any = Field(description="the input value as it was scored (null when missing)")
    contribution: float


class Explanation(BaseModel):
    """Why one row got its score: Shapley contributions per raw feature."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: int
    request_id: str | None = Field(description="the logged request explained; null for a "
                                               "posted row")
    method: Method = Field(description="tree_shap (exact, XGBoost's own booster) or "
                                       "sampling_shapley (model-agnostic, over the ONNX model)")
    output: Output
    explained_class: Any = Field(None, description="a classifier's class whose score is "
                                                   "explained; null for a regressor")
    base_value: float = Field(description="the expected score: what every feature adds to")
    score: float = Field(description="base_value + sum of contributions, in `output` units")
    prediction: Any = Field(description="the label or value the model predicts for the row")
    probability: float | None = Field(description="explained_class's probability by the ONNX "
                                                  "model that serves (classifiers)")
    contributions: list[FeatureContribution] = Field(
        description="largest absolute contribution first")
    samples: int | None = Field(None, description="sampling_shapley: permutations used")
    background_rows: int | None = Field(None, description="sampling_shapley: background rows")
    seed: int | None = None
    duration_ms: float


class FeatureImportance(BaseModel):
    """One raw feature's global importance."""

    model_config = ConfigDict(frozen=True)

    feature: str
    permutation: float | None = Field(description="mean loss of the metric on the holdout "
                                                  "when the column is shuffled (ONNX-scored)")
    permutation_std: float | None
    native: float | None = Field(description="the estimator's own importance, as a share "
                                             "of 1 (one-hot columns summed back)")


class GlobalImportances(BaseModel):
    """Importances computed at training on the holdout, stored with the model version."""

    model_config = ConfigDict(frozen=True)

    metric: str
    baseline: float | None = Field(description="the metric on the unshuffled holdout")
    repeats: int
    rows: int
    seed: int
    native_kind: str | None = Field(description="total_gain (XGBoost), impurity (trees), "
                                                "coefficient (linear models) or null")
    features: list[FeatureImportance] = Field(description="most important first")


class LoggedRequest(BaseModel):
    """A logged, answered request: what can be explained."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    model: str
    version: int
    created_at: Timestamp
    prediction: Any
