"""Serving in-process: the predict route against real ONNX sessions, the log, labels."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from appliance_test_support import logged_in, make_settings, train_and_wait
from fastapi.testclient import TestClient

from appliance.demo import make_customers

JOB = """
name: churn
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: LogisticRegression, params: {C: %s}}
split: {test_size: 0.25, seed: 7}
metric: roc_auc
"""


def _train(client: TestClient, c: float) -> dict[str, Any]:
    return train_and_wait(client, JOB % c)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One appliance with model churn v1 (champion) and v2, both logistic regressions."""
    from appliance.api.app import create_app
    from appliance.runtime import build

    app = build(make_settings(tmp_path_factory.mktemp("serve") / "home"))
    app.serving.log.start()
    try:
        with TestClient(create_app(app)) as client:
            logged_in(client)
            data = make_customers(500, seed=4).write_csv().encode()
            assert client.post("/api/v1/datasets/customers/files", params={"filename": "c.csv"},
                               content=data,
                               headers={"Content-Type": "application/octet-stream"}).status_code == 201
            deadline = time.monotonic() + 30
            while client.get("/api/v1/datasets/customers/versions/1").json()[
                    "summary_status"] != "ready":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            _train(client, 1.0)
            _train(client, 0.01)
            # whichever won the gate, the tests expect v1 as champion
            if client.get("/api/v1/models/churn/aliases/champion").json()["version"] != 1:
                client.put("/api/v1/models/churn/aliases/champion",
                           json={"version": 1, "reason": "fixture", "force": True})
            yield client
    finally:
        app.close()


def record(i: int = 0) -> dict[str, Any]:
    row = make_customers(1, seed=100 + i).to_dicts()[0]
    row.pop("churned")
    row.pop("customer_id")
    return row


def test_predict_one_record_answers_from_the_champion(served: TestClient) -> None:
    resp = served.post("/api/v1/models/churn/predict", params={"alias": "champion"}, json=record())
    assert resp.status_code == 200, resp.text
    out = resp.json()
    assert out["version"] == 1 and out["predictions"][0] in (0, 1)
    assert sum(out["probabilities"][0].values()) == pytest.approx(1.0, abs=1e-5)
    assert len(out["request_ids"]) == 1


def test_predict_many_records_by_version_with_caller_request_ids(served: TestClient) -> None:
    rows = [{**record(i), "request_id": f"req-{i}"} for i in range(50)]
    out = served.post("/api/v1/models/churn/predict", params={"version": 2}, json=rows).json()
    assert out["version"] == 2 and len(out["predictions"]) == 50
    assert out["request_ids"] == [f"req-{i}" for i in range(50)]


def test_predict_a_csv_body(served: TestClient) -> None:
    frame = make_customers(5, seed=9).drop("churned", "customer_id")
    resp = served.post("/api/v1/models/churn/predict", content=frame.write_csv().encode(),
                       headers={"Content-Type": "text/csv"})
    assert resp.status_code == 200 and len(resp.json()["predictions"]) == 5


@pytest.mark.parametrize(("change", "field"), [
    (lambda r: r.update(age="old"), "age"),
    (lambda r: r.update(plan=3), "plan"),
    (lambda r: r.pop("tenure_months"), "tenure_months"),
    (lambda r: r.update(surprise=1), "surprise"),
    (lambda r: r.update(age=True), "age"),
], ids=["string-for-number", "number-for-text", "missing", "extra", "bool"])
def test_predict_a_bad_record_is_422_naming_the_field(served: TestClient, change: Any,
                                                      field: str) -> None:
    row = record()
    change(row)
    resp = served.post("/api/v1/models/churn/predict", json=[record(1), row])
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["detail"]["field"] == field and err["detail"]["row"] == 1


