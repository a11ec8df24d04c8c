"""Data larger than the trainer's cap: the rule, XGBoost from Parquet batches, sklearn's refusal
and seeded samples. A cap of 1 MB makes small tables "larger than memory" in the default suite."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from appliance.errors import InvalidInput
from appliance.train.child import sizing
from appliance.train.child.champion import score_onnx
from appliance.train.child.export import check_onnx_bytes
from appliance.train.spec import parse_job

from .conftest import job, mixed_frame, run

TINY_CAP_MB = 1
MIXED = {"exclude": ["customer id", "group", "amount"]}


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several record batches even for a few thousand rows."""
    monkeypatch.setattr(sizing, "BATCH_ROWS", 1024)


@pytest.fixture(scope="module")
def mixed_big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("big")
    mixed_frame(20_000, seed=3).write_parquet(d / "big.parquet")
    mixed_frame(8_000, seed=4).write_parquet(d / "fresh.parquet")
    return d


def xgb_job(mode: str, **extra: object) -> dict:
    return job("xgboost.XGBClassifier", "label", features=MIXED, data={"mode": mode},
               params={"n_estimators": 40, "max_depth": 4}, **extra)


def assert_trained(result: dict, out: Path) -> None:
    """Trained, exported and parity-checked; parity on a holdout sample of at least 1,000
    rows (or the whole holdout when smaller)."""
    assert result["ok"], result["error"]
    assert result["parity"]["passed"], result["parity"]
    assert result["parity"]["holdout_rows"] >= min(result["rows_test"], 1000)
    assert result["parity"]["rows_checked"] >= result["parity"]["holdout_rows"]
    assert (out / "model.onnx").is_file() and (out / "holdout.parquet").is_file()
    check_onnx_bytes((out / "model.onnx").read_bytes())
    assert result["metric"] in result["metrics"]
    json.dumps(result, allow_nan=False)


def auc_on(onnx: Path, frame: pl.DataFrame, classes: list) -> float:
    y = np.searchsorted(np.asarray(classes), frame["label"].to_numpy())
    value, error = score_onnx(onnx, frame, y, task="classification", classes=classes,
                              metric="roc_auc")
    assert error is None and value is not None
    return value


# -- the rule --------------------------------------------------------------------------------

def test_plan_data_fitting_version_stays_in_memory() -> None:
    plan = sizing.plan_data(mode="auto", flavor="sklearn", rows=10_000, columns=10, cap_mb=8192,
                            sample_rows=None)
    assert plan.mode == sizing.MEMORY and "it fits" in plan.reason
    assert plan.estimated_mb == pytest.approx(10_000 * 10 * 8 * sizing.MEMORY_FACTOR / 2**20)


def test_plan_data_too_big_for_xgboost_goes_external() -> None:
    plan = sizing.plan_data(mode="auto", flavor="xgboost", rows=10_000_000, columns=20,
                            cap_mb=1024, sample_rows=None)
    assert plan.mode == sizing.EXTERNAL and "Parquet batches" in plan.reason


def test_plan_data_too_big_for_sklearn_refused_naming_size_cap_and_options() -> None:
    with pytest.raises(InvalidInput) as info:
        sizing.plan_data(mode="auto", flavor="sklearn", rows=10_000_000, columns=20, cap_mb=1024,
                         sample_rows=None)
    message = info.value.message
    assert "6,104 MB" in message and "1,024 MB" in message
    assert "mode: sample" in message and "xgboost" in message and "APPLIANCE_TRAIN_MEMORY_MB" in message
    assert info.value.detail["field"] == "data.mode" and info.value.detail["cap_mb"] == 1024


def test_plan_data_external_mode_for_sklearn_refused() -> None:
    with pytest.raises(InvalidInput, match="external trains XGBoost only"):
        sizing.plan_data(mode="external", flavor="sklearn", rows=100, columns=3, cap_mb=None,
                         sample_rows=None)


def test_plan_data_sample_without_rows_takes_what_fits_the_cap() -> None:
    plan = sizing.plan_data(mode="sample", flavor="sklearn", rows=10_000_000, columns=16,
                            cap_mb=64, sample_rows=None)
    assert plan.mode == sizing.SAMPLE and plan.sample_rows == sizing.rows_that_fit(64, 16)
    assert sizing.estimate_mb(plan.sample_rows, 16) <= 64 * sizing.DATA_SHARE


