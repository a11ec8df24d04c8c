"""The run ledger: one row per attempt of a scheduled job, with its logs and heartbeats.

Statuses (``appliance.domain.jobs.JobRunStatus``): queued -> running ->
succeeded | failed, or interrupted when the process died under it; skipped
rows record ticks that came due while the previous run was still going.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from appliance.domain.jobs import JobRun, JobRunPage, JobRunStatus
from appliance.errors import NotFound
from appliance.store import jobs as q
from appliance.store.db import Store

MAX_LOG_CHARS = 20_000
Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class JobLedger:
    def __init__(self, store: Store, *, clock: Clock = utcnow) -> None:
        self.store = store
        self.clock = clock

    # -- writing -----------------------------------------------------------------

    def queue(self, job: str, trigger: str, *, attempt: int = 1, key: str | None = None,
              retry_of: str | None = None, dataset: str | None = None,
              dataset_version: int | None = None) -> JobRun:
        """A run queued by new data, by hand, a retry or recovery: no schedule slot."""
        with self.store.write() as s:
            return JobRun.from_row(q.insert_run(
                s, job=job, trigger=trigger, status=JobRunStatus.queued.value, attempt=attempt,
                idempotency_key=key, scheduled_for=None, at=self.clock(),
                retry_of=retry_of, dataset=dataset, dataset_version=dataset_version))

    def start(self, job: str, trigger: str, *, slot: dt.datetime | None = None) -> JobRun:
        """A recurring tick's row, running from now, for its schedule ``slot`` (the time it
        was due). A second row for the same job and slot is refused (``Conflict``): another
        host (a deposed leader, or the new one) already has that tick."""
        with self.store.write() as s:
            return JobRun.from_row(q.insert_run(
                s, job=job, trigger=trigger, status=JobRunStatus.running.value, attempt=1,
                idempotency_key=None, scheduled_for=slot or self.clock(), at=self.clock()))

    def skipped(self, job: str, trigger: str, why: str, *, key: str | None = None,
                slot: dt.datetime | None = None) -> JobRun:
        with self.store.write() as s:
            return JobRun.from_row(q.insert_run(
                s, job=job, trigger=trigger, status=JobRunStatus.skipped.value, attempt=1,
                idempotency_key=key, scheduled_for=slot or self.clock(), at=self.clock(),
                error=why))

    def begin(self, run_id: str) -> bool:
        """Claim a queued run; False when it is no longer queued (someone else has it)."""
        with self.store.write() as s:
            return q.mark_running(s, run_id, self.clock())

    def heartbeat(self, run_id: str) -> None:
        with self.store.write() as s:
            q.heartbeat(s, run_id, self.clock())

    def finish(self, run_id: str, status: JobRunStatus, *, duration_ms: float | None,
               error: str | None = None, logs: str | None = None, result: Any = None) -> None:
        with self.store.write() as s:
            q.finish(s, run_id, status=status.value, at=self.clock(), duration_ms=duration_ms,
                     error=error[:4000] if error else None,
                     logs=logs[-MAX_LOG_CHARS:] if logs else None, result=result)

    def interrupt_unfinished(self, *, stale_before: dt.datetime | None = None,
                             keep: frozenset[str] = frozenset()) -> list[JobRun]:
        """Every run a dead process left queued or running becomes interrupted.

        ``stale_before`` (scale-out): only runs whose last sign of life (heartbeat, else
        when queued) is older than that: a run another live host is running keeps
        beating and is never touched. None: all of them (the embedded store, where the
        process lock proves nobody else is running anything). ``keep``: this process's
        own runs, never touched."""
        with self.store.write() as s:
            rows = [r for r in q.runs_in(s, (JobRunStatus.queued.value,
                                             JobRunStatus.running.value))
                    if r["id"] not in keep and (stale_before is None
                                               or _last_sign(r) < stale_before)]
            for row in rows:
                q.finish(s, row["id"], status=JobRunStatus.interrupted.value, at=self.clock(),
                         duration_ms=None, error="the server stopped before this run finished",
                         logs=row["logs"], result=row["result"])
        return [JobRun.from_row(r) for r in rows]

    # -- reading -----------------------------------------------------------------

    def get(self, run_id: str) -> JobRun:
        with self.store.read() as s:
            row = q.get_run(s, run_id)
        if row is None:
            raise NotFound(f"no job run {run_id!r}")
        return JobRun.from_row(row)

    def page(self, *, job: str | None = None, status: str | None = None, limit: int = 100,
             offset: int = 0) -> JobRunPage:
        with self.store.read() as s:
            rows = q.list_runs(s, job=job, status=status, limit=limit, offset=offset)
            total = q.count_runs(s, job=job, status=status)
        return JobRunPage(items=[JobRun.from_row(r) for r in rows], total=total)

    def last_runs(self) -> dict[str, JobRun]:
        with self.store.read() as s:
            return {job: JobRun.from_row(r) for job, r in q.last_runs(s).items()}

    def keyed(self, key: str) -> list[JobRun]:
        with self.store.read() as s:
            return [JobRun.from_row(r) for r in q.keyed_runs(s, key)]

    def queued_for_older_versions(self, job: str, dataset: str, version: int) -> list[JobRun]:
        """Queued runs of ``job`` waiting for a version of ``dataset`` older than ``version``."""
        with self.store.read() as s:
            return [JobRun.from_row(r)
                    for r in q.queued_for_older_versions(s, job, dataset, version)]

    def paused(self) -> set[str]:
        with self.store.read() as s:
            return q.paused_jobs(s)


def _last_sign(row: dict[str, Any]) -> dt.datetime:
    seen: dt.datetime = row["heartbeat_at"] or row["created_at"]
    return seen if seen.tzinfo is not None else seen.replace(tzinfo=dt.UTC)


class LogCapture(logging.Handler):
    """Collects the log records a job's thread emits while it runs (capped)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.thread = threading.get_ident()
        self.lines: list[str] = []
        self.size = 0
        self._last = ""
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread or self.size > MAX_LOG_CHARS * 2:
            return
        if self.lines and record.getMessage() == self._last:
            return  # a note() also passes through the logger: keep it once
        self._last = record.getMessage()
        try:
            line = self.format(record)
        except Exception:
            return
        self.lines.append(line)
        self.size += len(line) + 1

    def note(self, name: str, message: str) -> None:
        """A step the job reports itself: kept whatever the process's log level is."""
        record = logging.LogRecord(name, logging.INFO, "", 0, message, None, None)
        record.thread = self.thread
        self.emit(record)
        logging.getLogger(name).info(message)

    def text(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def captured_logs() -> Iterator[LogCapture]:
    handler = LogCapture()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@contextmanager
def heartbeats(ledger: JobLedger, run_id: str, every_seconds: float) -> Iterator[None]:
    """Touch the run's heartbeat every ``every_seconds`` while the body runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_seconds):
            try:
                ledger.heartbeat(run_id)
            except Exception:
                logging.getLogger(__name__).debug("heartbeat failed", exc_info=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{run_id[:8]}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
