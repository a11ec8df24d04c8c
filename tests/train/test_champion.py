"""The promotion gate's basis: challenger and champion both scored by ONNX on one holdout."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import job, run

EXCLUDE = ["customer id", "group", "amount", "signup"]


@pytest.mark.parametrize("metric", ["accuracy", "log_loss"])
def test_run_job_identical_retrain_ties_with_the_champion(data_dir: Path, tmp_path: Path,
                                                          metric: str) -> None:
    # a forest's native and ONNX probabilities differ by float32 noise, enough to flip a
    # near-tie label (accuracy) or move log loss in its 8th digit
    spec = job("RandomForestClassifier", "label", metric=metric, params={"n_estimators": 50},
               features={"exclude": EXCLUDE})
    champion = run(data_dir, tmp_path / "champ", spec, "mixed")
    result = run(data_dir, tmp_path / "again", spec, "mixed",
                 champion_onnx=str(tmp_path / "champ" / "model.onnx"))
    assert champion["ok"] and result["ok"] and result["champion_error"] is None
    assert result["challenger_metric"] == result["champion_metric"]   # exactly: a tie
    assert result["champion_improvement"] == 0.0
    # what the gate used to compare: the native metric, which float noise moves off the tie
    assert result["metrics"][metric] != result["champion_metric"]


def test_run_job_without_a_champion_has_no_challenger_score(data_dir: Path,
                                                            tmp_path: Path) -> None:
    result = run(data_dir, tmp_path, job("Ridge"), "diabetes")
    assert result["ok"] and result["challenger_metric"] is None
