"""Live traffic and labelled metrics over time, from a prediction log written here.

The log is written straight into a real DuckDB store with fixed timestamps
and latencies, so that buckets, percentiles and the label join have exact
expected values; the service runs on a fixed clock. The API tests at the end
go through the real app factory with the real clock.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from appliance_test_support import make_settings
from fastapi.testclient import TestClient

from appliance.domain.principal import SYSTEM
from appliance.domain.roles import Role
from appliance.errors import InvalidInput, NotFound
from appliance.monitor.traffic import TrafficService
from appliance.store.predictions import append_labels, append_predictions

NOW = dt.datetime(2026, 3, 10, 12, 0, 30, tzinfo=dt.UTC)  # half a minute into 12:00
MINUTE = dt.datetime(2026, 3, 10, 11, 59, tzinfo=dt.UTC)  # the last complete minute
CLASSIFIER, REGRESSOR, OTHER = "tr_churn", "tr_price", "tr_other"


def tiny_onnx() -> bytes:
    """A valid single-file ONNX model (y = x + 1): the registry only needs the model to exist."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])], "tr_add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out: bytes = model.SerializeToString()
    return out


def entry(rid: str, model: str, version: int, prediction: Any, latency: float, at: dt.datetime,
          role: str = "primary", proba: Any = None) -> tuple[Any, ...]:
    return (rid, model, version, {"x": 1.0}, prediction, proba, latency, at, role)


def classifier_log() -> list[tuple[Any, ...]]:
    """In the 11:59 minute: v1 serves 100 requests (latency 1..100 ms, class "yes" for the
    first 30), a canary v2 serves 10 (5 ms), a shadow v3 scores the 100 again (7 ms).
    At 11:30: v1 serves 3. Two hours ago (outside the window): v1 serves 50."""
    out = []
    for i in range(100):
        at = MINUTE + dt.timedelta(seconds=i * 0.5)
        cls = "yes" if i < 30 else "no"
        proba = {"no": 0.2, "yes": 0.8} if cls == "yes" else {"no": 0.9, "yes": 0.1}
        out.append(entry(f"c{i}", CLASSIFIER, 1, cls, float(i + 1), at, proba=proba))
        out.append(entry(f"c{i}", CLASSIFIER, 3, "no", 7.0, at, role="shadow",
                         proba={"no": 0.6, "yes": 0.4}))
    for i in range(10):
        out.append(entry(f"k{i}", CLASSIFIER, 2, "yes", 5.0, MINUTE + dt.timedelta(seconds=i),
                         role="canary", proba={"no": 0.3, "yes": 0.7}))
    for i in range(3):
        out.append(entry(f"h{i}", CLASSIFIER, 1, "no", 2.0,
                         dt.datetime(2026, 3, 10, 11, 30, 10, tzinfo=dt.UTC),
                         proba={"no": 0.9, "yes": 0.1}))
    for i in range(50):
        out.append(entry(f"old{i}", CLASSIFIER, 1, "no", 1000.0, NOW - dt.timedelta(hours=2),
                         proba={"no": 0.9, "yes": 0.1}))
    return out


