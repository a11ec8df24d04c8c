"""The Jobs page against a real `appliance serve` whose jobs folder holds our job files.

A private server (not the shared live one), so that its job files, pauses and
runs are this module's alone: a training loop on new data, a job whose dataset
does not exist (its runs fail), and a file that does not validate. Expected
values come from the API itself.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from appliance_test_support import ServerProcess, start_server
from streamlit.testing.v1 import AppTest

from appliance.client import ApplianceClient
from appliance.demo import make_customers

from .conftest import VIEWER, ensure_user
from .console_testing import (
    JOBS_PAGE,
    assert_clean,
    charts,
    has_key,
    log_in,
    new_console,
    open_page,
    table,
    texts,
)

DATASET = "ui_jobs_customers"
LOOP_JOB = f"""\
name: ui_loop
dataset: {DATASET}
target: churned
features: {{exclude: [customer_id]}}
model: {{kind: LogisticRegression, params: {{max_iter: 500}}}}
split: {{test_size: 0.3, seed: 7}}
metric: roc_auc
schedule:
  train: {{"on": new_data, retries: 0}}
"""
GHOST_JOB = """\
name: ui_ghost
dataset: ui_no_such_dataset
target: y
model: {kind: LogisticRegression}
schedule:
  train: {cron: "0 0 1 1 *", retries: 0}
