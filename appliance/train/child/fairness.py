"""Fairness on the holdout, by the job's sensitive columns (fairlearn).

Per-group metrics (classification: accuracy, selection_rate, count; regression:
mae, count). For binary classification also the demographic parity difference
and the equalized odds difference (class index 1 is the positive class), checked
against the job's thresholds. A threshold that cannot be checked (the task is not
binary classification) is reported as a violation: a gate we cannot evaluate
must not pass silently.
"""

from __future__ import annotations

import math
from typing import Any

from appliance.errors import InvalidInput
from appliance.train.estimators import CLASSIFICATION

MISSING_GROUP = "(missing)"


def group_frame(raw: Any, sensitive: list[str]) -> Any:
    """Sensitive columns of a polars frame as strings (a pandas frame), missing as '(missing)'."""
    import polars as pl

    absent = [c for c in sensitive if c not in raw.columns]
    if absent:
        raise InvalidInput(f"sensitive column {absent[0]!r} is not in the data",
                           detail={"field": "fairness.sensitive"})
    return raw.select([pl.col(c).cast(pl.String).fill_null(MISSING_GROUP) for c in sensitive]
                      ).to_pandas()


def fairness_report(*, task: str, n_classes: int, y_true: Any, y_pred: Any, groups: Any,
                    max_dp: float | None, max_eo: float | None) -> dict[str, Any]:
    import numpy as np
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        equalized_odds_difference,
        selection_rate,
    )
    from sklearn.metrics import accuracy_score, mean_absolute_error

    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    binary = task == CLASSIFICATION and n_classes == 2
    if task == CLASSIFICATION:
        fns: dict[str, Any] = {"accuracy": accuracy_score, "count": count}
        if binary:
            fns["selection_rate"] = selection_rate
    else:
        fns = {"mae": mean_absolute_error, "count": count}
    sensitive = list(groups.columns)
    features = groups[sensitive[0]] if len(sensitive) == 1 else groups
    frame = MetricFrame(metrics=fns, y_true=y_true, y_pred=y_pred, sensitive_features=features)
    by_group = []
    for key, row in frame.by_group.iterrows():
        values = key if isinstance(key, tuple) else (key,)
        entry: dict[str, Any] = {"group": dict(zip(sensitive, [str(v) for v in values], strict=True))}
        for name in fns:
            entry[name] = int(row[name]) if name == "count" else _num(row[name])
        by_group.append(entry)
    out: dict[str, Any] = {
        "sensitive": sensitive,
        "by_group": by_group,
        "demographic_parity_difference": None,
        "equalized_odds_difference": None,
        "thresholds": {"max_demographic_parity_difference": max_dp,
                       "max_equalized_odds_difference": max_eo},
    }
    violations: list[str] = []
    if binary:
        out["demographic_parity_difference"] = _num(demographic_parity_difference(
            y_true, y_pred, sensitive_features=features))
        out["equalized_odds_difference"] = _num(equalized_odds_difference(
            y_true, y_pred, sensitive_features=features))
    for name, limit in (("demographic_parity_difference", max_dp),
                        ("equalized_odds_difference", max_eo)):
        if limit is None:
            continue
        value = out[name]
        if value is None:
            violations.append(f"{name} could not be computed (it needs binary classification "
                              f"with every group present), so max_{name} = {limit} is not met")
        elif value > limit:
            violations.append(f"{name} is {value:.4f}, above the limit {limit}")
    out["violations"] = violations
    out["passed"] = not violations
    return out


def _num(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