def test_predict_nan_is_422(served: TestClient) -> None:
    body = json.dumps({**record(), "age": 1}).replace('"age": 1', '"age": NaN').encode()
    resp = served.post("/api/v1/models/churn/predict", content=body,
                       headers={"Content-Type": "application/json"})
    assert resp.status_code == 422 and resp.json()["error"]["detail"]["field"] == "age"


def test_predict_a_10_mb_body_and_100k_rows_are_refused_and_the_server_stays_healthy(
    served: TestClient,
) -> None:
    big = b"[" + b" " * (10 * 1024 * 1024) + b"]"
    assert served.post("/api/v1/models/churn/predict", content=big,
                       headers={"Content-Type": "application/json"}).status_code == 413
    many = [record()] * 100_000
    resp = served.post("/api/v1/models/churn/predict", json=many)
    assert resp.status_code == 413
    assert served.get("/healthz").json()["status"] == "ok"
    assert served.post("/api/v1/models/churn/predict", json=record()).status_code == 200


def test_predict_unknown_model_or_alias_is_404(served: TestClient) -> None:
    assert served.post("/api/v1/models/ghost/predict", json=record()).status_code == 404
    assert served.post("/api/v1/models/churn/predict", params={"alias": "nobody"},
                       json=record()).status_code == 404


def test_predictions_are_logged_and_delayed_labels_give_live_accuracy(served: TestClient) -> None:
    rows = [{**record(i), "request_id": f"lab-{i}"} for i in range(40)]
    out = served.post("/api/v1/models/churn/predict", json=rows).json()
    labels = [{"request_id": rid, "label": pred}
              for rid, pred in zip(out["request_ids"], out["predictions"], strict=True)]
    labels[0]["label"] = 1 - labels[0]["label"]  # one wrong
    fed = served.post("/api/v1/models/churn/feedback", json=[*labels, {"request_id": "never-predicted", "label": 1}]).json()
    assert fed["matched"] == 40 and fed["unknown_request_ids"] == ["never-predicted"]
    perf = served.get("/api/v1/models/churn/performance").json()
    v1 = next(v for v in perf["versions"] if v["version"] == 1)
    assert v1["labelled"] >= 40 and v1["mean_label_delay_s"] >= 0
    assert 0 < v1["accuracy"] < 1


def test_swap_an_alias_under_continuous_load_fails_no_request(served: TestClient) -> None:
    failures: list[str] = []
    served_versions: set[int] = set()
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            resp = served.post("/api/v1/models/churn/predict", json=record())
            if resp.status_code != 200:
                failures.append(resp.text)
            else:
                served_versions.add(resp.json()["version"])

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            target = 2 if i % 2 == 0 else 1
            resp = served.put("/api/v1/models/churn/aliases/champion",
                              json={"version": target, "reason": "swap test", "force": True})
            assert resp.status_code == 200, resp.text
            time.sleep(0.15)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    assert served_versions == {1, 2}
    served.put("/api/v1/models/churn/aliases/champion",
               json={"version": 1, "reason": "restore", "force": True})


