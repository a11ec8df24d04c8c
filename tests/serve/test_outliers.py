"""Outlier scoring on the serving path: a version with a detector logs each row's flag and
score, counts them on /metrics, and GET /models/{name}/outliers reads the window back;
versions without a detector (older ones, uploads) are served as before."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from appliance_test_support import logged_in, make_settings
from outlier_model import customers, out_of_range, register_churn
from sqlalchemy import text


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    """(a TestClient logged in as admin, its in-process appliance), shared by the module:
    each test registers a model of its own."""
    from fastapi.testclient import TestClient

    from appliance.api.app import create_app
    from appliance.runtime import build

    app = build(make_settings(tmp_path_factory.mktemp("outliers") / "home"))
    try:
        with TestClient(create_app(app)) as client:
            yield logged_in(client), app
    finally:
        app.close()


@pytest.fixture
def api(served: tuple[Any, Any]) -> Any:
    return served[0]


@pytest.fixture
def appliance_app(served: tuple[Any, Any]) -> Any:
    return served[1]


def logged(app: Any, model: str) -> list[tuple[Any, ...]]:
    app.serving.log.flush()
    with app.store.read() as s:
        return s.execute(text("SELECT request_id, outlier, outlier_score FROM predictions "
                              "WHERE model = :m ORDER BY request_id"), {"m": model}).fetchall()


def test_predict_logs_the_outlier_flag_and_score_of_every_row(api: Any,
                                                              appliance_app: Any) -> None:
    register_churn(appliance_app.registry)
    normal = [{**r, "request_id": f"n{i:02d}"} for i, r in enumerate(customers(40))]
    odd = [{**out_of_range(r), "request_id": f"x{i}"} for i, r in enumerate(customers(3, 7))]

    resp = api.post("/api/v1/models/churny/predict", json=normal + odd)

    assert resp.status_code == 200, resp.text
    assert set(resp.json()) == {"model", "version", "route", "predictions", "probabilities",
                                "request_ids"}   # nothing new in the answer
    rows = {r[0]: (r[1], r[2]) for r in logged(appliance_app, "churny")}
    assert len(rows) == 43
    assert all(rows[f"x{i}"][0] is True and rows[f"x{i}"][1] < -0.5 for i in range(3))
    flagged = sum(1 for rid, (flag, _) in rows.items() if rid.startswith("n") and flag)
    assert flagged <= 3   # contamination 2% of 40, and a little slack
    assert all(isinstance(score, float) for _, score in rows.values())


def test_outliers_route_reports_share_per_version_series_and_examples(
        api: Any, appliance_app: Any) -> None:
    register_churn(appliance_app.registry, "churn-report")
    odd = out_of_range(customers(1, 9)[0])
    long_text = {**customers(1, 11)[0], "plan": "p" * 500, "age": -5000}
    body = [*customers(30), {**odd, "request_id": "odd"}, {**long_text, "request_id": "long"}]
    assert api.post("/api/v1/models/churn-report/predict", json=body).status_code == 200

    report = api.get("/api/v1/models/churn-report/outliers",
                     params={"window_hours": 1, "bucket_hours": 0.5}).json()

    assert report["rows"] == report["checked"] == 32
    assert report["outliers"] >= 2 and report["share"] == report["outliers"] / 32
    [version] = report["versions"]
    assert version["version"] == 1 and version["contamination"] == pytest.approx(0.02)
    assert sum(b["checked"] for b in report["series"]) == 32
    flagged = {e["request_id"]: e for e in report["examples"]}
    assert {"odd", "long"} <= set(flagged)
    assert report["examples"][0]["request_id"] == "long"   # two values out of range: lowest
    assert len(flagged["long"]["inputs"]["plan"]) == 200
    assert flagged["odd"]["inputs"]["age"] == "900"


def test_a_version_without_a_detector_is_served_and_counted_as_unchecked(
        api: Any, appliance_app: Any) -> None:
    register_churn(appliance_app.registry, "plain", detector=False)
    assert api.get("/api/v1/models/plain/versions/1").json()["outliers"] is None

    assert api.post("/api/v1/models/plain/predict", json=customers(5)).status_code == 200

    assert [r[1:] for r in logged(appliance_app, "plain")] == [(None, None)] * 5
    report = api.get("/api/v1/models/plain/outliers").json()
    assert (report["rows"], report["checked"], report["share"]) == (5, 0, None)


def test_metrics_count_checked_and_flagged_rows_per_version(api: Any,
                                                            appliance_app: Any) -> None:
    register_churn(appliance_app.registry, "churn-metrics")
    body = [*customers(10), out_of_range(customers(1, 3)[0])]
    assert api.post("/api/v1/models/churn-metrics/predict", json=body).status_code == 200
    appliance_app.serving.log.flush()   # the writer scores and counts as it logs

    scrape = api.get("/metrics").text

    assert ('appliance_prediction_outlier_checks_total{model="churn-metrics",version="1"} 11.0'
            in scrape)
    flagged = [line for line in scrape.splitlines()
               if line.startswith('appliance_prediction_outliers_total{model="churn-metrics"')]
    assert len(flagged) == 1 and float(flagged[0].split()[-1]) >= 1


@pytest.mark.parametrize(("params", "field"), [({"window_hours": 0}, "window_hours"),
                                               ({"window_hours": 2, "bucket_hours": 3},
                                                "bucket_hours"),
                                               ({"examples": 500}, "examples")])
def test_outliers_route_refuses_bad_windows(api: Any, params: dict[str, Any],
                                            field: str) -> None:
    resp = api.get("/api/v1/models/churny/outliers", params=params)
    assert resp.status_code in (400, 422), resp.text
    assert field in resp.text


def test_outliers_route_404s_for_an_unknown_model(api: Any) -> None:
    assert api.get("/api/v1/models/ghost/outliers").status_code == 404
