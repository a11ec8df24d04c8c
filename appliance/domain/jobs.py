"""Scheduled jobs: ledger statuses, job ids, durations and retry backoff. Pure."""

from __future__ import annotations

import re
from enum import StrEnum

from appliance.errors import InvalidInput

JOB_ID_PATTERN = re.compile(r"^[a-z0-9_-]{1,64}(\.[a-z0-9_-]{1,64}){1,2}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_INTERVAL_SECONDS = 1.0
MAX_INTERVAL_SECONDS = 366 * 86400.0


class JobRunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    interrupted = "interrupted"  # the process died under it; re-queued once at start
    skipped = "skipped"          # due while its previous run was still going, or paused

    @property
    def finished(self) -> bool:
        return self not in (JobRunStatus.queued, JobRunStatus.running)


class Trigger(StrEnum):
    cron = "cron"
    interval = "interval"
    new_data = "new_data"
    manual = "manual"      # run now, from the API, CLI or console
    retry = "retry"        # a failed run tried again after a backoff
    recovery = "recovery"  # re-queued at start after the process died under it


def check_job_id(job_id: str) -> str:
    """Job ids are dotted names: ``train.churn``, ``drift.churn``, ``housekeeping.checkpoint``."""
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
        raise InvalidInput(f"not a job id: {str(job_id)[:80]!r} (dotted names such as "
                           "train.churn or housekeeping.checkpoint)", detail={"field": "job"})
    return job_id


def parse_duration(text: str | float | int, *, field: str = "every") -> float:
    """``"90s"``, ``"15m"``, ``"6h"``, ``"1d"`` (or a number of seconds) -> seconds."""
    if isinstance(text, bool):
        raise InvalidInput(f"{field}: a duration such as 30m, 6h or 1d", detail={"field": field})
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(str(text))
        if not match:
            raise InvalidInput(f"{field}: {str(text)[:40]!r} is not a duration such as 90s, "
                               "30m, 6h or 1d", detail={"field": field})
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if not MIN_INTERVAL_SECONDS <= seconds <= MAX_INTERVAL_SECONDS:
        raise InvalidInput(f"{field}: a duration between 1s and 366d", detail={"field": field})
    return seconds


def backoff_seconds(attempt: int, *, base: float = 30.0, cap: float = 3600.0) -> float:
    """Delay before retry number ``attempt`` (1, 2, ...): 30 s, 60 s, 120 s ... capped."""
    return float(min(cap, base * (2 ** max(0, attempt - 1))))