def test_holdout_side_is_seeded_deterministic_and_near_test_size() -> None:
    rows = np.arange(100_000)
    a = sizing.holdout_side(rows, 7, 0.25)
    assert np.array_equal(a, sizing.holdout_side(rows, 7, 0.25))
    assert abs(a.mean() - 0.25) < 0.01
    assert not np.array_equal(a, sizing.holdout_side(rows, 8, 0.25))
    # a batch read from position 50,000 on knows its rows' sides without the rest
    assert np.array_equal(a[50_000:], sizing.holdout_side(rows[50_000:], 7, 0.25))


def test_parse_job_data_field_unknown_mode_names_line() -> None:
    text = "name: j\ndataset: d\ntarget: y\nmodel: {kind: Ridge}\ndata:\n  mode: disk\n"
    with pytest.raises(InvalidInput) as info:
        parse_job(text)
    assert info.value.detail["field"] == "data.mode" and info.value.detail["line"] == 6
    assert parse_job(text.replace("disk", "sample\n  sample_rows: 500")).data.sample_rows == 500


# -- XGBoost from Parquet batches ------------------------------------------------------------

def test_run_job_external_reaches_in_memory_auc_and_passes_parity(
        mixed_big: Path, tmp_path: Path, small_batches: None) -> None:
    memory = run(mixed_big, tmp_path / "mem", xgb_job("auto"), "big")
    external = run(mixed_big, tmp_path / "ext", xgb_job("auto"), "big", memory_mb=TINY_CAP_MB)
    assert memory["data"]["mode"] == "memory" and external["data"]["mode"] == "external"
    assert_trained(external, tmp_path / "ext")
    assert any("Parquet batches" in w for w in external["warnings"])
    assert external["rows_train"] + external["rows_test"] == 20_000
    assert abs(external["rows_test"] / 20_000 - 0.25) < 0.02
    assert abs(external["metrics"]["roc_auc"] - memory["metrics"]["roc_auc"]) < 0.01
    # on the same fresh rows, through the exported ONNX graphs: the same AUC
    fresh = pl.read_parquet(mixed_big / "fresh.parquet")
    auc_mem = auc_on(tmp_path / "mem" / "model.onnx", fresh, memory["classes"])
    auc_ext = auc_on(tmp_path / "ext" / "model.onnx", fresh, external["classes"])
    print(f"fresh AUC: in memory {auc_mem:.4f}, external {auc_ext:.4f}")
    assert abs(auc_ext - auc_mem) <= 0.005, (auc_ext, auc_mem)
    assert not (tmp_path / "ext" / "xgb-cache").exists()   # cache pages removed
    held = pl.read_parquet(tmp_path / "ext" / "holdout.parquet")
    assert held.height == external["parity"]["holdout_rows"] > 0
    assert "customer id" not in held.columns


def test_run_job_external_same_seed_identical_metrics(data_dir: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sizing, "BATCH_ROWS", 64)
    a = run(data_dir, tmp_path / "a", xgb_job("external"), "mixed")
    b = run(data_dir, tmp_path / "b", xgb_job("external"), "mixed")
    assert a["ok"] and a["metrics"] == b["metrics"]
    assert (tmp_path / "a" / "model.onnx").read_bytes() == (tmp_path / "b" / "model.onnx").read_bytes()


@pytest.mark.parametrize(("kind", "dataset", "target"), [
    ("xgboost.XGBClassifier", "wine", "target"),        # three classes
    ("xgboost.XGBRegressor", "diabetes", "target"),
    ("xgboost.XGBRegressor", "mixed", "amount"),         # categorical columns, missing values
])
def test_run_job_external_multiclass_and_regression_pass_parity(
        kind: str, dataset: str, target: str, data_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sizing, "BATCH_ROWS", 64)
    exclude = {"exclude": ["customer id", "group", "label"]} if dataset == "mixed" else {}
    spec = job(kind, target, params={"n_estimators": 10}, features=exclude,
               data={"mode": "external"})
    result = run(data_dir, tmp_path, spec, dataset)
    assert_trained(result, tmp_path)
    assert result["data"]["mode"] == "external"
    if kind.endswith("Classifier"):
        assert result["classes"] == [0, 1, 2] and result["metrics"]["accuracy"] > 0.8
    else:
        assert result["metrics"]["r2"] > 0.2