def test_metrics_count_predictions_per_model_version_and_class(served: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    served.post("/api/v1/models/churn/predict", json=record())
    served.get("/api/v1/models/churn/performance")
    families = {f.name: f for f in text_string_to_metric_families(served.get("/metrics").text)}
    requests = families["appliance_predict_requests"]
    assert any(s.labels.get("model") == "churn" and s.value >= 1 for s in requests.samples)
    assert "appliance_predict_seconds" in families and "appliance_predictions" in families
    assert "appliance_label_coverage" in families
    jobs = families["appliance_job_seconds"]
    assert any(s.name.endswith("_count") and s.labels.get("status") == "succeeded" and s.value >= 2
               for s in jobs.samples)


def test_the_prediction_log_sheds_with_503_when_full(served: TestClient) -> None:
    log = served.app.state.appliance.serving.log
    capacity = log.capacity
    log.capacity = 0
    try:
        resp = served.post("/api/v1/models/churn/predict", json=record())
        assert resp.status_code == 503 and resp.json()["error"]["type"] == "overloaded"
    finally:
        log.capacity = capacity



def test_canary_split_over_10000_requests_is_within_3_points(served: TestClient) -> None:
    app = served.app.state.appliance
    resp = served.put("/api/v1/models/churn/routing",
                      json={"canary": {"version": 2, "percent": 20}, "shadow": None})
    assert resp.status_code == 200, resp.text
    try:
        row = record()
        versions = [app.serving.predict("churn", row)["version"] for _ in range(10_000)]
        share = versions.count(2) / len(versions) * 100
        assert 17 <= share <= 23, share
    finally:
        served.put("/api/v1/models/churn/routing", json={"canary": None, "shadow": None})


def test_canary_is_sticky_on_a_key(served: TestClient) -> None:
    app = served.app.state.appliance
    served.put("/api/v1/models/churn/routing",
               json={"canary": {"version": 2, "percent": 50, "key": "region"}, "shadow": None})
    try:
        for region in ("north", "south", "east", "west"):
            row = {**record(), "region": region}
            seen = {app.serving.predict("churn", row)["version"] for _ in range(30)}
            assert len(seen) == 1  # the same key always lands on the same side
    finally:
        served.put("/api/v1/models/churn/routing", json={"canary": None, "shadow": None})


def test_shadow_scores_and_logs_every_request_but_never_changes_a_response(
    served: TestClient,
) -> None:
    app = served.app.state.appliance
    rows = [record(i) for i in range(30)]
    before = served.post("/api/v1/models/churn/predict", json=rows).json()
    ok = served.put("/api/v1/models/churn/routing", json={"canary": None, "shadow": {"version": 2}})
    assert ok.status_code == 200
    try:
        after = served.post("/api/v1/models/churn/predict", json=rows).json()
        assert after["version"] == before["version"] == 1
        assert after["predictions"] == before["predictions"]
        assert after["probabilities"] == before["probabilities"]
        app.serving.log.flush()
        served_roles = served.get("/api/v1/models/churn/routing").json()["served"]
        assert served_roles.get("shadow", 0) >= 30
    finally:
        served.put("/api/v1/models/churn/routing", json={"canary": None, "shadow": None})
    actions = [e.action for e in app.auditor.recent(limit=50)]
    assert "model.routing.set" in actions


@pytest.mark.parametrize("bad", [
    {"canary": {"version": 2, "percent": 120}},
    {"canary": {"version": "two", "percent": 10}},
    {"shadow": {"version": 99}},
    {"mirror": {}},
], ids=["percent", "version-type", "unknown-version", "unknown-key"])
def test_bad_routing_is_refused(served: TestClient, bad: dict[str, Any]) -> None:
    resp = served.put("/api/v1/models/churn/routing", json=bad)
    assert resp.status_code in (404, 422), resp.text


def test_a_labels_file_dropped_in_the_inbox_is_joined_to_predictions(served: TestClient) -> None:
    from appliance.ingest import inbox

    app = served.app.state.appliance
    rows = [{**record(i), "request_id": f"drop-{i}"} for i in range(10)]
    out = served.post("/api/v1/models/churn/predict", json=rows).json()
    lines = "request_id,label\n" + "".join(
        f"{rid},{pred}\n" for rid, pred in zip(out["request_ids"], out["predictions"], strict=True))
    folder = app.settings.inbox_dir / "churn__labels"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labels.csv").write_text(lines)
    claim = inbox.claim(folder / "labels.csv", "churn__labels", app.settings.claimed_dir)
    result = app.ingest.ingest_claim(claim)
    assert result.outcome == "accepted", result
    assert result.labels["matched"] == 10
    assert (app.settings.archive_dir / "churn__labels" / "labels.csv").exists()
    bad = folder / "bad.csv"
    bad.write_text("request_id,label,extra\nx,1,2\n")
    claim = inbox.claim(bad, "churn__labels", app.settings.claimed_dir)
    refused = app.ingest.ingest_claim(claim)
    assert refused.outcome == "quarantined" and "request_id,label" in refused.message


# -- Parquet bodies -------------------------------------------------------------------


def _parquet(frame: Any) -> bytes:
    import io

    buf = io.BytesIO()
    frame.write_parquet(buf)
    return buf.getvalue()


def _features(n: int, seed: int) -> Any:
    return make_customers(n, seed=seed).drop("churned", "customer_id")


@pytest.mark.parametrize("content_type", [
    "application/vnd.apache.parquet", "application/x-parquet", "application/octet-stream",
])
def test_predict_a_parquet_body_answers_as_the_same_rows_in_json(served: TestClient,
                                                                 content_type: str) -> None:
    frame = _features(40, seed=21)
    as_json = served.post("/api/v1/models/churn/predict", json=frame.to_dicts())
    as_parquet = served.post("/api/v1/models/churn/predict", content=_parquet(frame),
                             headers={"Content-Type": content_type})
    assert as_parquet.status_code == 200, as_parquet.text
    a, b = as_json.json(), as_parquet.json()
    assert b["version"] == a["version"] == 1
    assert b["predictions"] == a["predictions"] and b["probabilities"] == a["probabilities"]
    assert len(b["request_ids"]) == 40


@pytest.mark.parametrize("body", [
    b"PAR1" + b"\x00" * 64 + b"PAR1",
    b"PAR1 this is not parquet at all",
], ids=["garbage-between-magics", "truncated"])
def test_predict_a_corrupt_parquet_body_is_422(served: TestClient, body: bytes) -> None:
    resp = served.post("/api/v1/models/churn/predict", content=body,
                       headers={"Content-Type": "application/vnd.apache.parquet"})
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert "Parquet" in err["message"] and err["detail"]["reason"] == "unreadable"


def test_predict_a_cut_off_parquet_file_is_422(served: TestClient) -> None:
    data = _parquet(_features(20, seed=3))
    resp = served.post("/api/v1/models/churn/predict", content=data[: len(data) // 2],
                       headers={"Content-Type": "application/x-parquet"})
    assert resp.status_code == 422, resp.text


@pytest.mark.parametrize(("change", "field"), [
    (lambda f: f.drop("tenure_months"), "tenure_months"),
    (lambda f: f.with_columns(surprise=1), "surprise"),
    (lambda f: f.with_columns(age=f["age"].cast(str)), "age"),
    (lambda f: f.with_columns(monthly_charges=float("nan")), "monthly_charges"),
], ids=["missing", "extra", "text-for-number", "nan"])
def test_predict_a_parquet_body_with_bad_columns_is_422_naming_the_field(
    served: TestClient, change: Any, field: str,
) -> None:
    resp = served.post("/api/v1/models/churn/predict", content=_parquet(change(_features(5, 8))),
                       headers={"Content-Type": "application/vnd.apache.parquet"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["detail"]["field"] == field


def test_predict_a_parquet_body_over_the_row_cap_is_413_before_decoding(served: TestClient) -> None:
    import polars as pl

    frame = pl.concat([_features(1, seed=5)] * 10_001)  # tiny file, too many rows
    data = _parquet(frame)
    assert len(data) < 100_000
    resp = served.post("/api/v1/models/churn/predict", content=data,
                       headers={"Content-Type": "application/vnd.apache.parquet"})
    assert resp.status_code == 413, resp.text
    assert resp.json()["error"]["detail"]["rows"] == 10_001


def test_predict_an_octet_stream_that_is_not_parquet_is_read_as_json(served: TestClient) -> None:
    resp = served.post("/api/v1/models/churn/predict", content=json.dumps(record()).encode(),
                       headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 200, resp.text


def test_predict_a_version_that_is_not_a_number_is_422_naming_it(served: TestClient) -> None:
    resp = served.post("/api/v1/models/churn/predict", params={"version": "two"}, json=record())
    assert resp.status_code == 422 and resp.json()["error"]["detail"]["field"] == "version"


def test_predict_without_a_token_is_401_before_the_body_is_read(served: TestClient) -> None:
    resp = served.post("/api/v1/models/churn/predict", content=b"not json",
                       headers={"Authorization": "", "Content-Type": "application/json"})
    assert resp.status_code == 401 and resp.json()["error"]["type"] == "unauthenticated"
    assert resp.headers["www-authenticate"] == "Bearer"


def test_predict_an_integer_too_big_for_a_float_is_422(served: TestClient) -> None:
    body = json.dumps({**record(), "age": 1}).replace('"age": 1', '"age": ' + "9" * 400)
    resp = served.post("/api/v1/models/churn/predict", content=body.encode(),
                       headers={"Content-Type": "application/json"})
    assert resp.status_code == 422 and resp.json()["error"]["detail"]["field"] == "age"


def test_the_prediction_log_flush_writes_everything_queued_in_small_batches(
    served: TestClient,
) -> None:
    log = served.app.state.appliance.serving.log
    rows = [record(i) for i in range(5)]
    log.flush()
    written = log.written
    for _ in range(3):  # 3 x 400 rows: more than one batch
        resp = served.post("/api/v1/models/churn/predict", json=rows * 80)
        assert resp.status_code == 200
    log.flush()
    assert log.written - written == 1200 and log.stats()["queued"] == 0


def test_predict_skips_routing_yet_is_timed_under_its_route_and_documented(
    served: TestClient,
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    assert served.post("/api/v1/models/churn/predict", json=record()).status_code == 200
    assert served.post("/api/v1/models/ghost/predict", json=record()).status_code == 404
    families = {f.name: f for f in text_string_to_metric_families(served.get("/metrics").text)}
    seen = {(s.labels.get("route"), s.labels.get("status"))
            for s in families["appliance_http_request_duration_seconds"].samples}
    assert ("/api/v1/models/{name}/predict", "200") in seen
    assert ("/api/v1/models/{name}/predict", "404") in seen
    spec = served.get("/openapi.json").json()["paths"]["/api/v1/models/{name}/predict"]["post"]
    assert {p["name"] for p in spec["parameters"]} >= {"name", "alias", "version"}
    assert "application/vnd.apache.parquet" in spec["requestBody"]["content"]
    assert spec["security"] == [{"HTTPBearer": []}]


def test_delayed_labels_give_live_auc_equal_to_sklearns_on_the_same_rows(
        served: TestClient) -> None:
    from sklearn.metrics import roc_auc_score

    frame = make_customers(300, seed=77, start_id=70_000)
    truth = frame["churned"].to_list()
    rows = [{**r, "request_id": f"auc-{i}"}
            for i, r in enumerate(frame.drop("churned", "customer_id").to_dicts())]
    out = served.post("/api/v1/models/churn/predict", params={"version": 2}, json=rows).json()
    served.post("/api/v1/models/churn/feedback",
                json=[{"request_id": rid, "label": y}
                      for rid, y in zip(out["request_ids"], truth, strict=True)])
    perf = served.get("/api/v1/models/churn/performance").json()
    v2 = next(v for v in perf["versions"] if v["version"] == 2)
    expected = roc_auc_score(truth, [p["1"] for p in out["probabilities"]])
    assert v2["auc"] == pytest.approx(expected, abs=1e-6)
    assert 0.5 < v2["auc"] <= 1.0


def test_roc_auc_counts_ties_half_and_needs_both_classes() -> None:
    from appliance.serve.service import roc_auc

    assert roc_auc([(0.9, True), (0.1, False)]) == 1.0
    assert roc_auc([(0.1, True), (0.9, False)]) == 0.0
    assert roc_auc([(0.5, True), (0.5, False)]) == 0.5
    assert roc_auc([(0.7, True), (0.2, True)]) is None
    assert roc_auc([]) is None
