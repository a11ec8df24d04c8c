"""Training end to end in-process: job file -> run -> ONNX version -> champion, and the gate."""

from __future__ import annotations

import time
from typing import Any

import pytest

from appliance.demo import make_customers

JOB = """
name: churn
description: Predict which customers leave next month.
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: %(kind)s, params: %(params)s}
split: {test_size: 0.25, seed: 7}
metric: roc_auc
promote: {alias: champion, min_delta: 0.0, require_approval: %(approval)s}
%(extra)s
"""


def job(kind: str = "xgboost.XGBClassifier", params: str = "{n_estimators: 30, max_depth: 3}",
        approval: str = "false", extra: str = "") -> str:
    return JOB % {"kind": kind, "params": params, "approval": approval, "extra": extra}


@pytest.fixture
def customers(api: Any) -> Any:
    csv = make_customers(600, seed=3).write_csv().encode()
    resp = api.post("/api/v1/datasets/customers/files", params={"filename": "c.csv"}, content=csv,
                    headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 201 and resp.json()["outcome"] == "accepted", resp.text
    _wait_summary(api)
    return api


def _wait_summary(api: Any) -> None:
    deadline = time.monotonic() + 30
    while api.get("/api/v1/datasets/customers/versions/1").json()["summary_status"] != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.05)


def train(api: Any, text: str, timeout: float = 120) -> dict[str, Any]:
    resp = api.post("/api/v1/runs", json={"job": text})
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        run = api.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] in ("succeeded", "failed", "interrupted"):
            return dict(run)
        assert time.monotonic() < deadline, run
        time.sleep(0.2)


def test_train_job_registers_an_onnx_champion_with_a_card(customers: Any) -> None:
    run = train(customers, job())
    assert run["status"] == "succeeded", run["error"]
    assert run["model_version"] == {"model": "churn", "version": 1}
    assert {"roc_auc", "accuracy", "f1", "log_loss"} <= set(run["metrics"])
    assert run["dataset"] == "customers" and run["dataset_version"] == 1
    assert run["environment"]["packages"]["xgboost"]
    # an XGBoost run also keeps what its explanations need (appliance.train.child.explainer)
    # and its outlier detector (issue 14), named by the version
    artifacts = {a["name"]: a for a in run["artifacts"]}
    assert set(artifacts) == {
        "model.onnx", "holdout.parquet", "outliers.onnx", "explain/background.parquet",
        "explain/preprocess.json", "explain/booster.json"}
    version = customers.get("/api/v1/models/churn/versions/1").json()
    assert version["parity"]["passed"] and version["aliases"] == ["champion"]
    assert version["outliers"]["sha256"] == artifacts["outliers.onnx"]["sha256"]
    assert version["outliers"]["parity"]["passed"]
    relations = {e["relation"] for e in customers.get("/api/v1/lineage/model:churn@1").json()
                 ["upstream"]}
    assert {"onnx_of", "outliers_of"} <= relations
    assert customers.get("/api/v1/models/churn/aliases/champion").json()["version"] == 1
    card = customers.get("/api/v1/models/churn/versions/1/card", params={"format": "md"}).text
    assert "Predict which customers leave" in card and "customers version 1" in card
    onnx_bytes = customers.get("/api/v1/models/churn/versions/1/onnx").content
    assert onnx_bytes[:2] != b"\x80\x04"  # never a pickle
    lineage = customers.get("/api/v1/lineage/model:churn@1").json()
    assert lineage["upstream"][0]["src"].startswith(("run:", "artifact:"))


def test_same_job_same_data_same_seed_gives_identical_metrics(customers: Any) -> None:
    first = train(customers, job())
    second = train(customers, job())
    assert first["metrics"] == second["metrics"]


def test_the_gate_blocks_a_worse_model(customers: Any) -> None:
    assert train(customers, job())["status"] == "succeeded"
    worse = train(customers, job(kind="DecisionTreeClassifier", params="{max_depth: 1}"))
    assert worse["status"] == "succeeded"
    v2 = customers.get("/api/v1/models/churn/versions/2").json()
    assert v2["gate"]["passed"] is False and v2["gate"]["champion_version"] == 1
    assert customers.get("/api/v1/models/churn/aliases/champion").json()["version"] == 1
    refused = customers.put("/api/v1/models/churn/aliases/champion",
                            json={"version": 2, "reason": "try"})
    assert refused.status_code == 409
    forced = customers.put("/api/v1/models/churn/aliases/champion",
                           json={"version": 2, "reason": "override", "force": True})
    assert forced.status_code == 200
    back = customers.post("/api/v1/models/churn/aliases/champion/rollback",
                          json={"reason": "worse after all"})
    assert back.json()["version"] == 1
    history = customers.get("/api/v1/models/churn/aliases/champion/history").json()
    assert [(e["action"], e["version"], e["forced"]) for e in history] == [
        ("rollback", 1, False), ("set", 2, True), ("set", 1, False)]