def test_run_job_external_fairness_on_holdout_sample(data_dir: Path, tmp_path: Path,
                                                     small_batches: None) -> None:
    spec = job("xgboost.XGBClassifier", "label", features=MIXED, params={"n_estimators": 10},
               fairness={"sensitive": ["group"]}, data={"mode": "external"})
    result = run(data_dir, tmp_path, spec, "mixed")
    assert_trained(result, tmp_path)
    assert result["fairness"] is not None
    json.dumps(result["fairness"], allow_nan=False)


def test_run_job_external_search_trials_train_from_batches_and_refit_best(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sizing, "BATCH_ROWS", 128)
    spec = xgb_job("external", search={"kind": "grid", "params": {"max_depth": [1, 4]}})
    result = run(data_dir, tmp_path, spec, "mixed")
    assert result["data"]["mode"] == "external"
    assert_trained(result, tmp_path)
    trials = result["trials"]
    assert [t["params"] for t in trials] == [{"max_depth": 1}, {"max_depth": 4}]
    assert all(0.5 < t["metrics"]["roc_auc"] <= 1 for t in trials)
    metric = result["metric"]
    assert result["best_trial"] in trials
    pick = max if result["higher_is_better"] else min
    assert result["best_trial"]["metrics"][metric] == pick(t["metrics"][metric] for t in trials)
    assert result["params"]["max_depth"] == result["best_trial"]["params"]["max_depth"]
    assert [s["step"] for s in result["metric_steps"] if s["key"] == f"search.{metric}"] == [0, 1]
    assert any(stage == "search" for stage, _ in result["_stages"])
    assert not (tmp_path / "xgb-cache").exists()


def test_run_job_external_search_too_few_rows_refused(tmp_path: Path) -> None:
    mixed_frame(3, seed=5).write_parquet(tmp_path / "few.parquet")
    spec = xgb_job("external", search={"params": {"max_depth": [2, 3]}})
    result = run(tmp_path, tmp_path / "out", spec, "few")
    assert result["ok"] is False and result["error"]["field"] in ("search", "split.test_size")


def test_run_job_external_null_targets_left_out(tmp_path: Path, small_batches: None) -> None:
    frame = mixed_frame(3000, seed=5).with_columns(
        pl.when(pl.col("customer id") % 10 == 0).then(None).otherwise(pl.col("label"))
        .alias("label"))
    frame.write_parquet(tmp_path / "nulls.parquet")
    spec = job("xgboost.XGBClassifier", "label", features=MIXED, params={"n_estimators": 5},
               data={"mode": "external"})
    result = run(tmp_path, tmp_path / "out", spec, "nulls")
    assert_trained(result, tmp_path / "out")
    assert result["rows_train"] + result["rows_test"] == 2700
    assert "300 rows without a target value were left out" in result["warnings"]


# -- scikit-learn: refused past the cap, or a seeded sample ----------------------------------

def test_run_job_sklearn_past_cap_refused_with_size_cap_and_options(mixed_big: Path,
                                                                    tmp_path: Path) -> None:
    spec = job("RandomForestClassifier", "label", features=MIXED)
    result = run(mixed_big, tmp_path, spec, "big", memory_mb=TINY_CAP_MB)
    assert result["ok"] is False
    error = result["error"]
    assert error["type"] == "invalid_input" and error["field"] == "data.mode"
    assert "MB in memory" in error["message"] and "cap is 1 MB" in error["message"]
    assert "mode: sample" in error["message"]
    assert not (tmp_path / "model.onnx").exists()


def test_run_job_sklearn_sample_mode_trains_on_seeded_sample_with_warning(
        mixed_big: Path, tmp_path: Path, small_batches: None) -> None:
    spec = job("LogisticRegression", "label", features=MIXED,
               data={"mode": "sample", "sample_rows": 2000})
    a = run(mixed_big, tmp_path / "a", spec, "big", memory_mb=TINY_CAP_MB)
    assert_trained(a, tmp_path / "a")
    assert a["rows_train"] + a["rows_test"] == 2000
    assert any("seeded sample of 2,000 of 20,000 rows" in w for w in a["warnings"])
    assert a["data"]["mode"] == "sample" and a["data"]["sample_rows"] == 2000
    b = run(mixed_big, tmp_path / "b", spec, "big", memory_mb=TINY_CAP_MB)
    assert a["metrics"] == b["metrics"]   # the same seed picks the same rows
    assert a["metrics"]["roc_auc"] > 0.9


