"""The leader lease on a real PostgreSQL, and the fences behind it on both engines: one
ledger row per job and schedule slot (a deposed leader's tick runs nothing), and
recovery that never touches a run whose heartbeat is fresh (another live host's)."""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from appliance.audit import Auditor
from appliance.domain.jobs import JobRunStatus
from appliance.errors import Conflict
from appliance.events import EventBus
from appliance.jobs.ledger import JobLedger
from appliance.jobs.scheduler import Scheduler, TriggerSpec
from appliance.jobs.service import JobService
from appliance.lease import PostgresLease, SoleLease
from appliance.store import jobs as q
from appliance.store.db import Store

RETRY = 0.2


class Host:
    """One host's lease and a record of what it was told (gained, lost)."""

    def __init__(self, url: str) -> None:
        self.calls: list[str] = []
        self.lease = PostgresLease(url, retry_seconds=RETRY)

    def start(self) -> Host:
        self.lease.start(lambda: self.calls.append("gain"), lambda: self.calls.append("lose"))
        return self


@pytest.fixture
def hosts(pg_url: str) -> Iterator[list[Host]]:
    made: list[Host] = []
    yield made
    for h in made:
        h.lease.stop()


def _until(check: Callable[[], bool], timeout: float) -> float:
    """Seconds until ``check()`` held; fails after ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout} s")


@pytest.mark.postgres
def test_two_leases_on_one_database_elect_exactly_one_leader(
        pg_url: str, hosts: list[Host]) -> None:
    hosts += [Host(pg_url).start(), Host(pg_url).start()]
    time.sleep(3 * RETRY)  # the follower has tried a few times meanwhile
    assert [h.lease.leader for h in hosts] == [True, False]
    assert [h.calls for h in hosts] == [["gain"], []]


@pytest.mark.postgres
def test_terminating_the_leaders_session_hands_the_lease_over_within_two_seconds(
        pg_url: str, hosts: list[Host]) -> None:
    import psycopg

    hosts += [Host(pg_url).start(), Host(pg_url).start()]
    leader, follower = hosts
    pid = leader.lease.backend_pid()
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    took = _until(lambda: follower.lease.leader, timeout=2.0)
    _until(lambda: not leader.lease.leader, timeout=2.0)  # the old one stepped down
    assert leader.calls == ["gain", "lose"] and follower.calls == ["gain"]
    assert took < 2.0
    # and the deposed host stays a follower: the lock is the new leader's now
    time.sleep(3 * RETRY)
    assert not leader.lease.leader and follower.lease.leader


@pytest.mark.postgres
def test_a_leader_that_stops_hands_the_lease_to_the_other_host(
        pg_url: str, hosts: list[Host]) -> None:
    hosts += [Host(pg_url).start(), Host(pg_url).start()]
    hosts[0].lease.stop()
    assert _until(lambda: hosts[1].lease.leader, timeout=2.0) < 2.0
    assert hosts[0].calls == ["gain", "lose"]


@pytest.mark.postgres
def test_a_lease_without_a_reachable_database_stays_a_follower_and_keeps_serving() -> None:
    lease = PostgresLease("postgresql+psycopg://nobody@127.0.0.1:1/none", retry_seconds=RETRY)
    gained: list[str] = []
    lease.start(lambda: gained.append("gain"), lambda: None)
    try:
        assert not lease.leader and gained == []
    finally:
        lease.stop()


def test_the_embedded_store_is_always_its_own_leader() -> None:
    lease, gained = SoleLease(), []
    assert lease.leader and not lease.shared
    lease.start(lambda: gained.append(1), lambda: None)
    assert gained == [1]


# -- fencing: one ledger row per job, slot and attempt (both engines) ------------------


def _service(store: Store, tmp_path: Path, name: str, calls: list[str]) -> JobService:
    jobs = JobService(store, Auditor(store, tmp_path / f"{name}.head"), Scheduler(),
                      JobLedger(store), jobs_dir=tmp_path / "jobs", events=EventBus(),
                      heartbeat_seconds=3600)
    jobs.add_builtin("housekeeping.daily", lambda: calls.append(name), TriggerSpec.every(86400),
                     description="a daily tick")
    return jobs


def test_a_second_hosts_tick_for_the_same_slot_is_refused_and_runs_nothing(
        store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    calls: list[str] = []
    new, deposed = _service(store, tmp_path, "new", calls), _service(store, tmp_path, "old", calls)
    new._tick("housekeeping.daily")
    deposed._tick("housekeeping.daily")  # the same daily slot, one host too many
    assert calls == ["new"]
    rows = new.ledger.page(job="housekeeping.daily").items
    assert [r.status for r in rows] == [JobRunStatus.succeeded]
    slot = TriggerSpec.every(86400).slot(dt.datetime.now(dt.UTC))
    assert rows[0].scheduled_for is not None
    assert rows[0].scheduled_for.astimezone(dt.UTC) == slot  # the slot, not the wall clock
    assert "already recorded by another host" in caplog.text


def test_the_ledger_refuses_a_second_row_for_one_job_slot_and_attempt(store: Store) -> None:
    ledger = JobLedger(store)
    slot = dt.datetime(2026, 1, 1, 3, 30, tzinfo=dt.UTC)
    ledger.start("housekeeping.retention", "cron", slot=slot)
    with pytest.raises(Conflict):
        ledger.start("housekeeping.retention", "cron", slot=slot)
    ledger.start("housekeeping.retention", "cron", slot=slot + dt.timedelta(days=1))
    ledger.queue("housekeeping.retention", "manual")  # queued runs have no slot: never refused
    ledger.queue("housekeeping.retention", "manual")
    assert ledger.page(job="housekeeping.retention").total == 4


def test_a_slot_is_the_same_on_every_host_whenever_its_tick_runs() -> None:
    at = dt.datetime(2026, 3, 4, 10, 17, 42, 500_000, tzinfo=dt.UTC)
    assert TriggerSpec.every(60).slot(at) == at.replace(second=0, microsecond=0)
    assert TriggerSpec.every(3600).slot(at) == at.replace(minute=0, second=0, microsecond=0)
    assert TriggerSpec.crontab("30 3 * * *").slot(at) == dt.datetime(2026, 3, 4, 3, 30,
                                                                     tzinfo=dt.UTC)
    assert TriggerSpec.crontab("0 2 1 * *").slot(at) == dt.datetime(2026, 3, 1, 2,
                                                                    tzinfo=dt.UTC)
    assert TriggerSpec.every(60).first_fire(at) == dt.datetime(2026, 3, 4, 10, 18,
                                                               tzinfo=dt.UTC)


# -- recovery: only runs whose heartbeat has expired (both engines) -------------------


def test_recovery_leaves_a_live_hosts_run_with_a_fresh_heartbeat_alone(
        store: Store, tmp_path: Path) -> None:
    calls: list[str] = []
    jobs = _service(store, tmp_path, "leader", calls)
    now = dt.datetime.now(dt.UTC)
    with store.write() as s:
        live = q.insert_run(s, job="housekeeping.daily", trigger="manual", status="running",
                            attempt=1, idempotency_key=None, scheduled_for=None, at=now)
        dead = q.insert_run(s, job="housekeeping.daily", trigger="manual", status="running",
                            attempt=1, idempotency_key=None, scheduled_for=None,
                            at=now - dt.timedelta(minutes=10))
    requeued = jobs.recover(stale_before=now - dt.timedelta(seconds=60))
    assert [r.retry_of for r in requeued] == [dead["id"]]
    assert jobs.ledger.get(live["id"]).status is JobRunStatus.running  # untouched
    assert jobs.ledger.get(dead["id"]).status is JobRunStatus.interrupted
    jobs.close()


def test_recovery_on_the_embedded_store_takes_every_unfinished_run(
        store: Store, tmp_path: Path) -> None:
    jobs = _service(store, tmp_path, "only", [])
    with store.write() as s:
        fresh = q.insert_run(s, job="housekeeping.daily", trigger="manual", status="running",
                             attempt=1, idempotency_key=None, scheduled_for=None,
                             at=dt.datetime.now(dt.UTC))
    jobs.recover()  # no cutoff: the process lock proves nobody else runs anything
    assert jobs.ledger.get(fresh["id"]).status is JobRunStatus.interrupted
    jobs.close()


def test_a_queued_run_claimed_by_one_host_is_not_claimed_by_another(store: Store) -> None:
    ledger = JobLedger(store)
    row = ledger.queue("housekeeping.daily", "manual")
    assert ledger.begin(row.id) is True
    assert ledger.begin(row.id) is False  # already running: the second claim gets nothing


# -- two real `appliance serve` processes on one PostgreSQL -----------------------------


@pytest.mark.slow
@pytest.mark.postgres
def test_killing_the_leader_serve_hands_the_lease_to_the_other_within_seconds(
        pg_server: object, pg_template: str, tmp_path: Path) -> None:
    import signal

    import httpx
    from appliance_test_support import start_server
    from pg_testing import fresh_database

    def leader(url: str) -> bool:
        answer = httpx.get(url + "/healthz", timeout=2)
        assert answer.status_code == 200, answer.text
        return bool(answer.json()["leader"])

    with fresh_database(pg_server, pg_template) as url:  # type: ignore[arg-type]
        env = {"APPLIANCE_STORE_URL": url, "APPLIANCE_LOG_LEVEL": "info"}
        first = start_server(tmp_path / "a" / "home", env=env)
        # the audit anchor is per home (docs/scale-out.md, limits): a new host starts from
        # the first one's, as an operator would copy it
        (tmp_path / "b" / "home").mkdir(parents=True)
        shutil.copy(first.home / "audit.head", tmp_path / "b" / "home" / "audit.head")
        second = start_server(tmp_path / "b" / "home", env=env)
        try:
            assert [leader(first.url), leader(second.url)] == [True, False]
            time.sleep(1.5)  # a few of the follower's tries: it stays a follower
            assert [leader(first.url), leader(second.url)] == [True, False]
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(10)
            killed = time.monotonic()
            took = None
            while time.monotonic() - killed < 10:
                if leader(second.url):  # the survivor answers throughout
                    took = time.monotonic() - killed
                    break
                time.sleep(0.05)
            print(f"leader takeover after kill -9: {took} s")
            assert took is not None, second.log()[-3000:]
            assert took < 5.0
            assert "leader lease taken" in second.log()
            metrics = httpx.get(second.url + "/metrics", timeout=5,
                                headers={"Authorization": f"Bearer {_token(second)}"}).text
            assert "appliance_leader 1.0" in metrics
        finally:
            first.stop(signal.SIGKILL)
            second.stop()


def _token(server: object) -> str:
    client = server.client()  # type: ignore[attr-defined]
    return str(client.token)


def test_a_run_queued_through_a_follower_is_run_once_by_the_leader(
        store: Store, tmp_path: Path) -> None:
    from appliance.domain.principal import Principal
    from appliance.domain.roles import Role

    calls: list[str] = []
    follower = _service(store, tmp_path, "follower", calls)
    follower.leading = lambda: False
    leader = _service(store, tmp_path, "leader", calls)
    leader.scheduler.start()
    try:
        row = follower.run_now("housekeeping.daily", by=Principal("ops", Role.admin))
        time.sleep(0.3)
        assert calls == [] and follower.ledger.get(row.id).status is JobRunStatus.queued
        assert [r.id for r in leader.adopt()] == [row.id]
        _until(lambda: leader.ledger.get(row.id).status is JobRunStatus.succeeded, 10)
        assert leader.adopt() == []  # nothing left to adopt: it ran once
        assert calls == ["leader"]
    finally:
        leader.close()
        leader.scheduler.stop()


def test_a_job_run_in_this_process_by_the_cli_runs_on_a_follower_too(
        store: Store, tmp_path: Path) -> None:
    from appliance.domain.principal import Principal
    from appliance.domain.roles import Role

    calls: list[str] = []
    jobs = _service(store, tmp_path, "cli", calls)
    jobs.leading = lambda: False  # `appliance jobs run` without a server, beside the hosts
    done = jobs.run_here("housekeeping.daily", by=Principal("ops", Role.admin))
    assert done.status is JobRunStatus.succeeded and calls == ["cli"]
    jobs.close()


def test_a_job_paused_through_a_follower_is_not_ticked_by_the_leader(
        store: Store, tmp_path: Path) -> None:
    from appliance.domain.principal import Principal
    from appliance.domain.roles import Role

    calls: list[str] = []
    leader = _service(store, tmp_path, "leader", calls)
    leader.reload()  # the leader read the pauses when it started: none then
    follower = _service(store, tmp_path, "follower", calls)
    follower.leading = lambda: False
    follower.pause("housekeeping.daily", by=Principal("ops", Role.admin))
    leader._tick("housekeeping.daily")  # the leader's scheduler fires as it was told to
    assert calls == []
    assert leader.ledger.page(job="housekeeping.daily").total == 0
    follower.resume("housekeeping.daily", by=Principal("ops", Role.admin))
    leader._tick("housekeeping.daily")
    assert calls == ["leader"]
    leader.close()
    follower.close()
