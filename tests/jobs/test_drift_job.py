"""`drift.<job>`: the scheduled drift and live-metric check a job file's `schedule.drift` defines."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import polars as pl
from scheduler_clock import ADMIN

from appliance.demo import make_customers
from appliance.domain.alerts import Alert

JOB = """\
name: churn
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: LogisticRegression, params: {max_iter: 300}}
split: {test_size: 0.3, seed: 7}
schedule:
  drift: {every: 1h, window: 2h, p_val: 0.05, min_accuracy: 0.9}
drift: {tests: {tenure_months: psi}, thresholds: {plan: 0.01}}
"""


def seed(api: Any, app: Any) -> None:
    csv = make_customers(800, seed=5).write_csv().encode()
    resp = api.post("/api/v1/datasets/customers/files", params={"filename": "c.csv"},
                    content=csv, headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 201 and resp.json()["outcome"] == "accepted", resp.text
    deadline = time.monotonic() + 30
    while api.get("/api/v1/datasets/customers/versions/1").json()["summary_status"] != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    jobs_dir = app.settings.resolved_jobs_dir
    jobs_dir.mkdir(parents=True, exist_ok=True)
    (jobs_dir / "churn.yaml").write_text(JOB)
    app.jobs.reload()


def shifted_requests(n: int) -> list[dict[str, Any]]:
    frame = make_customers(n, seed=9, start_id=50_000).drop("customer_id", "churned")
    rng = np.random.default_rng(9)
    return frame.with_columns(
        pl.Series("tenure_months", rng.integers(60, 73, n).astype(np.int64)),
        pl.Series("plan", ["pro"] * n),
    ).to_dicts()


def test_the_drift_job_tests_the_log_window_and_alerts_once_on_a_low_live_metric(
        api: Any, appliance_app: Any) -> None:
    app = appliance_app
    seed(api, app)
    assert {j.id for j in app.jobs.list_jobs().items} >= {"train.churn", "drift.churn"}
    assert app.jobs.job("drift.churn").trigger == "every 1h"

    # no model yet: recorded as nothing to check, not failed
    early = app.jobs.run_here("drift.churn", by=ADMIN)
    assert early.status == "succeeded"
    assert "does not exist" in early.result["drift"]["skipped"]

    loop = app.jobs.run_here("train.churn", by=ADMIN)
    assert loop.status == "succeeded", loop
    answer = app.serving.predict("churn", shifted_requests(400), alias="champion")
    wrong = [{"request_id": rid, "label": 1 - int(p)}
             for rid, p in zip(answer["request_ids"], answer["predictions"], strict=True)]
    app.serving.feedback("churn", wrong)
    app.serving.log.flush()

    run = app.jobs.run_here("drift.churn", by=ADMIN)
    assert run.status == "succeeded", run
    drift = run.result["drift"]
    assert drift["drift"] and {"tenure_months", "plan"} <= set(drift["drifted"])
    assert run.result["metrics"] == [{"version": 1, "metric": "accuracy", "value": 0.0}]
    assert run.trigger == "manual" and run.duration_ms > 0
    used = {f.column: f for f in app.drift.latest("churn").features}  # the job file's drift:
    assert used["tenure_months"].test == "psi" and used["tenure_months"].chosen == "override"
    assert used["plan"].threshold == 0.01 and used["plan"].chosen == "auto"

    def open_alerts() -> dict[str, Alert]:
        return {a.kind: a for a in app.alerts.list_alerts("open")}

    alerts = open_alerts()
    assert alerts["drift"].key == "churn"
    assert alerts["metric_below_threshold"].key == "churn:v1:accuracy"
    app.jobs.run_here("drift.churn", by=ADMIN)  # the same breach: no second alert
    again = open_alerts()
    assert again["metric_below_threshold"].id == alerts["metric_below_threshold"].id
    assert again["metric_below_threshold"].count == 2
    assert len([a for a in app.alerts.list_alerts() if a.kind == "drift"]) == 1
