"""Scheduled jobs: ledger statuses, job ids, durations, retry backoff, and the typed results
the jobs service answers (``Job``, ``JobRun``, ``JobFile``...). Pure."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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


# -- results (what the jobs service and its routes answer) ---------------------------------


class JobRun(BaseModel):
    """One attempt of a scheduled job in the run ledger (``logs`` only on a single run)."""

    model_config = ConfigDict(frozen=True)

    id: str
    job: str
    trigger: Trigger
    status: JobRunStatus
    attempt: int = Field(description="1 for the first try; retries and recoveries count up")
    idempotency_key: str | None = Field(
        description="``<job>:<dataset>@<version>`` for a new-data run: never a second loop "
                    "for one dataset version")
    scheduled_for: dt.datetime | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    heartbeat_at: dt.datetime | None
    duration_ms: float | None
    error: str | None
    logs: str | None = Field(description="The run's captured log lines; null in lists")
    result: Any = Field(description="What the job reported: a loop's steps, a drift check...")
    retry_of: str | None = Field(description="The run this one retries or recovers")
    # the run's parameters as typed columns (not answered: the API shape predates them)
    dataset: str | None = Field(default=None, exclude=True)
    dataset_version: int | None = Field(default=None, exclude=True)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> JobRun:
        return cls.model_validate({
            **row, "id": str(row["id"]),
            "retry_of": str(row["retry_of"]) if row.get("retry_of") else None})


class JobRunPage(BaseModel):
    """A page of the run ledger, newest first."""

    model_config = ConfigDict(frozen=True)

    items: list[JobRun]
    total: int


class Job(BaseModel):
    """A scheduled job: a built-in one or one of a job file's (``train.<name>``,
    ``drift.<name>``), with its schedule and its newest run."""

    model_config = ConfigDict(frozen=True)

    id: str
    kind: str = Field(description="builtin, train, drift or canary")
    trigger: str = Field(description="When it runs, in words (``every 1h``, ``on new data "
                                     "in customers``, ``manual``)")
    description: str
    source: str | None = Field(description="The job file it comes from")
    paused: bool
    running: bool
    retries: int
    role: str = Field(description="The role needed to run, pause or resume it")
    next_run: str | None
    last_run: JobRun | None


class JobFileError(BaseModel):
    """Why a job file is not scheduled: the message, and the line and field at fault."""

    model_config = ConfigDict(frozen=True)

    message: str
    line: int | None
    field: str | None


class JobFile(BaseModel):
    """One job file in the jobs folder: valid (its jobs) or not (its error)."""

    model_config = ConfigDict(frozen=True)

    path: str
    name: str
    ok: bool
    error: JobFileError | None
    jobs: list[str]


class JobList(BaseModel):
    """Every job, every job file, and the folder they are read from."""

    model_config = ConfigDict(frozen=True)

    items: list[Job]
    files: list[JobFile]
    jobs_dir: str


class JobsReload(BaseModel):
    """What re-reading the jobs folder found."""

    model_config = ConfigDict(frozen=True)

    changed: bool
    files: list[JobFile]


class LoopResult(BaseModel):
    """A continuous-training loop's run result (stored as the job run's ``result``): only
    ``trained`` and ``reason`` when there was nothing to train."""

    model_config = ConfigDict(frozen=True)

    trained: bool
    reason: str | None = None
    dataset_version: int | None = None
    run_id: str | None = None
    model_version: int | None = None
    promoted: bool | None = None
    held_for_approval: bool | None = None
    steps: list[dict[str, Any]] | None = None


class DriftJobResult(BaseModel):
    """A scheduled drift check's result: the drift report (or why it was skipped), then
    the live metrics checked against the job's thresholds (when it has any)."""

    model_config = ConfigDict(frozen=True)

    model: str
    window_hours: float
    drift: dict[str, Any]
    metrics: list[dict[str, Any]] | dict[str, Any] | None = None
