"""The notebook tracking client (appliance.client.start_run) against a real server."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from appliance_test_support import ServerProcess

from appliance.client import ApplianceClient, TrackedRun
from appliance.errors import Conflict, InvalidInput, RemoteError


@pytest.fixture
def client(live_server: ServerProcess) -> Any:
    with live_server.client() as c:
        yield c


def _experiment() -> str:
    return f"exp-{uuid.uuid4().hex[:10]}"


def _wait_for_points(client: ApplianceClient, run_id: str, n: int, timeout: float = 10) -> list[Any]:
    deadline = time.monotonic() + timeout
    while True:
        points = client.run_metrics(run_id)
        if len(points) >= n or time.monotonic() > deadline:
            return points
        time.sleep(0.05)


def test_track_run_round_trips_params_metrics_tags_and_artifact(client: ApplianceClient,
                                                                tmp_path: Path) -> None:
    artifact = tmp_path / "confusion.csv"
    artifact.write_bytes(b"tp,fp\n10,2\n")
    with client.start_run("roundtrip", experiment=_experiment(), params={"seed": 7},
                          tags={"team": "risk"}) as run:
        assert isinstance(run, TrackedRun)
        run.log_param("lr", 0.1)
        run.log_params({"depth": 5, "kind": "xgb"})
        run.set_tag("stage", "dev")
        for loss in (0.9, 0.5, 0.25):
            run.log_metric("loss", loss)
        run.log_metrics({"acc": np.float32(0.75), "auc": np.float64(0.8)}, step=3)
        run.log_metric("acc", 0.875, step=10)
        stored = run.log_artifact(artifact, name="confusion.csv")
    assert stored == {"name": "confusion.csv", "size_bytes": artifact.stat().st_size,
                      "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest()}

    detail = client.run(run.id)
    assert detail["status"] == "succeeded" and detail["kind"] == "external"
    assert detail["params"] == {"seed": "7", "lr": "0.1", "depth": "5", "kind": "xgb"}
    assert detail["tags"] == {"team": "risk", "stage": "dev"}
    assert detail["metrics"] == {"loss": 0.25, "acc": 0.875, "auc": pytest.approx(0.8)}
    assert [a["name"] for a in detail["artifacts"]] == ["confusion.csv"]
    assert client.artifact(run.id, "confusion.csv") == artifact.read_bytes()

    loss = client.run_metrics(run.id, key="loss")
    assert [(p["step"], p["value"]) for p in loss] == [(0, 0.9), (1, 0.5), (2, 0.25)]
    acc = client.run_metrics(run.id, key="acc")
    assert [(p["step"], p["value"]) for p in acc] == [(3, 0.75), (10, 0.875)]


def test_log_metric_batches_2500_points_complete_and_in_step_order(client: ApplianceClient) -> None:
    run = client.start_run("batched", experiment=_experiment(), buffer_size=1000, flush_interval=None)
    for i in range(2500):
        run.log_metric("loss", 1.0 / (i + 1))
    # two full buffers went as batches on their own; the last 500 wait for a flush
    assert len(client.run_metrics(run.id)) == 2000
    assert run.pending == 500
    run.end()
    points = client.run_metrics(run.id, key="loss")
    assert [p["step"] for p in points] == list(range(2500))
    assert [p["value"] for p in points] == [1.0 / (i + 1) for i in range(2500)]


def test_log_metric_refuses_a_bad_value_locally_at_once(client: ApplianceClient) -> None:
    with client.start_run("local-checks", experiment=_experiment(), flush_interval=None) as run:
        for bad in (float("nan"), float("inf"), "0.5", True, None):
            with pytest.raises(InvalidInput, match="metric 'loss'"):
                run.log_metric("loss", bad)
        with pytest.raises(InvalidInput, match="invalid metric key"):
            run.log_metric("loss$", 1.0)
        with pytest.raises(InvalidInput, match="step"):
            run.log_metric("loss", 1.0, step=-1)
        run.log_param("lr", 0.1)
        with pytest.raises(InvalidInput, match="already"):
            run.log_param("lr", 0.2)
        assert run.pending == 1  # only the param: nothing bad was buffered
    assert client.run_metrics(run.id) == []


@pytest.mark.parametrize("bad", [
    {"key": "acc", "value": "0.9"},
    {"key": "acc", "value": True},
    {"key": "bad key!", "value": 1.0},
    {"key": "acc", "value": 1.0, "step": -3},
])
def test_log_batch_with_a_bad_entry_is_refused_whole(client: ApplianceClient, bad: dict[str, Any]) -> None:
    run = client.start_run("bad-batch", experiment=_experiment(), flush_interval=None)
    good = [{"key": "loss", "value": 0.5, "step": i} for i in range(10)]
    with pytest.raises(RemoteError) as caught:
        client.post(f"/runs/{run.id}/log", json={"params": {"p": 1}, "tags": {"t": "x"},
                                                 "metrics": [*good, bad]})
    assert caught.value.status == 400
    assert caught.value.remote_kind == "invalid_input"
    assert ("acc" in caught.value.message or "bad key!" in caught.value.message)
    detail = client.run(run.id)
    assert client.run_metrics(run.id) == []
    assert detail["params"] == {} and detail["tags"] == {} and detail["metrics"] == {}
    run.end()


def test_server_refusal_is_raised_by_the_next_call_and_not_retried(live_server: ServerProcess,
                                                                   client: ApplianceClient) -> None:
    run = client.start_run("refused", experiment=_experiment(), flush_interval=None)
    # another writer sets the param first: the client cannot know, the server refuses
    with live_server.client() as other:
        other.log_run_batch(run.id, {"params": {"lr": 0.1}})
    run.log_param("lr", 0.2)
    run.log_metric("loss", 0.5)
    with pytest.raises(RemoteError, match="lr") as caught:
        run.flush()
    assert caught.value.status == 400
    assert run.pending == 0  # the refused batch was dropped, not kept for retries
    run.log_metric("loss", 0.4)
    run.flush()  # the refusal was reported once; later batches go through
    run.end()
    assert [p["value"] for p in client.run_metrics(run.id)] == [0.4]


def test_background_refusal_surfaces_on_the_next_log_call(live_server: ServerProcess,
                                                          client: ApplianceClient) -> None:
    run = client.start_run("refused-bg", experiment=_experiment(), flush_interval=0.1)
    with live_server.client() as other:
        other.log_run_batch(run.id, {"params": {"depth": 3}})
    run.log_param("depth", 4)
    deadline = time.monotonic() + 10
    with pytest.raises(RemoteError, match="depth"):
        while time.monotonic() < deadline:
            run.log_metric("loss", 1.0)
            time.sleep(0.05)
    run.end()


def test_timer_flushes_without_an_explicit_flush(client: ApplianceClient) -> None:
    run = client.start_run("timer", experiment=_experiment(), flush_interval=0.2)
    for i in range(10):
        run.log_metric("loss", float(i))
    assert len(_wait_for_points(client, run.id, 10)) == 10
    assert run.pending == 0
    run.end()


def test_log_to_an_ended_run_is_409(client: ApplianceClient) -> None:
    run = client.start_run("ended", experiment=_experiment())
    run.end()
    with pytest.raises(RemoteError) as caught:
        client.post(f"/runs/{run.id}/log", json={"metrics": [{"key": "loss", "value": 1.0}]})
    assert caught.value.status == 409
    with pytest.raises(Conflict):
        run.log_metric("loss", 1.0)
    assert client.run_metrics(run.id) == []


def test_end_run_twice_is_refused_by_the_state_machine(client: ApplianceClient) -> None:
    run = client.start_run("twice", experiment=_experiment())
    run.end()
    with pytest.raises(RemoteError) as caught:
        client.end_run(run.id, "succeeded")
    assert caught.value.status == 409
    with pytest.raises(Conflict):
        run.end()
    assert client.run(run.id)["status"] == "succeeded"


def test_context_manager_ends_failed_on_exception(client: ApplianceClient) -> None:
    with pytest.raises(ZeroDivisionError), client.start_run("boom", experiment=_experiment()) as run:
        run.log_metric("loss", 1.0)
        _ = 1 / 0
    detail = client.run(run.id)
    assert detail["status"] == "failed"
    assert "ZeroDivisionError" in detail["error"]
    assert len(client.run_metrics(run.id)) == 1


_NOTEBOOK = textwrap.dedent("""
    import sys, time
    from appliance.client import ApplianceClient

    client = ApplianceClient(sys.argv[1], token=sys.argv[2])
    run = client.start_run("notebook", experiment=sys.argv[3], flush_interval=0.2)
    print(run.id, flush=True)
    for i in range(300):
        run.log_metric("loss", 1.0 / (i + 1))
    deadline = time.monotonic() + 30
    while run.pending and time.monotonic() < deadline:
        time.sleep(0.05)            # the timer sends the 300: no flush() is called
    run._send_lock.acquire()        # hold the next flush back so the kill lands before it
    for i in range(5):
        run.log_metric("loss", 0.001)
    print("ready", flush=True)
    time.sleep(60)
