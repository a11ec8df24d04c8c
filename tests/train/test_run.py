"""run_job end to end on real data: every allowlisted estimator trains, exports and passes parity."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from appliance.train import estimators
from appliance.train.child.export import check_onnx_bytes

from .conftest import job, run

SMALL = {"n_estimators": 8}
MIXED_EXCLUDE = ["customer id", "group"]


def small_params(info: estimators.EstimatorInfo) -> dict[str, int]:
    return dict(SMALL) if "n_estimators" in estimators.param_names(info) else {}


def assert_trained(result: dict, out: Path) -> None:
    assert result["ok"], result["error"]
    assert result["parity"]["passed"], result["parity"]
    assert result["parity"]["rows_checked"] >= result["rows_test"]
    assert (out / "model.onnx").is_file() and (out / "holdout.parquet").is_file()
    check_onnx_bytes((out / "model.onnx").read_bytes())
    assert result["metric"] in result["metrics"]
    json.dumps(result, allow_nan=False)   # strict JSON, as the worker sends it


BUNDLED = [(name, "diabetes" if info.task == "regression" else "breast_cancer")
           for name, info in estimators.ALLOWLIST.items()]
BUNDLED += [(name, "wine") for name in ("sklearn.linear_model.LogisticRegression",
                                        "sklearn.ensemble.RandomForestClassifier",
                                        "sklearn.naive_bayes.GaussianNB", "xgboost.XGBClassifier")]


@pytest.mark.parametrize(("kind", "dataset"), BUNDLED)
def test_run_job_bundled_dataset_trains_with_parity(kind: str, dataset: str, data_dir: Path,
                                                     tmp_path: Path) -> None:
    info = estimators.resolve(kind)
    result = run(data_dir, tmp_path, job(kind, params=small_params(info)), dataset)
    assert_trained(result, tmp_path)
    assert result["task"] == info.task and result["flavor"] == info.flavor
    if info.task == "classification":
        assert set(result["metrics"]) >= {"accuracy", "precision", "recall", "f1", "roc_auc",
                                          "log_loss"}
        assert result["classes"] == ([0, 1] if dataset == "breast_cancer" else [0, 1, 2])
        assert result["metrics"]["accuracy"] > 0.6
    else:
        assert set(result["metrics"]) == {"rmse", "mae", "r2"}
        assert result["signature"]["outputs"][0]["shape"] == [None, 1]
    # the bundled names have spaces and slashes; each input says which column feeds it
    assert [i["column"] for i in result["signature"]["inputs"]] == \
        [f["name"] for f in result["features"]]


@pytest.mark.parametrize("kind", list(estimators.ALLOWLIST))
def test_run_job_mixed_table_trains_with_parity(kind: str, data_dir: Path, tmp_path: Path) -> None:
    info = estimators.resolve(kind)
    classify = info.task == "classification"
    spec = job(kind, "label" if classify else "amount", params=small_params(info),
               features={"exclude": [*MIXED_EXCLUDE, "amount" if classify else "label"]})
    result = run(data_dir, tmp_path, spec, "mixed")
    assert_trained(result, tmp_path)
    kinds = {f["name"]: f["kind"] for f in result["features"]}
    assert kinds == {"income/month": "numeric", "age": "numeric", "score": "numeric",
                     "color": "categorical", "size": "categorical", "member": "numeric"}
    assert any("signup" in w for w in result["warnings"])   # a date column is left out, said so
    types = {i["column"]: i["type"] for i in result["signature"]["inputs"]}
    assert types["color"] == "string" and types["age"] == "float"
    if classify:
        assert result["classes"] == ["no", "yes"]
        assert [o["name"] for o in result["signature"]["outputs"]] == ["label", "probabilities"]


def test_run_job_same_seed_identical_metrics(data_dir: Path, tmp_path: Path) -> None:
    spec = job("xgboost.XGBClassifier", "label", params={"n_estimators": 10, "subsample": 0.7},
               features={"exclude": [*MIXED_EXCLUDE, "amount"]},
               search={"n_iter": 2, "params": {"max_depth": [2, 3, 4]}})
    first = run(data_dir, tmp_path / "a", spec, "mixed")
    second = run(data_dir, tmp_path / "b", spec, "mixed")
    for key in ("metrics", "metric_steps", "trials", "params", "parity"):
        assert first[key] == second[key], key
    assert (tmp_path / "a" / "model.onnx").read_bytes() == (tmp_path / "b" / "model.onnx").read_bytes()
    spec["split"]["seed"] = 8
    assert run(data_dir, tmp_path / "c", spec, "mixed")["metrics"] != first["metrics"]


def test_run_job_random_forest_same_seed_identical_metrics(data_dir: Path, tmp_path: Path) -> None:
    spec = job("RandomForestRegressor", params={"n_estimators": 5, "max_features": 0.5})
    first = run(data_dir, tmp_path / "a", spec, "diabetes")
    assert first["metrics"] == run(data_dir, tmp_path / "b", spec, "diabetes")["metrics"]


def test_run_job_search_records_trials(data_dir: Path, tmp_path: Path) -> None:
    spec = job("DecisionTreeClassifier", metric="f1",
               search={"kind": "grid", "params": {"max_depth": [1, 3], "min_samples_leaf": [1, 5]}})
    result = run(data_dir, tmp_path, spec, "breast_cancer")
    assert result["ok"], result["error"]
    assert len(result["trials"]) == 4
    assert {json.dumps(t["params"], sort_keys=True) for t in result["trials"]} == {
        json.dumps({"max_depth": d, "min_samples_leaf": s}, sort_keys=True)
        for d in (1, 3) for s in (1, 5)}
    best = result["best_trial"]
    assert best["metrics"]["f1"] == max(t["metrics"]["f1"] for t in result["trials"])
    assert result["params"]["max_depth"] == best["params"]["max_depth"]
    assert [s["step"] for s in result["metric_steps"] if s["key"] == "search.f1"] == [0, 1, 2, 3]
    assert [s for s, _ in result["_stages"]].count("search") >= 4


def test_run_job_random_search_capped_at_grid_size(data_dir: Path, tmp_path: Path) -> None:
    spec = job("Ridge", search={"n_iter": 50, "params": {"alpha": [0.1, 1.0, 10.0]}})
    result = run(data_dir, tmp_path, spec, "diabetes")
    assert result["ok"] and len(result["trials"]) == 3
    assert result["best_trial"]["metrics"]["rmse"] == min(t["metrics"]["rmse"] for t in result["trials"])


def test_run_job_xgboost_logs_holdout_loss_per_round(data_dir: Path, tmp_path: Path) -> None:
    result = run(data_dir, tmp_path, job("XGBClassifier", params={"n_estimators": 6}),
                 "breast_cancer")
    steps = [s for s in result["metric_steps"] if s["key"] == "holdout.logloss"]
    assert [s["step"] for s in steps] == list(range(6))
    assert steps[-1]["value"] < steps[0]["value"]


def test_run_job_gradient_boosting_logs_train_loss(data_dir: Path, tmp_path: Path) -> None:
    result = run(data_dir, tmp_path, job("GradientBoostingRegressor", params={"n_estimators": 4}),
                 "diabetes")
    assert [s["step"] for s in result["metric_steps"] if s["key"] == "train.loss"] == [0, 1, 2, 3]


def test_run_job_hinge_sgd_exports_scores(data_dir: Path, tmp_path: Path) -> None:
    result = run(data_dir, tmp_path, job("SGDClassifier", params={"loss": "hinge"}), "breast_cancer")
    assert_trained(result, tmp_path)
    assert "log_loss" not in result["metrics"] and "roc_auc" in result["metrics"]


def test_run_job_writes_holdout_and_environment(data_dir: Path, tmp_path: Path) -> None:
    result = run(data_dir, tmp_path, job("GaussianNB", "label",
                                         features={"include": ["score", "color"]}), "mixed")
    holdout = pl.read_parquet(tmp_path / "holdout.parquet")
    assert holdout.height == result["rows_test"] == 100 and result["rows_train"] == 300
    assert holdout.columns == pl.read_parquet(Path(result["holdout_path"])).columns
    assert "label" in holdout.columns and "customer id" in holdout.columns
    env = result["environment"]
    assert env["python"] and env["packages"]["scikit-learn"] and env["packages"]["xgboost"]
    assert [s for s, _ in result["_stages"]][-1] == "done"


def test_run_job_champion_scored_on_same_holdout(data_dir: Path, tmp_path: Path) -> None:
    spec = job("LogisticRegression", "label", metric="roc_auc",
               features={"exclude": [*MIXED_EXCLUDE, "amount"]})
    champion = run(data_dir, tmp_path / "champ", spec, "mixed")
    challenger_spec = job("GaussianNB", "label", metric="roc_auc", features={"include": ["score"]})
    result = run(data_dir, tmp_path / "new", challenger_spec, "mixed",
                 champion_onnx=str(tmp_path / "champ" / "model.onnx"))
    assert result["ok"] and result["champion_error"] is None
    assert result["champion_metric"] == pytest.approx(champion["metrics"]["roc_auc"], abs=1e-6)
    assert result["champion_improvement"] == pytest.approx(
        result["metrics"]["roc_auc"] - result["champion_metric"])
    assert result["champion_improvement"] < 0   # one feature does worse than all of them


def test_run_job_champion_not_onnx_reported(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "champion.onnx"
    bad.write_bytes(b"not a model")
    result = run(data_dir, tmp_path / "o", job("Ridge"), "diabetes", champion_onnx=str(bad))
    assert result["ok"] and result["champion_metric"] is None
    assert "cannot be read" in result["champion_error"]


@pytest.mark.parametrize(("spec", "field", "words"), [
    (job("Ridge", "no_such_column"), "target", "target column 'no_such_column' is not in the data"),
    (job("Ridge", features={"include": ["age", "bmi", "height"]}), "features.include",
     "feature 'height' is not in the data"),
    (job("Ridge", features={"include": ["age", "target"]}), "features.include", "cannot also be"),
    (job("os.system"), "model.kind", "unknown estimator 'os.system'"),
    (job("subprocess.Popen"), "model.kind", "unknown estimator 'subprocess.Popen'"),
    (job("Ridge", params={"alpah": 1.0}), "model.params.alpah", "unknown parameter 'alpah'"),
    (job("LogisticRegression", "target"), "target", "one class"),
    (job("Ridge", fairness={"sensitive": ["gender"]}), "fairness.sensitive", "'gender' is not"),
])
def test_run_job_bad_job_clear_error(spec: dict, field: str, words: str, data_dir: Path,
                                     tmp_path: Path) -> None:
    dataset = "diabetes"
    if words == "one class":
        pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "target": ["a"] * 5}).write_parquet(
            tmp_path / "one.parquet")
        data_dir, dataset = tmp_path, "one"
    result = run(data_dir, tmp_path / "out", spec, dataset)
    assert result["ok"] is False
    assert result["error"]["field"] == field and words in result["error"]["message"]
    assert not (tmp_path / "out" / "model.onnx").exists()


def test_run_job_job_yaml_error_names_line(data_dir: Path, tmp_path: Path) -> None:
    text = "name: t\ndataset: d\ntarget: target\nmodel:\n  kind: subprocess.Popen\n"
    result = run_yaml(data_dir, tmp_path, text)
    assert result["error"]["line"] == 5 and "line 5" in result["error"]["message"]


def test_run_job_regression_target_not_numeric_refused(data_dir: Path, tmp_path: Path) -> None:
    result = run(data_dir, tmp_path, job("Ridge", "color"), "mixed")
    assert result["error"]["field"] == "target" and "numeric" in result["error"]["message"]


def run_yaml(data_dir: Path, tmp_path: Path, text: str) -> dict:
    from appliance.train.child.run import run_job

    return run_job({"job_yaml": text, "parquet_path": str(data_dir / "diabetes.parquet"),
                    "out_dir": str(tmp_path)})


def test_run_job_null_targets_left_out_with_warning(tmp_path: Path) -> None:
    rows = 40
    pl.DataFrame({"x": [float(i) for i in range(rows)],
                  "y": [None if i % 10 == 0 else float(i % 2) for i in range(rows)]}
                 ).write_parquet(tmp_path / "nulls.parquet")
    result = run(tmp_path, tmp_path / "out", job("LogisticRegression", "y"), "nulls")
    assert result["ok"] and result["rows_train"] + result["rows_test"] == 36
    assert "4 rows without a target value were left out" in result["warnings"]
    assert result["classes"] == [0.0, 1.0]


def test_run_job_warns_about_constant_and_empty_columns_and_a_rare_class(tmp_path: Path) -> None:
    rows = 60
    pl.DataFrame({"x": [float(i % 7) for i in range(rows)],
                  "same": [3.0] * rows,
                  "city": ["oslo"] * (rows - 5) + [None] * 5,
                  "empty": pl.Series([None] * rows, dtype=pl.Float64),
                  "y": ["rare" if i < 3 else "ab"[i % 2] for i in range(rows)]}
                 ).write_parquet(tmp_path / "odd.parquet")
    result = run(tmp_path, tmp_path / "out", job("LogisticRegression", "y"), "odd")
    assert result["ok"], result["error"]
    text = "\n".join(result["warnings"])
    assert "column 'same' has a single value (3.0) in all 60 rows" in text
    assert "column 'city' has a single value (oslo) in all 55 rows" in text
    assert "column 'empty' has no values (all 60 are missing)" in text
    assert "class 'rare' of the target has only 3 of 60 rows" in text
    assert "column 'x'" not in text and "class 'a'" not in text


def test_run_job_keeps_library_deprecations_out_of_the_run_warnings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import warnings

    from appliance.train.child import metrics

    original = metrics.task_metrics

    def noisy(*args: object, **kwargs: object) -> object:
        warnings.warn("this argument will change in 9.9", FutureWarning, stacklevel=1)
        warnings.warn("the solver gave up early", UserWarning, stacklevel=1)
        return original(*args, **kwargs)

    monkeypatch.setattr(metrics, "task_metrics", noisy)
    pl.DataFrame({"x": [float(i) for i in range(40)], "y": [i % 2 for i in range(40)]}
                 ).write_parquet(tmp_path / "plain.parquet")
    result = run(tmp_path, tmp_path / "out", job("LogisticRegression", "y"), "plain")
    assert result["ok"] and result["warnings"] == ["UserWarning: the solver gave up early"]
    assert "FutureWarning: this argument will change in 9.9" in capsys.readouterr().err


def test_import_train_modules_loads_no_heavy_modules() -> None:
    import subprocess
    import sys

    heavy = ["sklearn", "xgboost", "onnx", "onnxruntime", "skl2onnx", "onnxmltools", "fairlearn",
             "numpy", "polars", "pandas"]
    modules = ", ".join(["appliance.train.spec", "appliance.train.estimators"] + [
        f"appliance.train.child.{m}" for m in (
            "pipeline", "metrics", "export", "parity", "fairness", "search", "run", "champion",
            "worker")])
    code = f"import sys, {modules}; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