"""
BROKEN_JOB = """\
name: ui_broken
dataset: anything
target: y
model: {kind: LogisticRegression}
colour: blue
"""
BUTTONS = ("jobs_run_now", "jobs_pause", "jobs_resume")


@pytest.fixture(scope="module")
def jobs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("ui_jobs") / "home"
    (home / "jobs").mkdir(parents=True)
    (home / "jobs" / "ui_loop.yaml").write_text(LOOP_JOB)
    (home / "jobs" / "ui_ghost.yaml").write_text(GHOST_JOB)
    (home / "jobs" / "broken.yaml").write_text(BROKEN_JOB)
    server = start_server(home)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api(jobs_server: ServerProcess) -> Iterator[ApplianceClient]:
    with jobs_server.client() as c:
        yield c


@pytest.fixture
def console(jobs_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("APPLIANCE_API_URL", jobs_server.url)
    return new_console()


@pytest.fixture(scope="module")
def trained(jobs_server: ServerProcess, api: ApplianceClient) -> dict[str, Any]:
    """One file drop: the loop validates, trains, registers and promotes, then we read its run."""
    csv = make_customers(300, seed=1).write_csv().encode()
    assert jobs_server.drop(DATASET, "v1.csv", csv)["outcome"] == "accepted"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        done = [r for r in api.job_runs("train.ui_loop")["items"]
                if r["status"] in ("succeeded", "failed")]
        if done:
            run = api.job_run("train.ui_loop", done[0]["id"])
            assert run["status"] == "succeeded", run
            return run
        time.sleep(0.3)
    raise AssertionError(f"the loop did not finish: {api.job_runs('train.ui_loop')}")


def open_jobs(console: AppTest, server: ServerProcess, user: tuple[str, str] | None = None,
              job: str | None = None) -> AppTest:
    at = open_page(log_in(console, *(user or ("admin", server.admin_password))), JOBS_PAGE)
    if job is not None:
        at.selectbox(key="jobs_job").select(job).run()
    return at


def run_ids(at: AppTest) -> list[str]:
    return list(table(at, "status", "attempt", "id")["id"])


def toasts(at: AppTest) -> list[str]:
    return texts(at.toast)


def test_jobs_page_lists_every_schedule_and_names_the_invalid_file_with_its_line(
    console: AppTest, jobs_server: ServerProcess, api: ApplianceClient
) -> None:
    at = open_jobs(console, jobs_server)

    assert_clean(at)
    assert texts(at.title) == ["Jobs"]
    listed = api.jobs()
    shown = table(at, "id", "trigger", "next_run", "paused").set_index("id")
    assert set(shown.index) == {j["id"] for j in listed["items"]}
    assert {"train.ui_loop", "train.ui_ghost", "housekeeping.checkpoint"} <= set(shown.index)
    for job in listed["items"]:
        assert shown.loc[job["id"], "trigger"] == job["trigger"]
        assert bool(shown.loc[job["id"], "paused"]) is job["paused"]
    assert shown.loc["train.ui_loop", "trigger"] == f"on new data in {DATASET}"
    broken = next(f for f in listed["files"] if f["name"] == "broken.yaml")
    assert not broken["ok"] and broken["error"]["line"] is not None
    [banner] = texts(at.warning)
    assert "1 job file invalid" in banner
    assert f"`broken.yaml` (line {broken['error']['line']}" in banner
    assert broken["error"]["message"] in banner
    assert "ui_loop.yaml" not in banner


def test_run_now_queues_a_run_toasts_it_and_shows_it_in_the_history(
    console: AppTest, jobs_server: ServerProcess, api: ApplianceClient
) -> None:
    at = open_jobs(console, jobs_server, job="housekeeping.checkpoint")
    before = api.job_runs("housekeeping.checkpoint")["total"]

    at.button(key="jobs_run_now").click().run()

    assert_clean(at)
    answer = api.job_runs("housekeeping.checkpoint")
    assert answer["total"] == before + 1
    queued = answer["items"][0]
    assert queued["trigger"] == "manual"
    assert toasts(at) == [f"Queued a run of housekeeping.checkpoint (run {queued['id'][:8]})."]
    assert run_ids(at)[0] == queued["id"]
    assert any(e.label.startswith(f"Run {queued['id'][:8]}") for e in at.expander)


def test_pause_and_resume_change_the_schedule_and_say_so(
    console: AppTest, jobs_server: ServerProcess, api: ApplianceClient
) -> None:
    at = open_jobs(console, jobs_server, job="housekeeping.retention")
    assert at.button(key="jobs_resume").disabled

    at.button(key="jobs_pause").click().run()

    assert_clean(at)
    assert api.get("/jobs/housekeeping.retention")["paused"] is True
    assert toasts(at) == ["Paused housekeeping.retention: no scheduled runs until it is resumed."]
    row = table(at, "id", "paused").set_index("id").loc["housekeeping.retention"]
    assert bool(row["paused"]) and row["next_run"] is None
    assert at.button(key="jobs_pause").disabled and not at.button(key="jobs_resume").disabled

    at.button(key="jobs_resume").click().run()

    assert_clean(at)
    job = api.get("/jobs/housekeeping.retention")
    assert job["paused"] is False and job["next_run"] is not None
    assert toasts(at) == [f"Resumed housekeeping.retention: next run {job['next_run']}."]
    row = table(at, "id", "paused").set_index("id").loc["housekeeping.retention"]
    assert not bool(row["paused"]) and row["next_run"] == job["next_run"]


def test_a_viewer_sees_the_schedules_but_no_run_pause_or_resume_buttons(
    console: AppTest, jobs_server: ServerProcess, api: ApplianceClient
) -> None:
    viewer = ensure_user(api, *VIEWER, "viewer")
    at = open_jobs(console, jobs_server, user=viewer, job="housekeeping.checkpoint")

    assert_clean(at)
    assert "train.ui_loop" in set(table(at, "id", "trigger")["id"])
    assert not any(has_key(at.button, key) for key in BUTTONS)
    assert "Operators can run, pause and resume jobs." in texts(at.caption)


def test_a_failed_run_shows_its_error_and_the_status_filter_narrows_the_history(
    console: AppTest, jobs_server: ServerProcess, api: ApplianceClient
) -> None:
    failed = api.run_job("train.ui_ghost")
    deadline = time.monotonic() + 30
    while (run := api.job_run("train.ui_ghost", failed["id"]))["status"] != "failed":
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
    at = open_jobs(console, jobs_server, job="train.ui_ghost")

    assert not at.exception
    assert run_ids(at) == [failed["id"]]
    assert texts(at.error) == [f"The run failed: {run['error']}"]
    assert "ui_no_such_dataset" in run["error"]
    assert len(charts(at)) == 1  # its duration, coloured by status

    at.selectbox(key="jobs_run_status").select("succeeded").run()
    assert not at.exception
    assert "No runs match this status." in texts(at.info)
    at.selectbox(key="jobs_run_status").select("failed").run()
    assert run_ids(at) == [failed["id"]]


def test_the_detail_of_a_training_loop_run_lists_its_steps_and_shows_its_logs(
    console: AppTest, jobs_server: ServerProcess, trained: dict[str, Any]
) -> None:
    at = open_jobs(console, jobs_server, job="train.ui_loop")

    assert_clean(at)
    assert run_ids(at) == [trained["id"]]
    steps = [s["step"] for s in trained["result"]["steps"]]
    assert steps == ["validate", "drift", "train", "evaluate", "register", "promote",
                     "baseline"]
    listing = next(t for t in texts(at.markdown) if t.startswith("1. **validate**"))
    lines = listing.splitlines()
    assert [line.split("**")[1] for line in lines] == steps
    assert f"{DATASET}@1 is accepted against its contract (300 rows)" in lines[0]
    assert lines[1].endswith("skipped: no champion yet")
    assert trained["result"]["run_id"] in lines[2]
    assert "gate passed: roc_auc" in lines[3] and "(no champion yet)" in lines[3]
    assert lines[4].endswith("registered ui_loop@1 (ready)")
    assert lines[5].endswith("promoted to champion")
    assert lines[6].endswith(f"the drift baseline is now dataset:{DATASET}@1")
    [logs] = texts(at.code)
    assert logs == trained["logs"] and "queued training run" in logs
