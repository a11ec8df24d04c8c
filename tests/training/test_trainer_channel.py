"""The trainer child through the shared channel: a hung, chatty or dead trainer fails its run
with a clear error, and is never left running."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.demo import make_customers
from appliance.train import service as train_service

JOB = """
name: churn
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: LogisticRegression, params: {max_iter: 200}}
"""


def fake_trainer(tmp_path: Path, body: str) -> str:
    """An executable standing in for ``python -m appliance.train.child.worker``."""
    path = tmp_path / "fake-trainer"
    path.write_text(f"#!{sys.executable}\nimport os, sys, time\n"
                    f"open({str(tmp_path / 'pid')!r}, 'w').write(str(os.getpid()))\n"
                    + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def run_with(api: Any, appliance_app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
             body: str) -> dict[str, Any]:
    csv = make_customers(200, seed=3).write_csv().encode()
    resp = api.post("/api/v1/datasets/customers/files", params={"filename": "c.csv"},
                    content=csv, headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 201, resp.text
    monkeypatch.setattr(appliance_app.settings, "train_timeout_seconds", 1.5)
    monkeypatch.setattr(train_service.sys, "executable", fake_trainer(tmp_path, body))
    resp = api.post("/api/v1/runs", json={"job": JOB})
    assert resp.status_code == 202, resp.text
    deadline = time.monotonic() + 60
    while True:
        run: dict[str, Any] = api.get(f"/api/v1/runs/{resp.json()['id']}").json()
        if run["status"] in ("succeeded", "failed", "interrupted"):
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.1)


def assert_gone(tmp_path: Path) -> None:
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"trainer {pid} still running")


def test_train_with_a_hung_trainer_fails_at_the_deadline_and_kills_it(
        api: Any, appliance_app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run = run_with(api, appliance_app, monkeypatch, tmp_path, "time.sleep(600)\n")
    assert run["status"] == "failed"
    assert run["error"] == "training took longer than 1.5 s; stopped"
    assert_gone(tmp_path)


def test_train_with_an_oversized_trainer_line_fails_and_kills_it(
        api: Any, appliance_app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(train_service, "_MAX_LINE", 1 << 20)
    run = run_with(api, appliance_app, monkeypatch, tmp_path,
                   "sys.stdout.write('x' * (4 << 20)); sys.stdout.flush(); time.sleep(600)\n")
    assert (run["status"], run["error"]) == ("failed",
                                             "the trainer sent an oversized reply; stopped")
    assert_gone(tmp_path)


def test_train_with_a_trainer_that_dies_fails_with_its_exit_status(
        api: Any, appliance_app: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    run = run_with(api, appliance_app, monkeypatch, tmp_path,
                   "sys.stderr.write('segfault-ish\\n'); sys.exit(7)\n")
    assert (run["status"], run["error"]) == ("failed",
                                             "the trainer process died (exit status 7)")
    assert "segfault-ish" in (api.get(f"/api/v1/runs/{run['id']}").json().get("logs") or "")
