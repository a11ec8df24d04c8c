"""The Monitoring page against a live API: drift over time, live metrics, alerts and their ack.

The fixture trains a real model on a real dataset through the API (about ten
seconds), checks it twice against a shifted version of that dataset (drift in
`age`, hence one open drift alert), serves it and sends delayed labels for half
of the requests. The acknowledgement and the manual drift check go through
the page's own buttons, last, since they change the server's state.
"""

from __future__ import annotations

import json
import time
from typing import Any

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from appliance.client import ApplianceClient
from appliance.demo import make_customers

from .conftest import ensure_user
from .console_testing import (
    MODELS_PAGE,
    MONITORING_PAGE,
    assert_clean,
    charts,
    has_key,
    log_in,
    open_page,
    table,
    tables,
    texts,
)

MODEL = "ui_monitored"
DATASET = "ui_customers"
JOB = f"""
name: {MODEL}
dataset: {DATASET}
target: churned
features: {{exclude: [customer_id]}}
model: {{kind: LogisticRegression, params: {{C: 1.0}}}}
split: {{test_size: 0.25, seed: 7}}
metric: roc_auc
"""
REQUESTS, LABELLED = 40, 20
OPERATOR = ("ui_operator", "operator-password-1234")


def csv(frame: pl.DataFrame) -> bytes:
    return frame.write_csv().encode()