""")


def test_kill_9_of_a_notebook_loses_at_most_the_unflushed_buffer(live_server: ServerProcess,
                                                                 client: ApplianceClient) -> None:
    proc = subprocess.Popen([sys.executable, "-c", _NOTEBOOK, live_server.url, client.token or "",
                             _experiment()], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        run_id = proc.stdout.readline().strip()
        ready = proc.stdout.readline().strip()
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert ready == "ready", proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    points = client.run_metrics(run_id)
    assert 300 <= len(points) < 305, len(points)
    assert [p["step"] for p in points[:300]] == list(range(300))
    assert client.run(run_id)["status"] == "running"  # no atexit ran: nobody ended it


_SCRIPT = textwrap.dedent("""
    import sys
    from appliance.client import ApplianceClient

    client = ApplianceClient(sys.argv[1], token=sys.argv[2])
    run = client.start_run("script", experiment=sys.argv[3], flush_interval=None)
    print(run.id, flush=True)
    for i in range(50):
        run.log_metric("loss", 1.0 / (i + 1))
    if sys.argv[4] == "crash":
        raise ValueError("bad data")
""")


@pytest.mark.parametrize(("mode", "status"), [("exit", "succeeded"), ("crash", "failed")])
def test_interpreter_exit_flushes_and_ends_an_open_run(live_server: ServerProcess,
                                                       client: ApplianceClient, mode: str,
                                                       status: str) -> None:
    done = subprocess.run([sys.executable, "-c", _SCRIPT, live_server.url, client.token or "",
                           _experiment(), mode], capture_output=True, text=True, timeout=60)
    assert done.returncode == (0 if mode == "exit" else 1), done.stderr
    run_id = done.stdout.split()[0]
    assert len(client.run_metrics(run_id)) == 50
    detail = client.run(run_id)
    assert detail["status"] == status
    if mode == "crash":
        assert "ValueError: bad data" in detail["error"]


def test_runs_list_filters_sorts_and_pages_over_the_api(client: ApplianceClient) -> None:
    exp = _experiment()
    accs = [0.71, 0.93, 0.55, 0.88, 0.62]
    for i, acc in enumerate(accs):
        run = client.start_run(f"list-{i}", experiment=exp, tags={"split": "a" if i % 2 else "b"},
                               flush_interval=None)
        run.log_metric("acc", acc)
        run.end("succeeded")
    failed = client.start_run("list-failed", experiment=exp, tags={"split": "a"})
    failed.log_metric("acc", 0.99)
    failed.end("failed", error="diverged")
    open_run = client.start_run("list-open", experiment=exp, flush_interval=None)
    client.start_run("elsewhere", experiment=_experiment(), flush_interval=None).end()

    everything = client.runs(experiment=exp)
    assert everything["total"] == 7
    assert {r["experiment"] for r in everything["items"]} == {exp}

    best = client.runs(experiment=exp, status="succeeded", sort="-metric:acc", limit=50)
    assert best["total"] == 5
    assert [r["metrics"]["acc"] for r in best["items"]] == sorted(accs, reverse=True)
    worst = client.runs(experiment=exp, status="succeeded", sort="metric:acc")
    assert [r["metrics"]["acc"] for r in worst["items"]] == sorted(accs)

    page = client.runs(experiment=exp, status="succeeded", sort="-metric:acc", limit=2, offset=2)
    assert page["total"] == 5
    assert [r["metrics"]["acc"] for r in page["items"]] == sorted(accs, reverse=True)[2:4]

    tagged = client.runs(experiment=exp, tag="split:a")
    assert tagged["total"] == 3
    assert {r["name"] for r in tagged["items"]} == {"list-1", "list-3", "list-failed"}
    assert client.runs(experiment=exp, status="failed")["items"][0]["error"] == "diverged"
    assert [r["name"] for r in client.runs(experiment=exp, status="running")["items"]] == ["list-open"]
    assert client.runs(experiment=exp, kind="external")["total"] == 7
    open_run.end()
