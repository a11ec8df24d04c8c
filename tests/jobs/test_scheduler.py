"""The scheduler and its run ledger, on a controllable clock and a real DuckDB file."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import pytest
from scheduler_clock import ADMIN, Rig

from appliance.errors import InvalidInput, NotFound
from appliance.jobs.scheduler import TriggerSpec


def test_24_simulated_hours_of_a_1_minute_job_record_exactly_1440_runs(rig: Rig) -> None:
    calls: list[int] = []
    rig.jobs.add_builtin("test.tick", lambda: calls.append(1), TriggerSpec.every(60),
                         description="a tick")
    rig.start()
    rig.clock.advance(24 * 3600, step=60)
    runs = rig.runs("test.tick")
    assert len(calls) == 1440
    assert len(runs) == 1440
    assert {r.status for r in runs} == {"succeeded"}
    assert all(r.trigger == "interval" and r.duration_ms is not None for r in runs)


def test_cron_jobs_fire_on_their_schedule(rig: Rig) -> None:
    quarter: list[int] = []
    nightly: list[int] = []
    rig.jobs.add_builtin("test.quarter", lambda: quarter.append(1),
                         TriggerSpec.crontab("*/15 * * * *"), description="every 15 minutes")
    rig.jobs.add_builtin("test.nightly", lambda: nightly.append(1),
                         TriggerSpec.crontab("0 3 * * *"), description="03:00 UTC")
    rig.clock.now_value += dt.timedelta(seconds=30)  # 00:00:30: the 00:00 fire has passed
    rig.start()
    rig.clock.advance(3 * 24 * 3600, step=900)
    assert len(quarter) == 3 * 96
    assert len(nightly) == 3
    assert len(rig.runs("test.nightly")) == 3
    assert all(r.trigger == "cron" for r in rig.runs("test.nightly"))


def test_ticks_missed_while_the_process_was_busy_coalesce_into_one_run(rig: Rig) -> None:
    calls: list[int] = []
    rig.jobs.add_builtin("test.tick", lambda: calls.append(1), TriggerSpec.every(60),
                         description="a tick")
    rig.start()
    rig.clock.advance(250)  # one jump over four due ticks
    assert len(calls) == 1
    rig.clock.advance(3600)  # sixty more: still one run, for the latest tick
    assert len(calls) == 2
    assert [r.status for r in rig.runs("test.tick")] == ["succeeded", "succeeded"]


def test_a_tick_later_than_the_misfire_grace_is_skipped_not_run_late(rig: Rig) -> None:
    calls: list[int] = []
    rig.jobs.add_builtin("test.nightly", lambda: calls.append(1),
                         TriggerSpec.crontab("0 3 * * *"), description="03:00 UTC")
    rig.start()
    rig.clock.advance(5 * 3600)  # the process wakes at 05:00: 03:00 is two hours late
    assert calls == []
    (run,) = rig.runs("test.nightly")
    assert run.status == "skipped" and "misfire grace" in run.error
    rig.clock.advance(24 * 3600, step=60)
    assert calls == [1]


def test_a_job_that_overlaps_itself_is_skipped_not_stacked(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig(tmp_path, monkeypatch, threads=True)
    release, started = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        assert release.wait(10)

    try:
        rig.jobs.add_builtin("test.slow", slow, TriggerSpec.every(60), description="slow")
        rig.start()
        rig.clock.advance(60)
        assert started.wait(10)
        rig.clock.advance(60)
        rig.clock.advance(60)
        release.set()
        deadline = threading.Event()
        for _ in range(100):
            if rig.runs("test.slow", "succeeded"):
                break
            deadline.wait(0.05)
        statuses = sorted(r.status for r in rig.runs("test.slow"))
        assert statuses == ["skipped", "skipped", "succeeded"]
        skipped = rig.runs("test.slow", "skipped")
        assert all("still going" in r.error for r in skipped)
    finally:
        release.set()
        rig.close()


def test_a_job_that_raises_is_recorded_failed_and_the_scheduler_carries_on(rig: Rig) -> None:
    calls: list[int] = []

    def boom() -> None:
        calls.append(1)
        raise RuntimeError("disk on fire")

    ok: list[int] = []
    rig.jobs.add_builtin("test.boom", boom, TriggerSpec.every(60), description="fails")
    rig.jobs.add_builtin("test.ok", lambda: ok.append(1), TriggerSpec.every(60), description="ok")
    rig.start()
    rig.clock.advance(10 * 60, step=60)
    failed = rig.runs("test.boom", "failed")
    assert len(failed) == 10 and all("disk on fire" in r.error for r in failed)
    assert "RuntimeError" in (rig.jobs.ledger.get(failed[0].id).logs or "")
    assert len(ok) == 10


def test_a_failed_run_is_retried_after_a_backoff_then_gives_up(rig: Rig) -> None:
    attempts: list[int] = []

    def flaky() -> None:
        attempts.append(1)
        raise RuntimeError("try again")

    rig.jobs.add_builtin("test.flaky", flaky, TriggerSpec.crontab("0 3 * * *"),
                         description="fails", retries=2)
    rig.start()
    rig.clock.advance(3 * 3600, step=60)  # 03:00: the first attempt
    assert len(attempts) == 1
    rig.clock.advance(29)
    assert len(attempts) == 1  # the first retry waits 30 s
    rig.clock.advance(1)
    assert len(attempts) == 2
    rig.clock.advance(60)  # the second retry waits 60 s
    assert len(attempts) == 3
    rig.clock.advance(3600, step=60)
    assert len(attempts) == 3  # retries exhausted
    runs = sorted(rig.runs("test.flaky"), key=lambda r: r.attempt)
    assert [(r.trigger, r.attempt, r.status) for r in runs] == [
        ("cron", 1, "failed"), ("retry", 2, "failed"), ("retry", 3, "failed")]
    assert runs[1].retry_of == runs[0].id


def test_runs_left_running_by_a_dead_process_are_interrupted_and_requeued_once(
        rig: Rig) -> None:
    calls: list[int] = []
    rig.jobs.add_builtin("test.job", lambda: calls.append(1), TriggerSpec.crontab("0 3 * * *"),
                         description="x")
    row = rig.jobs.ledger.queue("test.job", "manual")
    rig.jobs.ledger.begin(row.id)
    requeued = rig.jobs.recover()
    assert [r.trigger for r in requeued] == ["recovery"]
    assert rig.jobs.ledger.get(row.id).status == "interrupted"
    rig.start()
    rig.clock.advance(1)
    assert len(calls) == 1
    assert rig.jobs.ledger.get(requeued[0].id).status == "succeeded"

    # a recovery run that is itself interrupted is not re-queued again
    again = rig.jobs.ledger.queue("test.job", "recovery", attempt=2)
    rig.jobs.ledger.begin(again.id)
    assert rig.jobs.recover() == []
    assert rig.jobs.ledger.get(again.id).status == "interrupted"


def test_pause_and_resume_persist_and_are_audited(rig: Rig) -> None:
    calls: list[int] = []
    rig.jobs.add_builtin("test.tick", lambda: calls.append(1), TriggerSpec.every(60),
                         description="a tick")
    rig.start()
    rig.jobs.pause("test.tick", by=ADMIN)
    rig.clock.advance(600, step=60)
    assert calls == [] and rig.jobs.job("test.tick").paused
    assert rig.jobs.job("test.tick").next_run is None

    # a second service on the same store (a restart) keeps the job paused
    other = rig.service()
    other.add_builtin("test.tick", lambda: calls.append(1), TriggerSpec.every(60),
                      description="a tick")
    other.reload()
    assert other.job("test.tick").paused

    rig.jobs.resume("test.tick", by=ADMIN)
    rig.clock.advance(120, step=60)
    assert len(calls) == 2
    from appliance.store import audit as audit_q

    with rig.store.read() as s:
        actions = [e.action for e in audit_q.list_events(s, limit=50)]
    assert "job.pause" in actions and "job.resume" in actions


def test_run_now_queues_a_manual_run_that_waits_for_a_running_one(rig: Rig) -> None:
    calls: list[int] = []
    rig.jobs.add_builtin("test.job", lambda: calls.append(1), TriggerSpec.crontab("0 3 * * *"),
                         description="x")
    rig.start()
    row = rig.jobs.run_now("test.job", by=ADMIN)
    assert row.status == "queued" and row.trigger == "manual"
    rig.clock.advance(1)
    assert calls == [1]
    assert rig.jobs.ledger.get(row.id).status == "succeeded"


@pytest.mark.parametrize("job_id", ["../etc", "Train.X", "nodots", "a." + "x" * 70, ""])
def test_bad_job_ids_are_refused(rig: Rig, job_id: str) -> None:
    with pytest.raises(InvalidInput):
        rig.jobs.run_now(job_id, by=ADMIN)


def test_an_unknown_job_is_not_found(rig: Rig) -> None:
    with pytest.raises(NotFound):
        rig.jobs.pause("train.nothing", by=ADMIN)