def regressor_log() -> list[tuple[Any, ...]]:
    """Yesterday and today (UTC days): v1 predicts 10.0 for r0..r9 at 10:00 each day."""
    out = []
    for day, rid in ((NOW - dt.timedelta(days=1), "y"), (NOW, "t")):
        at = day.replace(hour=10, minute=0, second=0)
        out += [entry(f"{rid}{i}", REGRESSOR, 1, 10.0, 3.0, at) for i in range(10)]
    return out


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Three registered models; a log for two of them, and labels, written at fixed times."""
    from appliance.runtime import build

    app = build(make_settings(tmp_path_factory.mktemp("traffic") / "home"))
    try:
        for name in (CLASSIFIER, REGRESSOR, OTHER):
            app.registry.register_upload(name, tiny_onnx(), by=SYSTEM)
        with app.store.write() as s:
            append_predictions(s, classifier_log() + regressor_log())
            # v1 requests c0..c19 are labelled: the label matches for c0..c14 (all "yes");
            # c15..c19 were predicted "yes" but are "no". c0 was first labelled wrongly: the
            # latest label counts. The canary's k0..k4 are labelled "yes" (right).
            append_labels(s, CLASSIFIER, [("c0", "no")], "api", NOW - dt.timedelta(minutes=5))
            append_labels(s, CLASSIFIER, [(f"c{i}", "yes") for i in range(15)]
                          + [(f"c{i}", "no") for i in range(15, 20)]
                          + [(f"k{i}", "yes") for i in range(5)], "api", NOW)
            # yesterday's r-values: labels 12.0 for y0..y4 (error 2); today's: 11.0 for t0 only
            append_labels(s, REGRESSOR, [(f"y{i}", 12.0) for i in range(5)] + [("t0", 11.0)],
                          "file", NOW)
        yield app
    finally:
        app.close()


@pytest.fixture(scope="module")
def service(appliance: Any) -> TrafficService:
    return TrafficService(appliance.store, appliance.registry, clock=lambda: NOW)


def by_key(rows: Sequence[Any], bucket: str | None = None) -> dict[tuple[int, bool], Any]:
    """Rows by (version, shadow); of one bucket (its start as the API writes it) if given."""
    return {(r.version, r.shadow): r for r in rows
            if bucket is None or r.bucket.isoformat() == bucket}


# -- traffic ----------------------------------------------------------------------------------


def test_traffic_buckets_every_minute_of_the_last_hour(service: TrafficService) -> None:
    out = service.traffic(CLASSIFIER, minutes=60, bucket_seconds=60)

    assert out.since.isoformat() == "2026-03-10T11:00:30+00:00"
    assert out.until.isoformat() == NOW.isoformat()
    buckets = [t.bucket.isoformat() for t in out.totals]
    assert len(buckets) == 61  # 11:00 (half inside) ... 12:00 (the current, half gone)
    assert buckets[0] == "2026-03-10T11:00:00+00:00" and buckets[-1] == "2026-03-10T12:00:00+00:00"
    served = {t.bucket.isoformat(): t for t in out.totals if t.requests}
    assert set(served) == {"2026-03-10T11:30:00+00:00", MINUTE.isoformat()}
    assert served[MINUTE.isoformat()].requests == 110  # v1 + canary; shadow is not traffic
    assert served[MINUTE.isoformat()].requests_per_second == pytest.approx(110 / 60)
    assert sum(t.requests for t in out.totals) == out.requests == 113
    assert out.requests_per_second == pytest.approx(113 / 3600)


def test_traffic_gives_latency_percentiles_per_version(service: TrafficService) -> None:
    out = service.traffic(CLASSIFIER, minutes=60, bucket_seconds=60)

    minute = by_key(out.series, MINUTE.isoformat())
    assert set(minute) == {(1, False), (2, False), (3, True)}
    v1 = minute[(1, False)]
    assert v1.requests == 100 and v1.canary == 0
    assert v1.p50_ms == pytest.approx(50.5)  # interpolated over 1..100 ms
    assert v1.p95_ms == pytest.approx(95.05)
    assert v1.p99_ms == pytest.approx(99.01)
    assert v1.mean_ms == pytest.approx(50.5) and v1.max_ms == 100.0
    canary = minute[(2, False)]
    assert canary.requests == canary.canary == 10 and canary.p99_ms == 5.0
    assert minute[(3, True)].requests == 100 and minute[(3, True)].p50_ms == 7.0
    window = by_key(out.versions)
    assert window[(1, False)].requests == 103  # the 11:30 requests too, not the old ones
    assert window[(1, False)].max_ms == 100.0


def test_traffic_counts_predicted_classes(service: TrafficService) -> None:
    out = service.traffic(CLASSIFIER, minutes=60, bucket_seconds=60)

    minute = by_key(out.series, MINUTE.isoformat())
    assert minute[(1, False)].classes == {"yes": 30, "no": 70}
    assert minute[(2, False)].classes == {"yes": 10}
    assert minute[(3, True)].classes == {"no": 100}


def test_traffic_of_a_regressor_has_no_classes(service: TrafficService) -> None:
    out = service.traffic(REGRESSOR, minutes=48 * 60, bucket_seconds=3600)

    assert out.series and all(r.classes is None for r in out.series)
    assert out.requests == 20


def test_traffic_of_a_quiet_model_is_all_zeros(service: TrafficService) -> None:
    out = service.traffic(OTHER, minutes=15, bucket_seconds=300)

    assert out.series == [] and out.versions == [] and out.requests == 0
    assert [t.requests for t in out.totals] == [0, 0, 0, 0]  # 11:45 (partial) .. 12:00


def test_a_partial_bucket_rate_counts_only_its_seconds_inside_the_window(
    service: TrafficService,
) -> None:
    out = service.traffic(CLASSIFIER, minutes=30, bucket_seconds=1800)

    first, current = out.totals  # 11:30 (30 s past the window start) and 12:00 (30 s)
    assert first.bucket.isoformat() == "2026-03-10T11:30:00+00:00"
    assert first.requests == 110  # 11:30:10 is before 11:30:30: outside the window
    assert first.requests_per_second == pytest.approx(110 / 1770)
    assert current.requests == 0


# -- metrics from labels ------------------------------------------------------------------------


def test_metrics_join_the_latest_label_and_give_accuracy_and_coverage(
    service: TrafficService,
) -> None:
    out = service.metrics(CLASSIFIER, hours=24, bucket_hours=1)

    hour = by_key(out.series, "2026-03-10T11:00:00+00:00")
    v1 = hour[(1, False)]
    assert v1.metric == "accuracy" and v1.rmse is None
    assert v1.predictions == 103 and v1.labelled == 20
    assert v1.accuracy == pytest.approx(15 / 20)  # c0's later, right label counts
    assert v1.label_coverage == pytest.approx(20 / 103)
    assert v1.mean_label_delay_s > 0
    canary = hour[(2, False)]
    assert canary.accuracy == 1.0 and canary.label_coverage == pytest.approx(0.5)
    shadow = hour[(3, True)]  # the shadow predicted "no" for c0..c19: right for 5 of 20
    assert shadow.labelled == 20 and shadow.accuracy == pytest.approx(5 / 20)
    assert len(out.buckets) == 25  # 12:00 yesterday ... 12:00 today, hour by hour
    window = by_key(out.versions)
    assert window[(1, False)].predictions == 153  # with the 2-hour-old requests


def test_metrics_of_a_regressor_give_rmse_per_day(service: TrafficService) -> None:
    out = service.metrics(REGRESSOR, hours=72, bucket_hours=24)

    assert [b.isoformat() for b in out.buckets[-2:]] == [
        "2026-03-09T00:00:00+00:00", "2026-03-10T00:00:00+00:00"]
    yesterday = by_key(out.series, "2026-03-09T00:00:00+00:00")[(1, False)]
    today = by_key(out.series, "2026-03-10T00:00:00+00:00")[(1, False)]
    assert yesterday.metric == "rmse" and yesterday.accuracy is None
    assert yesterday.rmse == pytest.approx(2.0) and yesterday.label_coverage == 0.5
    assert today.rmse == pytest.approx(1.0) and today.label_coverage == pytest.approx(0.1)
    window = by_key(out.versions)[(1, False)]
    assert window.labelled == 6
    assert window.rmse == pytest.approx(math.sqrt((5 * 4 + 1) / 6))


def test_metrics_without_labels_have_no_value_and_a_zero_coverage(
    service: TrafficService,
) -> None:
    out = service.metrics(CLASSIFIER, hours=24, bucket_hours=1)
    unlabelled = by_key(out.series, "2026-03-10T10:00:00+00:00")[(1, False)]
    assert unlabelled.predictions == 50 and unlabelled.labelled == 0
    assert unlabelled.accuracy is None and unlabelled.label_coverage == 0.0
    assert unlabelled.mean_label_delay_s is None


def test_metrics_of_a_model_that_served_nothing_are_empty(service: TrafficService) -> None:
    out = service.metrics(OTHER, hours=24, bucket_hours=1)
    assert out.series == [] and out.versions == [] and len(out.buckets) == 25


# -- bad parameters and unknown models ----------------------------------------------------------


@pytest.mark.parametrize("params", [
    {"minutes": 0}, {"minutes": -5}, {"minutes": 7 * 24 * 60 + 1}, {"minutes": True},
    {"minutes": 1.5}, {"bucket_seconds": 0}, {"bucket_seconds": 86_401},
    {"minutes": 5, "bucket_seconds": 301},  # wider than the window
    {"minutes": 1440, "bucket_seconds": 1},  # 86 400 buckets
], ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_bad_traffic_windows_are_invalid_input(service: TrafficService,
                                               params: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        service.traffic(CLASSIFIER, **params)


@pytest.mark.parametrize("params", [
    {"hours": 0}, {"hours": 10_000}, {"bucket_hours": 0}, {"hours": 24, "bucket_hours": 48},
    {"hours": 8000, "bucket_hours": 1}, {"bucket_hours": "24"},
], ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
def test_bad_metric_windows_are_invalid_input(service: TrafficService,
                                              params: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        service.metrics(CLASSIFIER, **params)


def test_an_unknown_model_is_not_found(service: TrafficService) -> None:
    with pytest.raises(NotFound):
        service.traffic("ghost")
    with pytest.raises(NotFound):
        service.metrics("ghost")


@pytest.mark.parametrize("name", ["../etc", "a" * 300, "", "Churn;DROP"])
def test_a_hostile_model_name_is_invalid_input(service: TrafficService, name: str) -> None:
    with pytest.raises(InvalidInput):
        service.traffic(name)
    with pytest.raises(InvalidInput):
        service.metrics(name)


# -- the API --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api(appliance: Any) -> Iterator[TestClient]:
    """The real app over the same store, with a viewer token; the log gets fresh rows now."""
    from appliance.api.app import create_app

    appliance.auth.add_user("tr_viewer", "viewer-password-1", Role.viewer, by=SYSTEM)
    token = appliance.auth.login("tr_viewer", "viewer-password-1").access_token
    now = dt.datetime.now(dt.UTC)
    with appliance.store.write() as s:
        append_predictions(s, [entry(f"live{i}", OTHER, 1, 1.5, 4.0, now - dt.timedelta(seconds=i))
                               for i in range(20)])
        append_labels(s, OTHER, [(f"live{i}", 2.5) for i in range(10)], "api", now)
    with TestClient(create_app(appliance)) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def test_a_viewer_reads_live_traffic_over_http(api: TestClient) -> None:
    resp = api.get(f"/api/v1/monitor/{OTHER}/traffic", params={"minutes": 5,
                                                                "bucket_seconds": 10})
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["requests"] == 20 and out["minutes"] == 5 and out["bucket_seconds"] == 10
    assert [(v["version"], v["requests"], v["p99_ms"]) for v in out["versions"]] == [(1, 20, 4.0)]
    assert api.get(f"/api/v1/monitor/{OTHER}/traffic").json()["bucket_seconds"] == 60  # defaults


def test_a_viewer_reads_live_metrics_over_http(api: TestClient) -> None:
    resp = api.get(f"/api/v1/monitor/{OTHER}/metrics", params={"hours": 2, "bucket_hours": 1})
    assert resp.status_code == 200, resp.text
    (version,) = resp.json()["versions"]
    assert version["metric"] == "rmse" and version["rmse"] == pytest.approx(1.0)
    assert version["label_coverage"] == pytest.approx(0.5)
    assert api.get(f"/api/v1/monitor/{OTHER}/metrics").json()["hours"] == 168


@pytest.mark.parametrize("route", ["traffic", "metrics"])
def test_the_routes_need_credentials(api: TestClient, route: str) -> None:
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer apl_not_a_token"}):
        resp = api.get(f"/api/v1/monitor/{OTHER}/{route}", headers=headers)
        assert resp.status_code == 401 and resp.json()["error"]["type"] == "unauthenticated"


@pytest.mark.parametrize("route", ["traffic", "metrics"])
def test_an_unknown_model_is_404(api: TestClient, route: str) -> None:
    resp = api.get(f"/api/v1/monitor/ghost/{route}")
    assert resp.status_code == 404 and resp.json()["error"]["type"] == "not_found"


@pytest.mark.parametrize(("route", "params"), [
    ("traffic", {"minutes": 0}), ("traffic", {"minutes": 100_000}),
    ("traffic", {"bucket_seconds": -1}), ("traffic", {"minutes": 1, "bucket_seconds": 120}),
    ("traffic", {"minutes": 1440, "bucket_seconds": 1}),
    ("metrics", {"hours": 0}), ("metrics", {"hours": 9000}), ("metrics", {"bucket_hours": 999}),
    ("metrics", {"hours": 8784, "bucket_hours": 1}),
])
def test_an_out_of_range_window_is_400_naming_the_field(api: TestClient, route: str,
                                                        params: dict[str, Any]) -> None:
    resp = api.get(f"/api/v1/monitor/{OTHER}/{route}", params=params)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["type"] == "invalid_input" and err["detail"]["field"] in params


@pytest.mark.parametrize(("route", "params"), [
    ("traffic", {"minutes": "abc"}), ("traffic", {"bucket_seconds": "1e9"}),
    ("metrics", {"hours": "24.5"}), ("metrics", {"bucket_hours": "'; DROP TABLE predictions"}),
])
def test_a_malformed_number_is_422_like_any_malformed_request(api: TestClient, route: str,
                                                              params: dict[str, Any]) -> None:
    resp = api.get(f"/api/v1/monitor/{OTHER}/{route}", params=params)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["type"] == "invalid_input"
    assert api.get(f"/api/v1/monitor/{OTHER}/traffic").status_code == 200  # nothing broke
