"""A controllable clock for APScheduler 3.x: jobs fire when the test steps time, not on sleep.

``SteppedClock`` replaces ``datetime`` in APScheduler's scheduler and executor
modules (the two places it reads the time) and backs a ``BaseScheduler`` that
never starts a timer thread: ``advance`` moves the clock and processes due jobs,
exactly as the background thread would when it woke at that instant.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from apscheduler.executors.debug import DebugExecutor
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.base import BaseScheduler

from appliance.audit import Auditor
from appliance.domain.jobs import JobRun
from appliance.domain.principal import Principal
from appliance.domain.roles import Role
from appliance.events import EventBus
from appliance.jobs.ledger import JobLedger
from appliance.jobs.scheduler import Scheduler
from appliance.jobs.service import JobService
from appliance.store.db import Store

START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class SteppedClock:
    def __init__(self, monkeypatch: Any, start: dt.datetime = START, *,
                 threads: bool = False) -> None:
        self.now_value = start
        self.threads = threads
        self.backend: SteppedBackend | None = None
        clock = self

        class FakeDatetime(dt.datetime):
            @classmethod
            def now(cls, tz: Any = None) -> Any:  # type: ignore[override]
                return clock.now_value.astimezone(tz) if tz else clock.now_value

        import apscheduler.executors.base as executors_base
        import apscheduler.schedulers.base as schedulers_base

        monkeypatch.setattr(schedulers_base, "datetime", FakeDatetime)
        monkeypatch.setattr(executors_base, "datetime", FakeDatetime)

    def now(self) -> dt.datetime:
        return self.now_value

    def factory(self) -> SteppedBackend:
        executor = ThreadPoolExecutor(4) if self.threads else DebugExecutor()
        self.backend = SteppedBackend(timezone="UTC", executors={"default": executor})
        return self.backend

    def advance(self, seconds: float, *, step: float | None = None) -> None:
        """Move time forward in ``step``-second hops, processing due jobs after each."""
        assert self.backend is not None, "start the scheduler first"
        step = step or seconds
        remaining = seconds
        while remaining > 1e-9:
            hop = min(step, remaining)
            self.now_value += dt.timedelta(seconds=hop)
            remaining -= hop
            self.backend.process()


class SteppedBackend(BaseScheduler):
    def wakeup(self) -> None:  # no timer thread: the test calls process()
        pass

    def shutdown(self, wait: bool = True) -> None:
        super().shutdown(wait)

    def process(self) -> None:
        self._process_jobs()


ADMIN = Principal("admin", Role.admin)


class Rig:
    def __init__(self, tmp_path: Path, monkeypatch: Any, *, threads: bool = False) -> None:
        self.tmp_path = tmp_path
        self.clock = SteppedClock(monkeypatch, threads=threads)
        self.store = Store(tmp_path / "db.duckdb", lock_path=tmp_path / "db.lock").open()
        self.events = EventBus()
        self.jobs = self.service()

    def service(self) -> JobService:
        scheduler = Scheduler(backend=self.clock.factory, misfire_grace_seconds=300)
        return JobService(self.store, Auditor(self.store, self.tmp_path / "audit.head"),
                          scheduler, JobLedger(self.store, clock=self.clock.now),
                          jobs_dir=self.tmp_path / "jobs", events=self.events,
                          heartbeat_seconds=3600)

    def start(self) -> None:
        self.jobs.scheduler.start()

    def runs(self, job: str, status: str | None = None) -> list[JobRun]:
        return list(self.jobs.ledger.page(job=job, status=status, limit=5000).items)

    def close(self) -> None:
        self.jobs.close()
        self.jobs.scheduler.stop()
        self.store.close()