def test_require_approval_holds_the_candidate_as_challenger(customers: Any) -> None:
    run = train(customers, job(approval="true"))
    assert run["status"] == "succeeded"
    version = customers.get("/api/v1/models/churn/versions/1").json()
    assert version["status"] == "pending_approval" and version["aliases"] == ["challenger"]
    assert customers.get("/api/v1/models/churn/aliases/champion").status_code == 404
    ok = customers.post("/api/v1/models/churn/versions/1/approve", json={"reason": "reviewed"})
    assert ok.status_code == 200, ok.text
    assert customers.get("/api/v1/models/churn/aliases/champion").json()["version"] == 1


def test_search_trials_are_recorded_as_child_runs(customers: Any) -> None:
    run = train(customers, job(extra="search: {n_iter: 3, params: {max_depth: [2, 3, 4]}}"))
    assert run["status"] == "succeeded", run["error"]
    assert len(run["children"]) == 3
    assert all(c["kind"] == "trial" and c["status"] == "succeeded" for c in run["children"])


@pytest.mark.parametrize(("text", "needle"), [
    (job(kind="os.system"), "os.system"),
    (job(kind="subprocess.Popen"), "subprocess.Popen"),
    (job().replace("target: churned", "target: nope"), "nope"),
    (job().replace("exclude: [customer_id]", "exclude: [missing_col]"), "missing_col"),
    (job().replace("dataset: customers", "dataset: ghosts"), "ghosts"),
    ("name: [unclosed", "line"),
], ids=["os-system", "popen", "missing-target", "missing-feature", "no-dataset", "bad-yaml"])
def test_bad_job_file_is_a_4xx_and_leaves_no_run(customers: Any, text: str, needle: str) -> None:
    resp = customers.post("/api/v1/runs", json={"job": text})
    assert resp.status_code == 400, resp.text
    assert needle in resp.json()["error"]["message"]
    assert customers.get("/api/v1/runs").json()["total"] == 0


def test_a_target_with_one_class_is_refused(api: Any) -> None:
    frame = make_customers(200, seed=1).with_columns(churned=0)
    api.post("/api/v1/datasets/customers/files", params={"filename": "c.csv"},
             content=frame.write_csv().encode(), headers={"Content-Type": "application/octet-stream"})
    _wait_summary(api)
    resp = api.post("/api/v1/runs", json={"job": job()})
    assert resp.status_code == 400 and "single value" in resp.json()["error"]["message"]
    assert api.get("/api/v1/runs", params={"status": "running"}).json()["total"] == 0


def test_a_run_killed_mid_way_is_interrupted_then_requeued_once(
    tmp_path: Any, settings_for: Any
) -> None:
    from appliance.domain.principal import SYSTEM
    from appliance.runtime import build

    settings = settings_for(tmp_path / "home")
    app = build(settings)
    app.ingest.ingest_stream(__import__("io").BytesIO(make_customers(400, seed=2).write_csv().encode()),
                             file_name="c.csv", dataset="customers", who=SYSTEM)
    run = app.training.submit(job(), by=SYSTEM)
    deadline = time.monotonic() + 60
    while app.runs.show(run.id).status != "running":  # mid-way: the child is training
        assert time.monotonic() < deadline
        time.sleep(0.02)
    app.close()  # the server goes away under the run (its child is killed)
    app = build(settings)
    try:
        assert app.runs.show(run.id).status == "running"  # as the crash left it
        app.training.recover()
        deadline = time.monotonic() + 120
        while (shown := app.runs.show(run.id)).status not in ("succeeded", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert shown.status == "succeeded", shown.error
        actions = [e.action for e in app.auditor.recent(limit=50) if e.target == f"run:{run.id}"]
        assert "run.interrupted" in actions and "run.queued" in actions
    finally:
        app.close()


def test_the_disk_guard_refuses_a_training_run_and_leaves_no_run(customers: Any,
                                                                  appliance_app: Any) -> None:
    appliance_app.settings.min_free_disk_mb = 10**9
    resp = customers.post("/api/v1/runs", json={"job": job()})
    assert resp.status_code == 507, resp.text
    assert "training needs" in resp.json()["error"]["message"]
    assert customers.get("/api/v1/runs", params={"kind": "train"}).json()["total"] == 0


def test_external_memory_job_trains_registers_and_tags_the_run(customers: Any) -> None:
    run = train(customers, job(extra="data: {mode: external}"))
    assert run["status"] == "succeeded", run["error"]
    assert run["tags"]["data_mode"] == "external"
    assert any("Parquet batches" in w for w in run["warnings"])
    assert run["model_version"] == {"model": "churn", "version": 1}
    assert customers.get("/api/v1/models/churn/versions/1").json()["parity"]["passed"]
