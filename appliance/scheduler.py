"""APScheduler lifecycle. Jobs are registered here, explicitly, by name.

A failing job never kills the scheduler: APScheduler catches it, and each
job function also guards itself and logs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self) -> None:
        self._scheduler: Any = None
        self._jobs: list[tuple[str, Callable[[], None], dict[str, Any]]] = []

    def add_interval(self, job_id: str, fn: Callable[[], None], *, minutes: float) -> None:
        self._jobs.append((job_id, _guarded(job_id, fn), {"trigger": "interval",
                                                          "seconds": minutes * 60}))

    def start(self) -> None:
        from apscheduler.schedulers.background import BackgroundScheduler

        self._scheduler = BackgroundScheduler(timezone="UTC")
        for job_id, fn, trigger in self._jobs:
            self._scheduler.add_job(fn, id=job_id, replace_existing=True, coalesce=True,
                                    max_instances=1, **trigger)
        self._scheduler.start()

    def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None

    def jobs(self) -> list[dict[str, Any]]:
        if self._scheduler is None:
            return [{"id": j[0], "next_run": None} for j in self._jobs]
        return [
            {"id": j.id, "next_run": j.next_run_time.isoformat() if j.next_run_time else None}
            for j in self._scheduler.get_jobs()
        ]


def _guarded(job_id: str, fn: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("scheduled job %s failed", job_id)

    return run
