"""APScheduler 3.x lifecycle behind a small interface. Jobs are registered explicitly, by id.

Only the serve process starts a scheduler (DESIGN §2). Every job runs with
``max_instances=1`` and ``coalesce=True`` and an explicit misfire grace: a tick
that comes due while the previous run still goes is *skipped* (reported to
``on_skipped``, never stacked), and ticks missed while the process was busy or
down collapse into one run. A job that raises never kills the scheduler.

The clock is APScheduler's own (``datetime.now``); tests drive it with a
stepped scheduler backend instead of sleeping (see tests/support).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

SkipHook = Callable[[str, str, dt.datetime | None], None]  # (job id, why, slot)


@dataclass(frozen=True)
class TriggerSpec:
    """``cron`` (a 5-field crontab line, UTC) or ``interval`` (seconds)."""

    kind: str
    cron: str | None = None
    seconds: float | None = None

    @classmethod
    def every(cls, seconds: float) -> TriggerSpec:
        return cls("interval", seconds=float(seconds))

    @classmethod
    def crontab(cls, line: str) -> TriggerSpec:
        return cls("cron", cron=line)

    def slot(self, now: dt.datetime) -> dt.datetime:
        """The fire time this trigger last came due at or before ``now``: the slot a tick
        running now stands for. The same on every host (interval ticks fall on a grid from
        the Unix epoch; cron fires on its own), so the job ledger's one row per (job, slot,
        attempt) refuses a second host's tick for the same slot."""
        if self.kind != "cron":
            period = max(1, round(float(self.seconds or 60) * 1_000_000))
            since = (now - _EPOCH) // dt.timedelta(microseconds=1)
            return _EPOCH + dt.timedelta(microseconds=since // period * period)
        from apscheduler.triggers.cron import CronTrigger

        trig = CronTrigger.from_crontab(str(self.cron), timezone="UTC")
        for back in (dt.timedelta(minutes=2), dt.timedelta(hours=2), dt.timedelta(days=2),
                     dt.timedelta(days=63), dt.timedelta(days=800)):
            fire = trig.get_next_fire_time(None, now - back)
            if fire is None or fire > now:
                continue
            while True:  # walk forward to the last fire time not after now
                after = trig.get_next_fire_time(fire, fire + dt.timedelta(seconds=1))
                if after is None or after > now:
                    return fire.astimezone(dt.UTC)
                fire = after
        return now

    def first_fire(self, now: dt.datetime) -> dt.datetime:
        """An interval trigger's first fire: the next grid point after ``now``."""
        period = dt.timedelta(microseconds=max(1, round(float(self.seconds or 60) * 1_000_000)))
        return self.slot(now) + period

    def describe(self) -> str:
        if self.kind == "cron":
            return f"cron {self.cron}"
        seconds = float(self.seconds or 0)
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if seconds >= size and seconds % size == 0:
                return f"every {seconds / size:g}{unit}"
        return f"every {seconds:g}s"


class _RoutineAtDebug(logging.Filter):
    """APScheduler logs every run of every job at INFO ("Running job ...", "... executed
    successfully": ``jobs.reload`` alone makes two lines every 5 s). Those are routine:
    shown as DEBUG, and only when the process logs at debug level. Its warnings and errors
    (a missed or skipped run) pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


_ROUTINE = _RoutineAtDebug()
_ROUTINE_LOGGERS = ("apscheduler.scheduler", "apscheduler.executors.default",
                    "apscheduler.jobstores.default")


class Scheduler:
    def __init__(self, *, backend: Any = None, misfire_grace_seconds: int = 300,
                 workers: int = 4) -> None:
        self._backend_factory = backend
        self.misfire_grace_seconds = misfire_grace_seconds
        self.workers = workers
        self._scheduler: Any = None
        self._jobs: dict[str, tuple[Callable[[], None], TriggerSpec]] = {}
        self._paused: set[str] = set()
        self.on_skipped: SkipHook | None = None

    # -- registration ------------------------------------------------------------

    def add(self, job_id: str, fn: Callable[[], None], trigger: TriggerSpec) -> None:
        """Register (or replace) a recurring job; takes effect at once when running."""
        self._jobs[job_id] = (_guarded(job_id, fn), trigger)
        if self._scheduler is not None:
            self._schedule(job_id)

    def remove(self, job_id: str) -> None:
        self._jobs.pop(job_id, None)
        self._paused.discard(job_id)
        if self._scheduler is not None and self._scheduler.get_job(job_id) is not None:
            self._scheduler.remove_job(job_id)

    def run_once(self, fn: Callable[[], None], *, delay_seconds: float = 0.0,
                 name: str = "once") -> str:
        """Run ``fn`` once, soon (a one-off job with its own id: never skipped as an overlap)."""
        once_id = f"{name}#{uuid.uuid4().hex[:12]}"
        run_date = self._now() + dt.timedelta(seconds=max(0.0, delay_seconds))
        self._backend().add_job(_guarded(name, fn), "date", id=once_id, name=name,
                                run_date=run_date, misfire_grace_time=None)
        return once_id

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        scheduler = self._backend()
        for job_id in self._jobs:
            self._schedule(job_id)
        scheduler.start()

    def stop(self) -> None:
        if self._scheduler is not None:
            try:
                self._scheduler.shutdown(wait=False)
            except Exception:  # already stopped
                log.debug("scheduler shutdown", exc_info=True)
            self._scheduler = None

    def pause(self, job_id: str) -> None:
        self._paused.add(job_id)
        if self._scheduler is not None and self._scheduler.get_job(job_id) is not None:
            self._scheduler.pause_job(job_id)

    def resume(self, job_id: str) -> None:
        self._paused.discard(job_id)
        if self._scheduler is not None and self._scheduler.get_job(job_id) is not None:
            self._scheduler.resume_job(job_id)

    # -- reading -----------------------------------------------------------------

    def slot(self, job_id: str) -> dt.datetime | None:
        """The schedule slot a tick of ``job_id`` running now stands for."""
        entry = self._jobs.get(job_id)
        return entry[1].slot(self._now()) if entry is not None else None

    def next_run(self, job_id: str) -> dt.datetime | None:
        if self._scheduler is None:
            return None
        job = self._scheduler.get_job(job_id)
        return job.next_run_time if job is not None else None

    # -- internals ---------------------------------------------------------------

    def _backend(self) -> Any:
        if self._scheduler is None:
            if self._backend_factory is not None:
                self._scheduler = self._backend_factory()
            else:
                from apscheduler.executors.pool import ThreadPoolExecutor
                from apscheduler.schedulers.background import BackgroundScheduler

                self._scheduler = BackgroundScheduler(
                    timezone="UTC", executors={"default": ThreadPoolExecutor(self.workers)})
            for name in _ROUTINE_LOGGERS:
                if _ROUTINE not in logging.getLogger(name).filters:
                    logging.getLogger(name).addFilter(_ROUTINE)
            from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED

            self._scheduler.add_listener(self._on_event,
                                         EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
        return self._scheduler

    def _now(self) -> dt.datetime:
        from apscheduler.schedulers import base

        now: dt.datetime = base.datetime.now(dt.UTC)
        return now

    def _schedule(self, job_id: str) -> None:
        fn, trigger = self._jobs[job_id]
        scheduler = self._backend()
        if trigger.kind == "cron":
            from apscheduler.triggers.cron import CronTrigger

            trig: Any = CronTrigger.from_crontab(str(trigger.cron), timezone="UTC")
        else:
            from apscheduler.triggers.interval import IntervalTrigger

            seconds = float(trigger.seconds or 60)
            trig = IntervalTrigger(seconds=seconds, timezone="UTC",
                                   start_date=trigger.first_fire(self._now()))
        scheduler.add_job(fn, trig, id=job_id, name=job_id, replace_existing=True,
                          coalesce=True, max_instances=1,
                          misfire_grace_time=self.misfire_grace_seconds)
        if job_id in self._paused:
            scheduler.pause_job(job_id)

    def _on_event(self, event: Any) -> None:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        job_id = str(event.job_id)
        if "#" in job_id or job_id not in self._jobs:
            return
        why = ("its previous run was still going" if event.code == EVENT_JOB_MAX_INSTANCES
               else "it was due longer ago than the misfire grace")
        log.warning("scheduled job %s skipped: %s", job_id, why)
        if self.on_skipped is not None:
            try:
                when = getattr(event, "scheduled_run_time", None)
                self.on_skipped(job_id, why,
                                when.astimezone(dt.UTC) if isinstance(when, dt.datetime)
                                else None)
            except Exception:
                log.exception("recording the skipped run of %s failed", job_id)


def _guarded(job_id: str, fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("scheduled job %s failed", job_id)

    return run