@pytest.fixture(scope="module")
def monitored(live_server: Any, admin_api: ApplianceClient) -> dict[str, Any]:
    """ui_monitored v1 (champion) trained on ui_customers@1; two drift reports against the
    shifted @2; REQUESTS requests served, the first LABELLED of them labelled."""
    live_server.drop(DATASET, "c1.csv", csv(make_customers(600, seed=4)))
    live_server.wait_for_summaries(DATASET)
    run = admin_api.post("/runs", json={"job": JOB})
    deadline = time.monotonic() + 120
    while (run := admin_api.run(run["id"]))["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
    assert run["status"] == "succeeded", run["error"]
    assert admin_api.get(f"/models/{MODEL}/aliases") == {"champion": 1}
    older = make_customers(600, seed=5, start_id=10_000).with_columns(pl.col("age") + 25)
    live_server.drop(DATASET, "c2.csv", csv(older))
    reports = [admin_api.post(f"/monitor/{MODEL}/drift", json={"dataset_version": 2})
               for _ in range(2)]
    assert all("age" in {f["column"] for f in r["features"] if f["drift"]} for r in reports)
    rows = make_customers(REQUESTS, seed=6, start_id=20_000)
    records = [{**r, "request_id": f"ui-mon-{i}"} for i, r in
               enumerate(rows.drop("churned", "customer_id").to_dicts())]
    answer = admin_api.post(f"/models/{MODEL}/predict", json=records)
    labels = [{"request_id": f"ui-mon-{i}", "label": y}
              for i, y in enumerate(rows["churned"].to_list()[:LABELLED])]
    assert admin_api.post(f"/models/{MODEL}/feedback", json=labels)["matched"] == LABELLED
    return {"reports": reports, "predictions": answer["predictions"]}


@pytest.fixture(scope="module")
def operator(admin_api: ApplianceClient) -> tuple[str, str]:
    return ensure_user(admin_api, *OPERATOR, "operator")


def open_monitoring(at: AppTest, name: str) -> AppTest:
    at = open_page(at, MONITORING_PAGE)
    at.selectbox(key="monitoring_model").select(name).run()
    return at


def chart_titled(at: AppTest, prefix: str) -> dict[str, Any]:
    specs = [json.loads(c.proto.spec) for c in charts(at)]
    found = [s for s in specs if str(s.get("title", "")).startswith(prefix)]
    assert found, [s.get("title") for s in specs]
    return found[0]


def chart_data(at: AppTest, prefix: str) -> Any:
    """The data of the chart whose title starts with ``prefix`` (streamlit ships it as Arrow)."""
    import pyarrow as pa

    for c in charts(at):
        if str(json.loads(c.proto.spec).get("title", "")).startswith(prefix):
            return pa.ipc.open_stream(c.proto.datasets[0].data.data).read_all().to_pandas()
    raise AssertionError(f"no chart titled {prefix!r}")


def drift_alert(api: ApplianceClient) -> dict[str, Any]:
    (alert,) = [a for a in api.get("/alerts") if a["kind"] == "drift" and a["key"] == MODEL]
    return alert


# -- reading ------------------------------------------------------------------------------


def test_monitoring_page_charts_drift_per_feature_and_highlights_the_latest_report(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, monitored: dict[str, Any]
):
    at = open_monitoring(log_in(console, "admin", live_server.admin_password), MODEL)

    assert_clean(at)
    assert texts(at.title) == ["Monitoring"]
    assert {"Drift", "Live metrics from labels", "Alerts"} <= set(texts(at.subheader))
    chart = chart_titled(at, "p-value per feature across reports")
    layers = {json.dumps(layer["encoding"]) for layer in chart["layer"]}
    assert any('"field": "feature"' in layer and '"type": "log"' in layer for layer in layers)
    assert any('"field": "threshold"' in layer for layer in layers)  # the dashed rule

    latest = admin_api.get(f"/monitor/{MODEL}/drift", limit=1)[0]
    shown = table(at, "column", "test", "p_value", "threshold", "drift").set_index("column")
    expected = {f["column"]: f for f in latest["features"]}
    assert set(shown.index) == set(expected) | {"<predictions>"}
    assert shown.loc["age", "drift"] and shown.loc["age", "test"] == "ks"
    why = table(at, "column", "test", "reason", "distance").set_index("column")
    assert why.loc["age", "reason"] == expected["age"]["reason"]  # 600 rows: the small-sample KS
    assert "600 reference rows <= 1000" in why.loc["age", "reason"]
    multi = latest["multivariate"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["domain classifier AUC"] == f"{multi['auc']:.3f}"
    assert metrics["verdict"] == ("drift" if multi["drift"] else "no drift")
    history = chart_titled(at, "multivariate drift (domain classifier AUC) across reports")
    assert any('"field": "auc"' in json.dumps(layer["encoding"]) for layer in history["layer"])
    assert shown.loc["age", "p_value"] == pytest.approx(expected["age"]["p_value"])
    assert list(shown.index[shown["drift"]]) == [c for c, f in expected.items() if f["drift"]] \
        + (["<predictions>"] if latest["prediction"].get("drift") else [])
    assert any(t.startswith("Drift in") and "`age`" in t for t in texts(at.warning))
    styled = next(d for d in at.dataframe if "p_value" in d.value.columns)
    styles = styled.proto.arrow_data.styler.styles
    for i, drift in enumerate(shown["drift"]):  # drifted rows, and only they, are red
        assert (f"row{i}_col0" in styles and "#f8d7da" in styles) == bool(drift), styles


def test_monitoring_page_shows_live_accuracy_and_label_coverage(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, monitored: dict[str, Any]
):
    at = open_monitoring(log_in(console, "admin", live_server.admin_password), MODEL)
    at.selectbox(key="metrics_window").select("last 24 hours, by hour").run()

    assert_clean(at)
    assert chart_titled(at, "accuracy per version")["encoding"]["color"]["field"] == "version"
    assert chart_titled(at, "label coverage per version")
    live = admin_api.live_metrics(MODEL, hours=24, bucket_hours=1)
    (version,) = live["versions"]
    shown = table(at, "version", "metric", "labelled", "label_coverage").set_index("version")
    assert shown.loc[1, "metric"] == "accuracy"
    assert shown.loc[1, "predictions"] == REQUESTS and shown.loc[1, "labelled"] == LABELLED
    assert shown.loc[1, "label_coverage"] == pytest.approx(LABELLED / REQUESTS)
    assert shown.loc[1, "accuracy"] == pytest.approx(version["accuracy"])
    perf = admin_api.get(f"/models/{MODEL}/performance")["versions"][0]
    assert version["accuracy"] == pytest.approx(perf["accuracy"])  # the same join


def test_monitoring_page_lists_alerts(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, monitored: dict[str, Any]
):
    at = open_monitoring(log_in(console, "admin", live_server.admin_password), MODEL)

    assert_clean(at)
    alert = drift_alert(admin_api)
    shown = table(at, "kind", "key", "status", "message", "count").set_index("id")
    assert shown.loc[alert["id"], "status"] == "open"
    assert shown.loc[alert["id"], "count"] == 2  # the same breach twice: one alert
    assert "age" in shown.loc[alert["id"], "message"]


def test_a_viewer_cannot_run_checks_or_acknowledge(
    console: AppTest, viewer: tuple[str, str], monitored: dict[str, Any]
):
    at = open_monitoring(log_in(console, *viewer), MODEL)

    assert_clean(at)
    assert table(at, "column", "p_value", "drift") is not None  # a viewer reads the reports
    assert table(at, "kind", "key", "status") is not None  # ...and the alerts
    for key in ("run_drift", "ack"):
        assert not has_key(at.button, key)
    assert not has_key(at.text_input, "ack_note")
    captions = " ".join(texts(at.caption))
    assert "Running a drift check needs the operator role or above; you are signed in as " \
           "viewer." in captions
    assert "Acknowledging alerts needs the operator role or above" in captions


def test_monitoring_page_explains_a_picked_logged_request(
    console: AppTest, viewer: tuple[str, str], admin_api: ApplianceClient,
    monitored: dict[str, Any]
):
    at = open_monitoring(log_in(console, *viewer), MODEL)   # a viewer may ask why
    at.selectbox(key="explain_request").select("ui-mon-3").run()

    assert_clean(at)
    assert "Why this prediction?" in texts(at.subheader)
    expected = admin_api.get("/predictions/ui-mon-3/explanation")
    shown = chart_data(at, f"Contributions to {MODEL} v1")
    assert list(shown["feature"]) == [c["feature"] for c in expected["contributions"]]
    assert list(shown["contribution"]) == pytest.approx(
        [c["contribution"] for c in expected["contributions"]])
    assert any(f"Predicted **{monitored['predictions'][3]}**" in t for t in texts(at.markdown))

    at.text_input(key="explain_request_id").input("no-such-request").run()
    assert any("no-such-request" in t for t in texts(at.error))


def test_models_page_charts_the_global_importances_of_a_trained_version(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, monitored: dict[str, Any]
):
    at = open_page(log_in(console, "admin", live_server.admin_password), MODELS_PAGE)
    at.selectbox(key="model").select(MODEL).run()

    assert_clean(at)
    card = admin_api.get(f"/models/{MODEL}/versions/1/card")
    shown = chart_data(at, "Global importance: permutation")
    assert list(shown["feature"]) == [f["feature"] for f in card["importances"]["features"]]
    assert chart_titled(at, "Global importance: native: coefficient")


# -- acting (last: they change the server's state) -----------------------------------------------


def test_an_operator_acknowledges_an_alert_with_a_note(
    console: AppTest, admin_api: ApplianceClient, operator: tuple[str, str],
    monitored: dict[str, Any]
):
    at = open_monitoring(log_in(console, *operator), MODEL)
    alert = drift_alert(admin_api)

    at.selectbox(key="ack_alert").select(alert["id"])
    at.text_input(key="ack_note").input("older customers after the campaign; retraining")
    at.button(key="ack").click().run()

    assert_clean(at)
    assert f"Acknowledged the drift alert on {MODEL}." in texts(at.success)
    after = drift_alert(admin_api)
    assert after["status"] == "acknowledged" and after["acknowledged_by"] == operator[0]
    assert after["note"] == "older customers after the campaign; retraining"
    still_open = [i for df in tables(at, "kind", "key", "status") for i in df["id"]]
    assert alert["id"] not in still_open  # the list of open alerts no longer has it
    audit = admin_api.audit(limit=20)
    assert any(e["action"] == "alert.acknowledge" and e["target"] == f"alert:{alert['id']}"
               for e in audit)


def test_an_operator_runs_a_drift_check_now(
    console: AppTest, admin_api: ApplianceClient, operator: tuple[str, str],
    monitored: dict[str, Any]
):
    before = len(admin_api.get(f"/monitor/{MODEL}/drift"))
    at = open_monitoring(log_in(console, *operator), MODEL)
    at.number_input(key="drift_window").set_value(1.0)
    at.button(key="run_drift").click().run()

    assert_clean(at)
    assert any(t.startswith(f"Drift check of {MODEL} done: ") for t in texts(at.success))
    reports = admin_api.get(f"/monitor/{MODEL}/drift")
    assert len(reports) == before + 1
    assert reports[0]["current"] == f"log:{MODEL}:1h" and reports[0]["created_by"] == operator[0]
    assert reports[0]["rows_current"] == REQUESTS


def test_monitoring_page_charts_the_outlier_share_and_shows_flagged_inputs(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, monitored: dict[str, Any]
):
    # last: more predictions. The model was trained with an outlier detector (the default)
    odd = make_customers(3, seed=8, start_id=30_000).drop("churned", "customer_id")
    records = [{**r, "age": 900, "request_id": f"ui-odd-{i}"} for i, r in enumerate(odd.to_dicts())]
    admin_api.post(f"/models/{MODEL}/predict", json=records)

    at = open_monitoring(log_in(console, "admin", live_server.admin_password), MODEL)

    assert_clean(at)
    assert "Outliers among live inputs" in texts(at.subheader)
    chart = chart_titled(at, "share of inputs flagged as outliers")
    assert any(layer["encoding"].get("color", {}).get("field") == "version"
               for layer in chart["layer"])
    examples = table(at, "score", "request_id", "age")
    assert {f"ui-odd-{i}" for i in range(3)} <= set(examples["request_id"])
    assert (examples.set_index("request_id").loc[[f"ui-odd-{i}" for i in range(3)], "age"]
            == "900").all()
    report = admin_api.get(f"/models/{MODEL}/outliers", window_hours=24, bucket_hours=1)
    assert report["checked"] == REQUESTS + 3 and report["outliers"] >= 3
