"""Drift in-process: synthetic shifts (fixed seeds) against the champion's training data."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest
from appliance_test_support import logged_in, make_settings, train_and_wait
from fastapi.testclient import TestClient
from served_model import CHURN_JOB

from appliance.demo import make_customers

JOB = CHURN_JOB  # the served churn model's job (tests/support/served_model.py)
SHIFTED = {"age", "region"}


def shifted(n: int, seed: int) -> pl.DataFrame:
    """Customers ten years older, most of them in one region; everything else as usual."""
    frame = make_customers(n, seed=seed, start_id=50_000 + seed * 10_000)
    first = frame["region"].min()
    pick = pl.Series([i % 10 < 7 for i in range(n)])
    return frame.with_columns(
        (pl.col("age") + 10).alias("age"),
        pl.when(pick).then(pl.lit(first)).otherwise(pl.col("region")).alias("region"),
    )


def _upload(client: TestClient, frame: pl.DataFrame, name: str, number: int) -> None:
    resp = client.post("/api/v1/datasets/customers/files", params={"filename": name},
                       content=frame.write_csv().encode(),
                       headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 201, resp.text
    deadline = time.monotonic() + 30
    while client.get(f"/api/v1/datasets/customers/versions/{number}").json().get(
            "summary_status") != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any]]:
    """churn v1 (champion) trained on customers@1; customers@2 is shifted."""
    from appliance.api.app import create_app
    from appliance.runtime import build

    app = build(make_settings(tmp_path_factory.mktemp("drift") / "home"))
    app.serving.log.start()
    try:
        api = create_app(app)
        with TestClient(api) as client:
            logged_in(client)
            _upload(client, make_customers(2000, seed=4), "c1.csv", 1)
            train_and_wait(client, JOB)
            _upload(client, shifted(2000, seed=5), "c2.csv", 2)  # after training on @1
            yield client, app
    finally:
        app.close()


def _drifted(report: dict[str, Any]) -> set[str]:
    return {f["column"] for f in report["features"] if f["drift"]}


def _predict(client: TestClient, frame: pl.DataFrame) -> None:
    rows = frame.drop("churned", "customer_id").to_dicts()
    resp = client.post("/api/v1/models/churn/predict", json=rows)
    assert resp.status_code == 200, resp.text


def test_a_shifted_dataset_version_is_detected_on_exactly_the_shifted_columns(
    monitored: tuple[TestClient, Any],
) -> None:
    client, _ = monitored
    resp = client.post("/api/v1/monitor/churn/drift", json={"dataset_version": 2})
    assert resp.status_code == 201, resp.text
    report = resp.json()
    assert _drifted(report) == SHIFTED, report
    assert report["drift"] is True and report["version"] == 1
    assert report["reference"] == "dataset:customers@1"
    assert report["current"] == "dataset:customers@2"
    assert report["rows_reference"] == 2000 and report["rows_current"] == 2000
    tests = {f["column"]: f["test"] for f in report["features"]}
    # 2000 reference rows: Evidently's large-sample choices (Wasserstein, Jensen-Shannon)
    assert tests["age"] == "wasserstein" and tests["region"] == "jensenshannon"
    assert tests["plan"] == "jensenshannon"
    assert "customer_id" not in tests and "churned" not in tests
    age = next(f for f in report["features"] if f["column"] == "age")
    assert age["kind"] == "numerical" and age["chosen"] == "auto"
    assert "2000 reference rows > 1000" in age["reason"] and age["p_value"] is None
    assert age["distance"] > age["threshold"] == 0.1
    p_tests = [f for f in report["features"] if f["p_value"] is not None]
    for f in p_tests:  # Bonferroni over the p-value tests only
        assert f["threshold"] == pytest.approx(0.05 / len(p_tests))
    assert report["prediction"]["test"] == "chi2" and 0 <= report["prediction"]["p_value"] <= 1
    multi = report["multivariate"]
    assert multi["drift"] is True and multi["auc"] > 0.6 and multi["p_value"] < 0.05
    assert set(multi["columns"]) == set(tests)


def test_drift_raises_one_alert_and_shows_p_values_on_metrics(
    monitored: tuple[TestClient, Any],
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    client, _ = monitored
    for _ in range(2):  # the same breach twice: one alert, counted twice
        assert client.post("/api/v1/monitor/churn/drift",
                           json={"dataset_version": 2}).json()["drift"] is True
    drift_alerts = [a for a in client.get("/api/v1/alerts").json() if a["kind"] == "drift"]
    assert len(drift_alerts) == 1 and drift_alerts[0]["count"] >= 2
    families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    distances = {s.labels["column"]: s.value
                 for s in families["appliance_drift_distance"].samples
                 if s.labels["model"] == "churn"}
    assert distances["age"] > 0.1 and distances["region"] > 0.1  # Wasserstein, Jensen-Shannon
    auc = [s.value for s in families["appliance_drift_multivariate_auc"].samples
           if s.labels["model"] == "churn"]
    assert auc and auc[0] > 0.6
    assert any(s.value == 1 for s in families["appliance_drift_detected"].samples)


def test_the_same_data_does_not_drift(monitored: tuple[TestClient, Any]) -> None:
    client, _ = monitored
    report = client.post("/api/v1/monitor/churn/drift", json={"dataset_version": 1}).json()
    assert _drifted(report) == set() and report["drift"] is False
    assert report["prediction"]["drift"] is False


def test_a_window_of_the_prediction_log_clean_then_shifted(
    monitored: tuple[TestClient, Any],
) -> None:
    client, app = monitored
    _predict(client, make_customers(800, seed=30, start_id=900_000))
    clean = app.drift.check("churn", window_hours=1, by="test")
    assert clean.current == "log:churn:1h" and clean.rows_current == 800
    assert set(clean.drifted) == set()
    assert clean.prediction["rows_current"] == 800 and clean.prediction["drift"] is False, clean.prediction

    for seed in (22, 23, 24):
        _predict(client, shifted(1000, seed=seed))
    report = app.drift.check("churn", window_hours=1, by="test")
    assert report.rows_current == 3800
    assert set(report.drifted) == SHIFTED and report.drift is True


def test_reports_are_stored_and_listed_newest_first(monitored: tuple[TestClient, Any]) -> None:
    client, app = monitored
    app.drift.check("churn", dataset_version=2, p_val=0.01, by="lister")
    listed = client.get("/api/v1/monitor/churn/drift", params={"limit": 2})
    assert listed.status_code == 200
    reports = listed.json()
    assert len(reports) == 2
    assert reports[0]["created_at"] >= reports[1]["created_at"]
    newest = reports[0]
    assert newest["created_by"] == "lister" and newest["p_val"] == 0.01
    assert _drifted(newest) == SHIFTED
    assert {"column", "test", "statistic", "p_value", "threshold", "drift"} <= set(
        newest["features"][0])
    assert str(app.drift.latest("churn").id) == newest["id"]


def test_clear_failures(monitored: tuple[TestClient, Any]) -> None:
    client, _ = monitored
    assert client.post("/api/v1/monitor/ghost/drift", json={}).status_code == 404
    assert client.post("/api/v1/monitor/churn/drift",
                       json={"dataset_version": 99}).status_code == 404
    assert client.post("/api/v1/monitor/churn/drift", json={"p_val": 2}).status_code == 422
    unknown = client.post("/api/v1/monitor/churn/drift", json={"tests": {"age": "kolmogorov"}})
    assert unknown.status_code == 422 and "unknown drift test 'kolmogorov'" in unknown.text
    assert client.post("/api/v1/monitor/churn/drift",
                       json={"thresholds": {"age": -1}}).status_code == 422
    ghost = client.post("/api/v1/monitor/churn/drift",
                        json={"dataset_version": 2, "tests": {"ghost": "psi"}})
    assert ghost.status_code == 400 and "not an input column" in ghost.text
    wrong = client.post("/api/v1/monitor/churn/drift",
                        json={"dataset_version": 2, "tests": {"region": "wasserstein"}})
    assert wrong.status_code == 400 and "is for numerical columns" in wrong.text
    # no predictions in a very short, already-past window
    resp = client.post("/api/v1/monitor/churn/drift", json={"window_hours": 1e-9})
    assert resp.status_code in (400, 422) and "no predictions" in resp.text
    assert client.get("/api/v1/monitor/ghost/drift").status_code == 404


def test_a_request_names_a_test_and_threshold_per_column(
    monitored: tuple[TestClient, Any],
) -> None:
    client, _ = monitored
    resp = client.post("/api/v1/monitor/churn/drift", json={
        "dataset_version": 2, "tests": {"age": "ks", "region": "psi"},
        "thresholds": {"region": 5.0}, "multivariate": False})
    assert resp.status_code == 201, resp.text
    report = resp.json()
    features = {f["column"]: f for f in report["features"]}
    assert features["age"]["test"] == "ks" and features["age"]["chosen"] == "override"
    assert features["age"]["drift"] is True and features["age"]["p_value"] < 1e-6
    assert features["region"]["test"] == "psi" and features["region"]["threshold"] == 5.0
    assert features["region"]["drift"] is False  # the PSI is well under a threshold of 5
    assert report["multivariate"] is None