def test_worker_external_mode_trains_under_its_address_space_cap(data_dir: Path,
                                                                 tmp_path: Path) -> None:
    """Through the real child, under RLIMIT_AS: the cache pages and batches fit the cap."""
    from .test_worker import worker

    spec = job("xgboost.XGBClassifier", "label", params={"n_estimators": 5}, features=MIXED,
               data={"mode": "external"})
    request = {"job": spec, "parquet_path": str(data_dir / "mixed.parquet"),
               "out_dir": str(tmp_path / "out"), "memory_mb": 4096}
    code, messages = worker(json.dumps(request).encode() + b"\n")
    result = messages[-1]["result"]
    assert code == 0 and result["ok"], result["error"]
    assert result["data"]["mode"] == "external" and result["parity"]["passed"]
    stages = [m["progress"]["stage"] for m in messages[:-1]]
    assert stages[:4] == ["load", "scan", "fit", "evaluate"]
    fractions = [m["progress"]["fraction"] for m in messages[:-1]]
    assert fractions == sorted(fractions)


def test_run_job_external_target_without_values_refused(tmp_path: Path) -> None:
    pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": pl.Series([None] * 4, dtype=pl.String)}) \
        .write_parquet(tmp_path / "empty.parquet")
    spec = job("xgboost.XGBClassifier", "y", data={"mode": "external"})
    result = run(tmp_path, tmp_path / "out", spec, "empty")
    assert result["ok"] is False and result["error"]["field"] == "target"
    assert "has no values" in result["error"]["message"]


def test_run_job_external_literal_missing_category_and_empties_train(tmp_path: Path) -> None:
    """A category spelled like the imputed one, beside real missing values, is one category."""
    n = 600
    rng = np.random.default_rng(1)
    color = rng.choice(["red", "(missing)", "", None], n).tolist()
    x = rng.normal(size=n)
    y = np.where(x + rng.normal(scale=0.5, size=n) > 0, "a", "b").tolist()
    pl.DataFrame({"x": x, "color": color, "y": y}).write_parquet(tmp_path / "cats.parquet")
    spec = job("xgboost.XGBClassifier", "y", data={"mode": "external"},
               params={"n_estimators": 5})
    result = run(tmp_path, tmp_path / "out", spec, "cats")
    assert_trained(result, tmp_path / "out")


def test_parse_job_sample_rows_without_sample_mode_refused() -> None:
    text = "name: j\ndataset: d\ntarget: y\nmodel: {kind: Ridge}\ndata: {sample_rows: 50}\n"
    with pytest.raises(InvalidInput, match="sample_rows is for mode: sample") as info:
        parse_job(text)
    assert info.value.detail["field"] == "data" and info.value.detail["line"] == 5


def test_batches_hold_one_batch_not_the_file_read_so_far(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setattr(sizing, "BATCH_ROWS", 10_000)
    values = np.random.default_rng(0).normal(size=(300_000, 10))
    table = pa.table({f"c{i}": values[:, i] for i in range(10)})
    pq.write_table(table, tmp_path / "v.parquet", row_group_size=20_000)
    data_bytes = values.nbytes   # 24 MB
    del table, values
    base = pa.total_allocated_bytes()
    peak, rows = 0, 0
    for start, frame in sizing.batches(tmp_path / "v.parquet"):
        assert start == rows
        rows += frame.height
        peak = max(peak, pa.total_allocated_bytes() - base)
    assert rows == 300_000
    assert peak < data_bytes / 2, peak   # with pre-buffering Arrow kept ~all of it (34 MB)


def test_read_sample_of_no_rows_reads_the_schema_not_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: an empty sample fell back to ``pl.read_parquet(path).head(0)``."""
    path = tmp_path / "v.parquet"
    mixed_frame(2000, seed=1).write_parquet(path)
    reads: list[object] = []
    real = pl.read_parquet

    def spy(*args: object, **kwargs: object) -> pl.DataFrame:
        reads.append(kwargs.get("n_rows"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pl, "read_parquet", spy)
    empty = sizing.read_sample(path, 0, 10**9, seed=7)   # so small a share that no row is kept
    assert empty.height == 0 and empty.columns == mixed_frame(1).columns
    assert reads == [0]
