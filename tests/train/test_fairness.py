"""Fairness numbers on frames with a known disparity; thresholds turn into violations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from appliance.train.child.fairness import fairness_report

from .conftest import job, run


def disparity() -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Group a: 100 rows, 80 predicted positive; group b: 100 rows, 20 predicted positive.

    True labels: half of each group is positive, and the first 50 rows of each group.
    """
    y_pred = np.array([1] * 80 + [0] * 20 + [1] * 20 + [0] * 80)
    y_true = np.array(([1] * 50 + [0] * 50) * 2)
    groups = pd.DataFrame({"sex": ["a"] * 100 + ["b"] * 100})
    return y_true, y_pred, groups


def test_fairness_report_known_disparity_numbers() -> None:
    y_true, y_pred, groups = disparity()
    report = fairness_report(task="classification", n_classes=2, y_true=y_true, y_pred=y_pred,
                             groups=groups, max_dp=None, max_eo=None)
    by = {g["group"]["sex"]: g for g in report["by_group"]}
    assert by["a"]["selection_rate"] == pytest.approx(0.8) and by["b"]["selection_rate"] == pytest.approx(0.2)
    assert by["a"]["count"] == by["b"]["count"] == 100
    assert by["a"]["accuracy"] == pytest.approx(0.7) and by["b"]["accuracy"] == pytest.approx(0.7)
    assert report["demographic_parity_difference"] == pytest.approx(0.6)
    # a: TPR 1.0, FPR 0.6; b: TPR 0.4, FPR 0.0 -> max(|1.0-0.4|, |0.6-0.0|) = 0.6
    assert report["equalized_odds_difference"] == pytest.approx(0.6)
    assert report["passed"] and report["violations"] == []


def test_fairness_report_threshold_violation_reported() -> None:
    y_true, y_pred, groups = disparity()
    report = fairness_report(task="classification", n_classes=2, y_true=y_true, y_pred=y_pred,
                             groups=groups, max_dp=0.1, max_eo=0.7)
    assert report["passed"] is False
    assert len(report["violations"]) == 1 and "demographic_parity_difference" in report["violations"][0]
    assert report["thresholds"] == {"max_demographic_parity_difference": 0.1,
                                    "max_equalized_odds_difference": 0.7}


def test_fairness_report_multiclass_threshold_cannot_pass() -> None:
    y = np.array([0, 1, 2, 0, 1, 2])
    groups = pd.DataFrame({"g": ["x", "x", "x", "y", "y", "y"]})
    report = fairness_report(task="classification", n_classes=3, y_true=y, y_pred=y, groups=groups,
                             max_dp=0.5, max_eo=None)
    assert report["demographic_parity_difference"] is None
    assert report["passed"] is False and "could not be computed" in report["violations"][0]


def test_run_job_fairness_on_column_outside_features(data_dir: Path, tmp_path: Path) -> None:
    spec = job("LogisticRegression", "label",
               features={"exclude": ["customer id", "group", "amount"]},
               fairness={"sensitive": ["group", "color"], "max_demographic_parity_difference": 0.0})
    result = run(data_dir, tmp_path, spec, "mixed")
    assert result["ok"], result["error"]
    fairness = result["fairness"]
    assert fairness["sensitive"] == ["group", "color"]
    groups = {(g["group"]["group"], g["group"]["color"]) for g in fairness["by_group"]}
    assert ("a", "(missing)") in groups or ("b", "(missing)") in groups
    assert sum(g["count"] for g in fairness["by_group"]) == result["rows_test"]
    assert 0.0 < fairness["demographic_parity_difference"] <= 1.0
    assert fairness["passed"] is False and fairness["violations"]
