"""Training on a real Dask cluster (APPLIANCE_DASK_SCHEDULER): a LocalCluster of two worker
processes (one thread each) on loopback, started once for the module in the test process."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import logged_in, make_settings
from scheduler_clock import ADMIN

from appliance.demo import make_customers
from appliance.errors import InvalidInput

JOB = """\
name: churn
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: xgboost.XGBClassifier, params: %(params)s}
split: {test_size: 0.25, seed: 7}
metric: roc_auc
%(extra)s
"""
SEARCH = "search: {kind: random, n_iter: 4, params: {max_depth: [2, 3, 4, 5], learning_rate: [0.1, 0.3]}}"


def job(params: str = "{n_estimators: 30, max_depth: 3}", extra: str = "") -> str:
    return JOB % {"params": params, "extra": extra}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """(LocalCluster, a client of the tests' own): 2 worker processes, 1 thread each."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR) as c, \
            Client(c, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=60)
        yield c, client


@contextmanager
def appliance(home: Path, csv: bytes, **settings: Any) -> Iterator[tuple[Any, Any]]:
    """An in-process appliance with the customers dataset accepted: (app, API client)."""
    from fastapi.testclient import TestClient

    from appliance.api.app import create_app
    from appliance.runtime import build

    app = build(make_settings(home, **settings))
    try:
        with TestClient(create_app(app)) as api:
            logged_in(api)
            resp = api.post("/api/v1/datasets/customers/files", params={"filename": "c.csv"},
                            content=csv, headers={"Content-Type": "application/octet-stream"})
            assert resp.status_code == 201 and resp.json()["outcome"] == "accepted", resp.text
            deadline = time.monotonic() + 30
            while api.get("/api/v1/datasets/customers/versions/1").json()["summary_status"] \
                    != "ready":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            yield app, api
    finally:
        app.close()


def train(api: Any, text: str, timeout: float = 180) -> dict[str, Any]:
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


def test_train_on_dask_fans_the_search_out_and_matches_the_child_process(
        tmp_path: Path, cluster: Any) -> None:
    """The same job with a search, on the same data: in the child process, then on the
    cluster, where each trial is its own task; the same metrics and ONNX bytes."""
    from distributed import get_task_stream

    local, client = cluster
    csv = make_customers(600, seed=3).write_csv().encode()
    with appliance(tmp_path / "child", csv) as (app, api):
        by_child = train(api, job(extra=SEARCH))
        assert app.training._dask is None  # no setting: the child process, as always
        child_onnx = app.registry.onnx_bytes("churn", 1)
    with appliance(tmp_path / "dask", csv, dask_scheduler=local.scheduler_address) as (app, api), \
            get_task_stream(client) as stream:
        by_dask = train(api, job(extra=SEARCH))
        assert by_dask["status"] == "succeeded", by_dask["error"]
        dask_onnx = app.registry.onnx_bytes("churn", 1)
        logs = app.runs.show(by_dask["id"]).logs or ""
        trials = app.runs.list_runs(kind="trial", experiment="churn", limit=50).items
        version = api.get("/api/v1/models/churn/versions/1").json()
    assert by_child["status"] == "succeeded", by_child["error"]
    assert by_dask["metrics"] == by_child["metrics"]
    assert by_dask["params"] == by_child["params"]   # the same best trial, refitted
    assert dask_onnx == child_onnx   # the same model, byte for byte
    assert version["parity"]["passed"] and version["aliases"] == ["champion"]
    assert {a["name"] for a in by_dask["artifacts"]} == {a["name"] for a in by_child["artifacts"]}
    assert "trained on Dask worker tcp://127.0.0.1:" in logs
    keys = {str(t["key"]) for t in stream.data}
    prefix = f"appliance-train-{by_dask['id']}"
    assert prefix in keys and {f"{prefix}-trial-{i}" for i in range(4)} <= keys
    assert len(trials) == 4 and all("roc_auc" in t.metrics for t in trials)


@pytest.mark.slow   # about 50 s on 2 busy cores: a 6000-row ingest, a slow fit, the kill
def test_losing_the_training_worker_fails_the_run_and_the_ledger_requeues_it(
        tmp_path: Path, cluster: Any) -> None:
    local, client = cluster
    csv = make_customers(6000, seed=3).write_csv().encode()
    slow = "{n_estimators: 4000, max_depth: 8, learning_rate: 0.01}"
    with appliance(tmp_path / "home", csv, dask_scheduler=local.scheduler_address,
                   dask_lost_worker_seconds=5) as (app, _api):
        jobs_dir = app.settings.resolved_jobs_dir
        jobs_dir.mkdir(parents=True, exist_ok=True)
        (jobs_dir / "churn.yaml").write_text(job(slow) + "schedule:\n  train: {every: 24h, retries: 1}\n")
        app.jobs.reload()
        killed: dict[str, Any] = {}

        def kill_when_fitting() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                for address, keys in client.processing().items():
                    for key in keys:
                        stages = [m.get("progress", {}).get("stage")
                                  for _, m in client.get_events(str(key))]
                        if str(key).startswith("appliance-train-") and "fit" in stages:
                            pid = client.run(os.getpid, workers=[address])[address]
                            os.kill(pid, signal.SIGKILL)
                            killed.update(at=time.monotonic(), worker=address)
                            return
                time.sleep(0.1)

        import threading

        killer = threading.Thread(target=kill_when_fitting, daemon=True)
        killer.start()
        ledger_run = app.jobs.run_here("train.churn", by=ADMIN)
        failed_at = time.monotonic()
        killer.join(timeout=5)
        assert killed, "the training never reached its fit on a worker"
        assert ledger_run.status == "failed"
        assert failed_at - killed["at"] < 5 + 2   # within APPLIANCE_DASK_LOST_WORKER_SECONDS
        assert "left the cluster" in (ledger_run.error or ""), ledger_run.error
        run = app.training.runs_for("churn", "customers", 1)[0]
        assert run.status == "failed" and killed["worker"] in (run.error or "")
        retries = [r for r in app.jobs.ledger.page(job="train.churn").items
                   if r.retry_of == ledger_run.id]
        assert [(r.status.value, r.attempt) for r in retries] == [("queued", 2)]
    client.wait_for_workers(2, timeout=60)   # the nanny restarted it, for the next tests


def test_training_without_the_setting_never_imports_dask() -> None:
    """The embedded default: the training service and the Dask runner's module load
    neither dask nor distributed (they are imported inside the functions that use them)."""
    import subprocess
    import sys

    probe = ("import sys\nimport appliance.runtime, appliance.train.service, "
             "appliance.train.dask_runner\n"
             "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_a_dask_scheduler_that_is_not_an_address_is_refused(tmp_path: Path) -> None:
    from appliance.train.dask_runner import check_scheduler

    for bad in ("", "localhost:8786", "http://h:8786", "tcp://user:pw@h:8786", "tcp://"):
        with pytest.raises(InvalidInput, match="APPLIANCE_DASK_SCHEDULER"):
            check_scheduler(bad)
    assert check_scheduler("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"


def test_an_unreachable_dask_scheduler_fails_the_run_with_its_address(tmp_path: Path) -> None:
    import socket

    from appliance.errors import TrainingFailed
    from appliance.train.dask_runner import DaskTrainer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # nobody listens here once closed
    trainer = DaskTrainer(make_settings(tmp_path / "home", dask_scheduler=f"tcp://127.0.0.1:{port}",
                                        dask_lost_worker_seconds=2))
    started = time.monotonic()
    try:
        with pytest.raises(TrainingFailed, match=f"cannot reach the Dask scheduler at "
                                                 f"tcp://127.0.0.1:{port}"):
            trainer.run("r1", {"out_dir": str(tmp_path / "out")}, lambda p: None, lambda t: None)
    finally:
        trainer.close()
    assert time.monotonic() - started < 2 + 5   # within the lost-worker bound, not 30 s
