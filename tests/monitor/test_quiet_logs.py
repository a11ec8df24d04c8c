"""The server's log holds what an operator should read: no routine scheduler chatter every few
seconds, and no foreign framework announcements on the first drift check."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.demo import make_customers

JOB = """
name: quiet
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: LogisticRegression, params: {}}
split: {test_size: 0.25, seed: 7}
metric: roc_auc
"""
FOREIGN = ("None of PyTorch", "TensorFlow", "tensorflow", "torch", "numba", "Warning:",
           "FutureWarning", "DeprecationWarning", "UserWarning")


FIRST_DRIFT = """
import logging, warnings
logging.basicConfig(level=logging.INFO)   # as `appliance serve` configures it
warnings.simplefilter("default")          # show every warning once, as a fresh interpreter may
from appliance.demo import make_customers
from appliance.monitor.multivariate import multivariate_drift
from appliance.monitor.selection import column_kind, feature_tests
ref = make_customers(300, seed=1)
cur = make_customers(300, seed=2, start_id=9000)
kinds = {c: column_kind(ref[c]) for c in ("age", "plan")}
out = feature_tests(ref, cur, kinds, p_val=0.05, correction="bonferroni")
assert [r.test for r in out] == ["ks", "chisquare"], out
assert multivariate_drift(ref, cur, kinds, p_val=0.05).auc is not None
print("checked")
"""


def test_first_drift_tests_in_a_fresh_process_write_nothing_to_stderr() -> None:
    out = subprocess.run([sys.executable, "-c", FIRST_DRIFT], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "checked", out
    assert out.stderr == "", out.stderr


def test_routine_scheduler_jobs_write_nothing_at_info_level(tmp_path: Path,
                                                           server_factory: Any) -> None:
    server = server_factory(tmp_path / "home", env={"APPLIANCE_LOG_LEVEL": "info",
                                                    "APPLIANCE_JOBS_RELOAD_SECONDS": "0.3"})
    time.sleep(2)  # several job-file reloads
    log = server.log()
    assert "serving" in log  # the log is on, at info level
    assert "Running job" not in log and "executed successfully" not in log, log
    assert "Adding job" not in log and "Added job" not in log, log


@pytest.mark.slow
def test_first_drift_check_and_routine_jobs_write_nothing_to_the_server_log(
        tmp_path: Path, server_factory: Any) -> None:
    server = server_factory(tmp_path / "home", env={"APPLIANCE_LOG_LEVEL": "info",
                                                    "APPLIANCE_JOBS_RELOAD_SECONDS": "0.5"})
    with server.client() as c:
        server.drop("customers", "a.csv", make_customers(400, seed=3).write_csv().encode())
        server.drop("customers", "b.csv",
                    make_customers(400, seed=4, start_id=5000).write_csv().encode())
        server.wait_for_summaries("customers")
        run = c.post("/runs", json={"job": JOB})
        deadline = time.monotonic() + 120
        while (run := c.get(f"/runs/{run['id']}"))["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert run["status"] == "succeeded", run["error"]
        time.sleep(1.5)  # three job-file reloads
        mark = len(server.log())
        report = c.post("/monitor/quiet/drift", json={"dataset_version": 2})
        assert report["features"], report  # alibi-detect was imported and ran
        time.sleep(1.5)
    before, after = server.log()[:mark], server.log()[mark:]
    assert "Running job" not in server.log() and "executed successfully" not in server.log()
    assert "jobs.reload" not in server.log()
    assert not [word for word in FOREIGN if word in after], after
    assert "serving" in before  # the log is on, at info level


def test_routine_scheduler_lines_show_at_debug_level(caplog: Any) -> None:
    from appliance.jobs.scheduler import _ROUTINE

    record = logging.LogRecord("apscheduler.executors.default", logging.INFO, "", 0,
                               'Running job "jobs.reload"', None, None)
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.INFO)
        assert not _ROUTINE.filter(record)
        root.setLevel(logging.DEBUG)
        assert _ROUTINE.filter(record) and record.levelname == "DEBUG"
    finally:
        root.setLevel(level)
    warning = logging.LogRecord("apscheduler.scheduler", logging.WARNING, "", 0, "missed", None,
                                None)
    assert _ROUTINE.filter(warning) and warning.levelname == "WARNING"
