"""kill -9 at fixed points of the loop: after each restart nothing is lost, duplicated or stuck.

Each point is a named failpoint (``APPLIANCE_FAILPOINT``) where the serve
process SIGKILLs itself: the same death as ``kill -9``, at a known state. One
home lives through the whole list, one new file per point, so later points
also see the state earlier crashes left behind.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import drop_file

from appliance.demo import make_customers

JOB = """\
name: churn
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: LogisticRegression, params: {max_iter: 300}}
split: {test_size: 0.3, seed: 7}
metric: roc_auc
schedule:
  train: {"on": new_data}
"""

# The fixed list, in loop order: accepting the file, queuing and starting the loop,
# the drift step, training, recording, registering, and finishing.
POINTS = [
    "ingest.before_commit",
    "ingest.after_commit",
    "jobs.after_queue",
    "jobs.before_run",
    "loop.after_drift",
    "loop.after_submit",
    "train.before_record",
    "train.after_register",
    "train.after_record",
    "jobs.after_run",
    "jobs.after_finish",
]
QUICK = ["ingest.after_commit", "loop.after_submit", "train.after_register"]


def data(k: int) -> bytes:
    return make_customers(300, seed=100 + k, start_id=1 + 1000 * k).write_csv().encode()


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = check()
        if out:
            return out
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def assert_consistent(c: Any, home: Path, files: list[str]) -> None:
    accepted = {r["file_name"]: r for r in c.ingests(dataset="customers", limit=1000)
                if r["outcome"] == "accepted"}
    assert sorted(accepted) == sorted(files), "an accepted file was lost or doubled"
    assert len({r["version"] for r in accepted.values()}) == len(files)
    assert not any((home / "inbox" / "customers").glob("*.csv"))
    assert not any(p for p in (home / "claimed").rglob("*") if p.is_file())
    versions = c.get("/models/churn")["versions"]
    trained_on = sorted(v["dataset_version"] for v in versions)
    assert trained_on == list(range(1, len(files) + 1)), \
        f"duplicate or missing model versions: {trained_on}"
    assert c.runs(kind="train", status="running")["total"] == 0
    assert c.runs(kind="train", status="queued")["total"] == 0
    succeeded = c.runs(kind="train", status="succeeded")["items"]
    assert sorted(r["dataset_version"] for r in succeeded) == trained_on, \
        "a data version was trained twice"
    loop = c.job_runs("train.churn", limit=500)["items"]
    assert not [r for r in loop if r["status"] in ("running", "queued")]
    done = {r["idempotency_key"] for r in loop if r["status"] == "succeeded"}
    assert done == {f"train.churn:customers@{n}" for n in range(1, len(files) + 1)}
    assert c.audit_verify()["ok"]


def run_chain(server_factory: Any, tmp_path: Path, points: list[str]) -> None:
    home = tmp_path / "home"
    (home / "jobs").mkdir(parents=True)
    (home / "jobs" / "churn.yaml").write_text(JOB)
    files: list[str] = []
    for k, point in enumerate(points, start=1):
        crashing = server_factory(home, env={"APPLIANCE_FAILPOINT": point})
        name = f"v{k}.csv"
        drop_file(home / "inbox", "customers", name, data(k))
        files.append(name)
        try:
            code = crashing.proc.wait(timeout=120)
        except Exception:
            crashing.stop(signal.SIGKILL)
            raise AssertionError(f"{point} was never reached:\n{crashing.log()[-3000:]}") \
                from None
        assert code == -signal.SIGKILL, f"{point}: exit {code}\n{crashing.log()[-3000:]}"

        server = server_factory(home)
        with server.client() as c:
            wait_for(lambda c=c, k=k: any(
                r["idempotency_key"] == f"train.churn:customers@{k}"
                and r["status"] == "succeeded"
                for r in c.job_runs("train.churn", limit=500)["items"]),
                180, f"the loop for v{k} after a crash at {point}")
            assert_consistent(c, home, files)
        server.stop()


def test_kill_9_at_three_points_of_the_loop_loses_and_duplicates_nothing(
        server_factory: Any, tmp_path: Path) -> None:
    run_chain(server_factory, tmp_path, QUICK)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # eleven crash-and-recover rounds, each with a training run
def test_kill_9_at_every_point_of_the_loop_loses_and_duplicates_nothing(
        server_factory: Any, tmp_path: Path) -> None:
    assert len(POINTS) >= 10
    run_chain(server_factory, tmp_path, POINTS)
