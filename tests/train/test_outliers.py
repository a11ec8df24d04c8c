"""The outlier detector fitted at training: it flags out-of-range rows, leaves holdout rows
mostly alone (about its contamination), and its ONNX graph scores what the native
isolation forest scores, missing values and unknown categories included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import polars as pl
import pytest

from appliance.errors import InvalidInput
from appliance.train import estimators
from appliance.train.child.outliers import (
    detector_onnx,
    fit_detector,
    native_scores,
    outlier_report,
    range_bounds,
)
from appliance.train.child.parity import onnx_feeds, onnx_session
from appliance.train.child.pipeline import prepare_frame, select_features
from appliance.train.spec import parse_job

from .conftest import job, mixed_frame, run

TOLERANCE = 0.015   # holdout flag rate: at most the contamination plus this


def synthetic(n: int, seed: int) -> pl.DataFrame:
    """Fixed-seed numbers (normal, skewed, integer) and categories."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "x": rng.normal(0.0, 1.0, n), "income": rng.lognormal(3.0, 0.4, n),
        "age": rng.integers(18, 80, n), "plan": rng.choice(["a", "b", "c"], n).tolist(),
        "region": rng.choice(["north", "south"], n, p=[0.7, 0.3]).tolist(),
        "label": rng.integers(0, 2, n)})


def prepared(frame: pl.DataFrame) -> tuple[Any, list[Any]]:
    features, _ = select_features(dict(frame.schema), target="label", include=None, exclude=None)
    return prepare_frame(frame, features), features


def onnx_scores(data: bytes, frame: Any, features: list[Any]) -> tuple[Any, Any]:
    session = onnx_session(data)
    columns = {i.name: f.name for i, f in zip(session.get_inputs(), features, strict=True)}
    score, flag = session.run(None, onnx_feeds(session, frame, columns))
    return score.reshape(-1), flag.reshape(-1)


@pytest.mark.parametrize("contamination", [0.01, 0.05])
def test_detector_leaves_holdout_rows_mostly_unflagged_and_flags_out_of_range_rows(
        contamination: float) -> None:
    X, features = prepared(synthetic(3000, seed=1))
    train, holdout = X.iloc[:2400], X.iloc[2400:].reset_index(drop=True)
    info = estimators.resolve("LogisticRegression")

    data, facts = outlier_report(info, features, [f.name for f in features], train, holdout,
                                 contamination=contamination, seed=0, range_margin=0.5)

    assert data is not None and facts["parity"]["passed"], facts
    _, flags = onnx_scores(data, holdout, features)
    assert flags.mean() <= contamination + TOLERANCE
    assert facts["holdout_rate"] == pytest.approx(flags.mean())
    assert facts["training_rate"] == pytest.approx(contamination, abs=0.01)
    injected = holdout.iloc[:50].copy()
    column = np.array(["x", "income", "age"])[np.arange(50) % 3]
    for i, name in enumerate(column):   # one value a row, far past the training range
        span = train[name].max() - train[name].min()
        injected.loc[i, name] = train[name].max() + 5 * span if i % 2 else \
            train[name].min() - 5 * span
    scores, flags = onnx_scores(data, injected, features)
    assert flags.all() and (scores < -0.5).all()


def test_isolation_forest_alone_flags_rows_extreme_in_every_number() -> None:
    X, features = prepared(synthetic(2000, seed=2))
    info = estimators.resolve("LogisticRegression")
    data, facts = outlier_report(info, features, [f.name for f in features], X.iloc[:1600],
                                 X.iloc[1600:].reset_index(drop=True), contamination=0.01,
                                 seed=0, range_margin=None)
    assert data is not None, facts
    odd = X.iloc[:20].copy()
    for name in ("x", "income", "age"):
        odd[name] = X[name].max() * 1.05 if name != "x" else X[name].max() + 0.5
    assert onnx_scores(data, odd, features)[1].all()


