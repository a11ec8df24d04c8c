"""Explanations from what training leaves: exact TreeSHAP for XGBoost, sampling Shapley over
ONNX, and the global importances on the card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from appliance.serve.explain import tree_contributions
from appliance.serve.shapley import sampling_shapley
from appliance.train.child.explainer import BACKGROUND, BOOSTER, PREPROCESS, Preprocess
from appliance.train.child.parity import onnx_feeds, onnx_session
from appliance.train.child.pipeline import Feature, prepare_frame

from .conftest import job, run

EXCLUDE = ["customer id", "group", "amount"]


@pytest.fixture(scope="module")
def xgb(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("xgb-explain")
    result = run(data_dir, out, job("xgboost.XGBClassifier", target="label",
                                    features={"exclude": EXCLUDE}, metric="roc_auc",
                                    params={"n_estimators": 40, "max_depth": 4}), "mixed")
    assert result["ok"], result["error"]
    return {"out": out, "result": result}


def _booster(out: Path) -> Any:
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(bytearray((out / BOOSTER).read_bytes()))
    return booster


def _holdout(out: Path, result: dict[str, Any]) -> tuple[Any, list[Feature], Any]:
    """(prepared holdout frame, features, ONNX session) of a trained run."""
    features = [Feature(**f) for f in result["features"]]
    frame = prepare_frame(pl.read_parquet(out / "holdout.parquet"), features)
    return frame, features, onnx_session((out / "model.onnx").read_bytes())


def _columns(frame: Any, i: int) -> dict[str, Any]:
    return {c: frame[c].to_numpy()[i:i + 1].reshape(1, 1) for c in frame.columns}


def test_write_explainer_keeps_booster_as_json_and_preprocessing_that_matches(
        xgb: dict[str, Any]) -> None:
    out = xgb["out"]
    doc = json.loads((out / BOOSTER).read_text())   # XGBoost's JSON model, no pickle
    assert "learner" in doc
    spec = Preprocess.from_json((out / PREPROCESS).read_text())
    assert Preprocess.from_json(spec.to_json()) == spec
    assert set(spec.categorical) == {"color", "size"} and "(missing)" in spec.categories[0]
    background = pl.read_parquet(out / BACKGROUND)
    assert 0 < background.height <= 100
    assert set(background.columns) == {f["name"] for f in xgb["result"]["features"]}


def test_tree_shap_contributions_sum_to_the_margin_and_its_sigmoid_is_the_onnx_probability(
        xgb: dict[str, Any]) -> None:
    import xgboost

    out, result = xgb["out"], xgb["result"]
    booster = _booster(out)
    spec = Preprocess.from_json((out / PREPROCESS).read_text())
    frame, _, session = _holdout(out, result)
    columns = {i.name: c for i, c in zip(session.get_inputs(), frame.columns, strict=True)}
    proba = session.run(None, onnx_feeds(session, frame, columns))[1][:, 1]
    for i in range(20):
        row = _columns(frame, i)
        per_column, base = tree_contributions(booster, spec, row, None)
        assert set(per_column) == set(frame.columns)  # one-hot columns summed back
        margin = float(booster.predict(xgboost.DMatrix(spec.transform(row)),
                                       output_margin=True)[0])
        total = base + sum(per_column.values())
        assert total == pytest.approx(margin, abs=1e-4)
        assert 1 / (1 + np.exp(-total)) == pytest.approx(float(proba[i]), abs=1e-5)


def test_sampling_shapley_agrees_with_tree_shap_in_sign_and_ranking(xgb: dict[str, Any]) -> None:
    from scipy.stats import spearmanr

    out, result = xgb["out"], xgb["result"]
    booster = _booster(out)
    spec = Preprocess.from_json((out / PREPROCESS).read_text())
    frame, features, session = _holdout(out, result)
    names = [i.name for i in session.get_inputs()]
    columns = dict(zip(names, frame.columns, strict=True))
    background_frame = prepare_frame(pl.read_parquet(out / BACKGROUND), features)
    background = onnx_feeds(session, background_frame, columns)

    def score(feeds: dict[str, Any]) -> Any:
        return session.run(None, feeds)[1][:, 1]

    agreed = 0
    rows = 8
    for i in range(rows):
        exact, _ = tree_contributions(booster, spec, _columns(frame, i), None)
        row = onnx_feeds(session, frame.iloc[i:i + 1], columns)
        sampled = sampling_shapley(score, row, background, names, permutations=32, seed=1)
        approx = {columns[n]: v for n, v in zip(names, sampled.contributions, strict=True)}
        assert sampled.base_value + sampled.contributions.sum() == pytest.approx(
            sampled.score, abs=1e-9)
        order = list(frame.columns)
        top = max(abs(v) for v in exact.values())
        strong = [c for c in order if abs(exact[c]) > 0.25 * top]
        assert all(np.sign(exact[c]) == np.sign(approx[c]) for c in strong), (exact, approx)
        ranked_exact = sorted(order, key=lambda c: -abs(exact[c]))
        ranked_approx = sorted(order, key=lambda c: -abs(approx[c]))
        rho = spearmanr([abs(exact[c]) for c in order], [abs(approx[c]) for c in order])[0]
        agreed += ranked_exact[0] == ranked_approx[0] and rho > 0.6
    assert agreed >= rows - 1


def test_sampling_shapley_is_exact_for_a_linear_model() -> None:
    rng = np.random.default_rng(3)
    weights = np.array([2.0, -1.0, 0.5, 0.0])
    background = {f"x{j}": rng.normal(size=(30, 1)).astype(np.float32) for j in range(4)}
    row = {f"x{j}": np.array([[1.5 - j]], dtype=np.float32) for j in range(4)}
    names = list(row)

    def score(feeds: dict[str, Any]) -> Any:
        return sum(w * feeds[n].reshape(-1).astype(np.float64) for w, n in zip(weights, names))

    result = sampling_shapley(score, row, background, names, permutations=4, seed=0)
    expected = [w * (float(row[n][0, 0]) - float(background[n].mean()))
                for w, n in zip(weights, names)]
    assert result.contributions == pytest.approx(expected, abs=1e-6)
    again = sampling_shapley(score, row, background, names, permutations=4, seed=0)
    assert np.array_equal(again.contributions, result.contributions)  # seeded


def test_sampling_shapley_mixes_text_inputs_with_the_background() -> None:
    background = {"color": np.array([["red"], ["blue"]], dtype=object),
                  "n": np.array([[0.0], [0.0]], dtype=np.float32)}
    row = {"color": np.array([["red"]], dtype=object), "n": np.array([[2.0]], dtype=np.float32)}

    def score(feeds: dict[str, Any]) -> Any:
        return (feeds["color"].reshape(-1) == "red").astype(float) + feeds["n"].reshape(-1)

    result = sampling_shapley(score, row, background, ["color", "n"], permutations=2)
    assert result.contributions == pytest.approx([0.5, 2.0])
    assert result.base_value == pytest.approx(0.5) and result.score == pytest.approx(3.0)


def test_run_job_records_global_importances_permutation_and_native(xgb: dict[str, Any]) -> None:
    imp = xgb["result"]["importances"]
    assert imp["metric"] == "roc_auc" and imp["native_kind"] == "total_gain"
    features = {f["feature"]: f for f in imp["features"]}
    assert set(features) == {f["name"] for f in xgb["result"]["features"]}
    # the label is driven by score and income, never by size (see conftest.mixed_frame)
    assert imp["features"][0]["feature"] in ("score", "income/month")
    assert features["score"]["permutation"] > 5 * abs(features["size"]["permutation"])
    assert sum(f["native"] for f in imp["features"]) == pytest.approx(1.0)


def test_run_job_linear_model_gets_coefficient_importances_and_no_booster(
        data_dir: Path, tmp_path: Path) -> None:
    result = run(data_dir, tmp_path, job("LogisticRegression", target="label",
                                         features={"exclude": EXCLUDE}, metric="accuracy"),
                 "mixed")
    assert result["ok"], result["error"]
    assert result["importances"]["native_kind"] == "coefficient"
    assert result["importances"]["metric"] == "accuracy"
    assert (tmp_path / BACKGROUND).is_file() and not (tmp_path / BOOSTER).exists()


def test_preprocess_unknown_and_missing_categories_match_the_pipeline(xgb: dict[str, Any]) -> None:
    spec = Preprocess.from_json((xgb["out"] / PREPROCESS).read_text())
    columns: dict[str, Any] = {n: np.array([np.nan]) for n in spec.numeric}
    columns.update({"color": np.array(["purple"], dtype=object),
                    "size": np.array([""], dtype=object)})
    matrix = spec.transform(columns)
    assert matrix[0, :len(spec.numeric)].tolist() == list(spec.medians)
    color = spec.categories[spec.categorical.index("color")]
    start = len(spec.numeric) + (0 if spec.categorical[0] == "color"
                                 else len(spec.categories[0]))
    assert matrix[0, start:start + len(color)].sum() == 0   # unknown: ignored, as one-hot does


@pytest.mark.parametrize("n_classes", [0, 2, 3])
def test_fast_metrics_agree_with_the_training_metrics(n_classes: int) -> None:
    from appliance.train.child import metrics
    from appliance.train.child.importance import fast_metrics

    rng = np.random.default_rng(n_classes)
    if n_classes == 0:
        y, pred = rng.normal(size=200), rng.normal(size=200)
        ours = fast_metrics("regression", y, pred, None, 0)
        theirs = metrics.task_metrics("regression", y, pred, None, 0)
    else:
        y = rng.integers(0, n_classes, 200)
        proba = rng.dirichlet(np.ones(n_classes), 200)
        proba[:20] = np.round(proba[:20], 1)    # ties
        pred = proba.argmax(axis=1)
        ours = fast_metrics("classification", y, pred, proba, n_classes)
        theirs = metrics.task_metrics("classification", y, pred, proba, n_classes)
    assert ours.keys() == theirs.keys()
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_tree_shap_of_an_xgboost_regressor_adds_up_to_its_onnx_prediction(
        data_dir: Path, tmp_path: Path) -> None:
    result = run(data_dir, tmp_path, job("xgboost.XGBRegressor", target="amount",
                                         features={"exclude": ["customer id", "label"]},
                                         params={"n_estimators": 30}), "mixed")
    assert result["ok"], result["error"]
    booster = _booster(tmp_path)
    spec = Preprocess.from_json((tmp_path / PREPROCESS).read_text())
    frame, _, session = _holdout(tmp_path, result)
    columns = {i.name: c for i, c in zip(session.get_inputs(), frame.columns, strict=True)}
    value = session.run(None, onnx_feeds(session, frame, columns))[0].reshape(-1)
    for i in range(10):
        per_column, base = tree_contributions(booster, spec, _columns(frame, i), None)
        assert base + sum(per_column.values()) == pytest.approx(float(value[i]), rel=1e-5)
