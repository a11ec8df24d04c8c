"""The continuous-training loop end to end on a real `appliance serve`, driven by file drops only."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from appliance.demo import make_customers

LOOP_JOB = """\
name: churn
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: LogisticRegression, params: {max_iter: 500}}
split: {test_size: 0.3, seed: 7}
metric: roc_auc
promote: {alias: champion, min_delta: 0.0}
schedule:
  train: {"on": new_data}
"""


def noisy(n: int, seed: int, start_id: int = 1) -> bytes:
    """Customers whose labels are mostly coin flips: a weak first champion."""
    frame = make_customers(n, seed=seed, start_id=start_id)
    rng = np.random.default_rng(seed)
    flip = rng.random(n) < 0.85
    labels = np.where(flip, rng.integers(0, 2, n), frame["churned"].to_numpy())
    return frame.with_columns(pl.Series("churned", labels.astype(np.int64))).write_csv().encode()


def clean(n: int, seed: int, start_id: int) -> bytes:
    return make_customers(n, seed=seed, start_id=start_id).write_csv().encode()


def drifted(n: int, seed: int, start_id: int) -> bytes:
    """Within the contract (same columns, ranges and categories), far from the training data."""
    frame = make_customers(n, seed=seed, start_id=start_id)
    rng = np.random.default_rng(seed)
    return frame.with_columns(
        pl.Series("tenure_months", rng.integers(60, 73, n).astype(np.int64)),
        pl.Series("plan", ["pro"] * n),
    ).write_csv().encode()


def loop_runs(c: Any, status: str | None = None) -> list[dict[str, Any]]:
    return list(c.job_runs("train.churn", status=status, limit=500)["items"])


def wait_loop(c: Any, key: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [r for r in loop_runs(c) if r["idempotency_key"] == key
                and r["status"] in ("succeeded", "failed")]
        if done:
            return c.job_run("train.churn", done[-1]["id"])
        time.sleep(0.3)
    raise AssertionError(f"the loop for {key} did not finish: {loop_runs(c)}")


def start(server_factory: Any, tmp_path: Path) -> Any:
    home = tmp_path / "home"
    (home / "jobs").mkdir(parents=True)
    (home / "jobs" / "churn.yaml").write_text(LOOP_JOB)
    return server_factory(home)


def test_file_drops_alone_drive_validate_train_evaluate_register_promote(
        server_factory: Any, tmp_path: Path) -> None:
    server = start(server_factory, tmp_path)
    with server.client() as c:
        # drop v1 -> champion
        assert server.drop("customers", "v1.csv", noisy(400, seed=1))["outcome"] == "accepted"
        first = wait_loop(c, "train.churn:customers@1")
        assert first["status"] == "succeeded", first
        assert first["trigger"] == "new_data"
        assert first["result"]["promoted"] and first["result"]["model_version"] == 1
        steps = [s["step"] for s in first["result"]["steps"]]
        assert steps == ["validate", "drift", "train", "evaluate", "register", "promote",
                         "baseline"]
        assert c.get("/models/churn/aliases/champion")["version"] == 1
        assert "queued training run" in first["logs"]

        # drop a better v2 -> promoted, and it becomes the drift baseline
        assert server.drop("customers", "v2.csv",
                           clean(3000, seed=2, start_id=1000))["outcome"] == "accepted"
        second = wait_loop(c, "train.churn:customers@2")
        assert second["status"] == "succeeded", second
        assert second["result"]["promoted"] and second["result"]["model_version"] == 2
        gate = next(s for s in second["result"]["steps"] if s["step"] == "evaluate")["gate"]
        assert gate["value"] > gate["champion_value"]
        assert c.get("/models/churn/aliases/champion")["version"] == 2
        assert {"step": "baseline", "reference": "dataset:customers@2"} in \
            second["result"]["steps"]

        # drop drifted data -> a drift alert
        assert server.drop("customers", "v3.csv",
                           drifted(1500, seed=3, start_id=9000))["outcome"] == "accepted"
        third = wait_loop(c, "train.churn:customers@3")
        drift = next(s for s in third["result"]["steps"] if s["step"] == "drift")
        assert drift["drift"] and "tenure_months" in drift["drifted"] and "plan" in drift["drifted"]
        alerts = [a for a in c.get("/alerts") if a["kind"] == "drift" and a["key"] == "churn"]
        assert len(alerts) == 1 and alerts[0]["status"] == "open"

        # drop a contract-breaking file -> rejected, and no training
        runs_before = c.runs(kind="train")["total"]
        bad = make_customers(200, seed=4, start_id=20000).drop("tenure_months").write_csv()
        assert server.drop("customers", "v4.csv", bad.encode())["outcome"] == "rejected"
        time.sleep(2.0)
        assert c.runs(kind="train")["total"] == runs_before
        assert all(not (r["idempotency_key"] or "").endswith("@4") for r in loop_runs(c))
        versions = c.get("/models/churn")["versions"]
        assert sorted(v["number"] for v in versions) == [1, 2, 3]
        assert len({v["dataset_version"] for v in versions}) == 3  # each version trained once

        # pause the loop: new data waits; resume: it catches up on the newest version
        c.pause_job("train.churn")
        row = server.drop("customers", "v5.csv", clean(800, seed=5, start_id=30000))
        assert row["outcome"] == "accepted"
        time.sleep(2.0)
        assert not [r for r in loop_runs(c)
                    if r["idempotency_key"] == f"train.churn:customers@{row['version']}"]
        c.resume_job("train.churn")
        caught_up = wait_loop(c, f"train.churn:customers@{row['version']}")
        assert caught_up["status"] == "succeeded" and caught_up["trigger"] == "new_data"


def test_jobs_api_lists_the_loop_and_pause_stops_new_data_runs_no_more_than_the_schedule(
        server_factory: Any, tmp_path: Path) -> None:
    server = start(server_factory, tmp_path)
    with server.client() as c:
        jobs = {j["id"]: j for j in c.jobs()["items"]}
        assert jobs["train.churn"]["trigger"] == "on new data in customers"
        assert {"inbox.scan", "housekeeping.checkpoint",
                "housekeeping.retention"} <= set(jobs)
        assert jobs["housekeeping.checkpoint"]["next_run"] is not None
        paused = c.pause_job("housekeeping.checkpoint")
        assert paused["paused"] and paused["next_run"] is None
        assert c.resume_job("housekeeping.checkpoint")["paused"] is False
        queued = c.run_job("housekeeping.checkpoint")
        assert queued["status"] == "queued" and queued["trigger"] == "manual"
        deadline = time.monotonic() + 30
        while c.job_run("housekeeping.checkpoint", queued["id"])["status"] != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.2)
        audit = [e["action"] for e in c.audit(limit=50)]
        assert {"job.pause", "job.resume", "job.run"} <= set(audit)


@pytest.mark.parametrize(("path", "status"), [
    ("/jobs/nope.nope", 404), ("/jobs/..%2F..%2Fetc", 404), ("/jobs/a.b%3Brm%20-rf", 400), ("/jobs/Bad.ID/runs", 400),
    ("/jobs/inbox.scan/runs?status=sleeping", 400),
    ("/jobs/inbox.scan/runs/not-a-uuid", 400),
    ("/jobs/inbox.scan/runs/00000000-0000-0000-0000-000000000000", 404),
])
def test_jobs_api_bad_requests_get_clear_errors(api: Any, path: str, status: int) -> None:
    resp = api.get("/api/v1" + path)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["message"]


def test_a_scheduled_loop_before_its_datasets_first_file_has_nothing_to_train(
        appliance_app: Any) -> None:
    from appliance.domain.principal import Principal
    from appliance.domain.roles import Role

    jobs_dir = appliance_app.settings.resolved_jobs_dir
    jobs_dir.mkdir(parents=True, exist_ok=True)
    (jobs_dir / "churn.yaml").write_text(LOOP_JOB.replace('{"on": new_data}', "{every: 1h}"))
    appliance_app.jobs.reload()
    appliance_app.jobs._tick("train.churn")  # what the scheduler calls every hour
    [run] = appliance_app.jobs.ledger.page(job="train.churn").items
    assert run.trigger.value == "interval"
    assert run.status.value == "succeeded", run.error  # not failed, retried and alerted
    assert run.result["trained"] is False
    assert "customers has no accepted version" in run.result["reason"]
    # by hand, the same job still says the dataset does not exist (a typo is not hidden)
    manual = appliance_app.jobs.run_here("train.churn", by=Principal("ops", Role.admin))
    assert manual.status.value == "failed"
    assert "customers" in (manual.error or "")