def test_detector_onnx_scores_as_the_native_forest_with_missing_and_unknown_values() -> None:
    frame = mixed_frame(600, seed=3)
    features, _ = select_features(dict(frame.schema), target="label", include=None,
                                  exclude=["customer id", "signup", "amount"])
    X = prepare_frame(frame, features)
    info = estimators.resolve("xgboost.XGBClassifier")
    detector = fit_detector(info, features, X, contamination=0.02, seed=0)
    bounds = range_bounds(X, features, 0.5)
    data = detector_onnx(detector, features, [f.name.replace("/", "_") for f in features],
                         bounds=bounds)
    odd = X.iloc[:40].copy()
    odd.loc[:9, "income/month"] = np.nan       # missing numbers: their median's branch
    odd.loc[10:19, "color"] = ""               # missing text: the (missing) category
    odd.loc[20:29, "size"] = "XXXL"            # a category never seen: all-zero one-hot
    odd.loc[30:, "age"] = 10_000.0             # out of range
    frame_all = pd.concat([X, odd], ignore_index=True)

    scores, flags = onnx_scores(data, frame_all, features)

    native = native_scores(detector, frame_all, bounds)
    assert np.abs(scores - native).max() < 1e-5
    assert (flags == (native < 0)).all()
    assert flags[-10:].all()


def test_detector_takes_the_model_inputs_even_when_a_column_name_is_renamed() -> None:
    frame = mixed_frame(300, seed=5)
    features, _ = select_features(dict(frame.schema), target="label", include=None,
                                  exclude=["customer id", "signup", "amount"])
    X = prepare_frame(frame, features)
    names = [f.name.replace("/", "_") for f in features]
    data = detector_onnx(fit_detector(estimators.resolve("LogisticRegression"), features, X,
                                      contamination=0.01, seed=0), features, names)
    model = onnx.load_from_string(data)
    assert [i.name for i in model.graph.input] == names
    assert [o.name for o in model.graph.output] == ["score_", "outlier"]   # "score" is a column
    assert len(model.graph.node) <= 3 + sum(f.kind == "categorical" for f in features)


def test_run_job_writes_the_detector_beside_the_model_with_the_same_inputs(
        data_dir: Path, tmp_path: Path) -> None:
    spec = job("LogisticRegression", target="label",
               features={"exclude": ["customer id", "amount", "group"]},
               outliers={"contamination": 0.03})
    result = run(data_dir, tmp_path, spec, "mixed")

    assert result["ok"], result["error"]
    facts = result["outliers"]
    assert facts["fitted"] and facts["parity"]["passed"] and facts["contamination"] == 0.03
    model = onnx.load(tmp_path / "model.onnx")
    detector = onnx.load(tmp_path / "outliers.onnx")
    assert [(i.name, i.type) for i in detector.graph.input] == \
        [(i.name, i.type) for i in model.graph.input]
    assert ("outliers", pytest.approx(0.88)) in result["_stages"]


def test_run_job_without_outliers_writes_no_detector(data_dir: Path, tmp_path: Path) -> None:
    spec = job("LogisticRegression", target="label",
               features={"exclude": ["customer id", "amount", "group", "signup"]},
               outliers={"enabled": False})
    result = run(data_dir, tmp_path, spec, "mixed")
    assert result["ok"] and result["outliers"] is None
    assert not (tmp_path / "outliers.onnx").exists()


@pytest.mark.parametrize("value", ["0", "0.9", "-1", "lots"])
def test_job_refuses_a_contamination_outside_0_to_half(value: str) -> None:
    text = ("name: t\ndataset: d\ntarget: y\nmodel: {kind: LogisticRegression}\n"
            f"outliers: {{contamination: {value}}}\n")
    with pytest.raises(InvalidInput) as err:
        parse_job(text)
    assert "outliers.contamination" in err.value.message


def test_job_outliers_default_to_on_at_one_percent() -> None:
    spec = parse_job("name: t\ndataset: d\ntarget: y\nmodel: {kind: LogisticRegression}\n")
    assert (spec.outliers.enabled, spec.outliers.contamination, spec.outliers.range_margin) \
        == (True, 0.01, 0.5)
