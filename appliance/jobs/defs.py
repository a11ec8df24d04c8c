"""What a scheduled job is (``JobDef``) and what a running one gets (``RunContext``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from appliance.domain.jobs import parse_duration
from appliance.domain.roles import Role
from appliance.jobs.scheduler import TriggerSpec

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """What a running job gets: its ledger row, the dataset version it is for (a new-data
    run and its retries) and a heartbeat."""

    run_id: str
    job_id: str
    trigger: str
    attempt: int
    key: str | None
    beat: Callable[[], None]
    dataset: str | None = None
    dataset_version: int | None = None
    note: Callable[[str], None] = lambda message: log.info(message)

    def log(self, message: str) -> None:
        """Record a step in the run's logs (kept whatever the log level) and the log."""
        self.note(message)


@dataclass
class JobDef:
    id: str
    kind: str  # builtin | train | drift | canary
    run: Callable[[RunContext], Any]
    trigger: TriggerSpec | None = None
    new_data: str | None = None  # the dataset whose new versions trigger it
    retries: int = 0
    source: str | None = None
    description: str = ""
    role: Role = Role.operator  # needed to run it by hand, pause or resume it
    lock: threading.Lock = field(default_factory=threading.Lock)

    def describe(self) -> str:
        parts = []
        if self.new_data:
            parts.append(f"on new data in {self.new_data}")
        if self.trigger is not None:
            parts.append(self.trigger.describe())
        return ", ".join(parts) or "manual"


def timing(cron: str | None, every: str | None) -> TriggerSpec | None:
    if cron is not None:
        return TriggerSpec.crontab(cron)
    if every is not None:
        return TriggerSpec.every(parse_duration(every))
    return None


def jsonable(value: Any) -> Any:
    """A job body's result as the ledger stores it (a typed result: the fields it set)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    if value is None or isinstance(value, dict | list | str | int | float | bool):
        return value
    if isinstance(value, BaseModel):  # a service's typed result: stored as its JSON
        return value.model_dump(mode="json")
    return {"value": str(value)}
