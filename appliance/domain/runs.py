"""Runs: an explicit status state machine, and the rules for logged values."""

from __future__ import annotations

import json
import math
import re
from enum import StrEnum

from appliance.errors import Conflict, InvalidInput


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    interrupted = "interrupted"  # the process died under it; re-queued once at start

    @property
    def finished(self) -> bool:
        return self in (RunStatus.succeeded, RunStatus.failed, RunStatus.interrupted)


class RunKind(StrEnum):
    train = "train"        # a job file run by the appliance
    trial = "trial"        # one candidate of a job's search (a child run)
    external = "external"  # logged by a notebook or script through the client


_ALLOWED: dict[RunStatus, set[RunStatus]] = {
    RunStatus.queued: {RunStatus.running, RunStatus.failed, RunStatus.interrupted},
    RunStatus.running: {RunStatus.succeeded, RunStatus.failed, RunStatus.interrupted},
    RunStatus.interrupted: {RunStatus.queued},
    RunStatus.succeeded: set(),
    RunStatus.failed: set(),
}


def check_transition(old: RunStatus | str, new: RunStatus | str) -> RunStatus:
    old, new = RunStatus(old), RunStatus(new)
    if new not in _ALLOWED[old]:
        raise Conflict(
            f"a run cannot go from {old.value} to {new.value}",
            detail={"from": old.value, "to": new.value,
                    "allowed": sorted(s.value for s in _ALLOWED[old])},
        )
    return new


KEY = re.compile(r"[A-Za-z0-9_.\-/ ]{1,250}")
MAX_PARAM_VALUE = 6000
MAX_BATCH = 10_000


def check_key(kind: str, key: object) -> str:
    if not isinstance(key, str) or not KEY.fullmatch(key):
        raise InvalidInput(
            f"invalid {kind} key {key!r}: 1-250 of letters, digits, '_', '-', '.', '/', ' '",
            detail={"field": kind, "key": str(key)[:100]},
        )
    return key


def check_metric_value(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(f"metric {key!r} must be a number, got {type(value).__name__}",
                           detail={"key": key})
    v = float(value)
    if not math.isfinite(v):
        raise InvalidInput(f"metric {key!r} must be finite, got {value!r}", detail={"key": key})
    return v


def check_param_value(key: str, value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > MAX_PARAM_VALUE:
        raise InvalidInput(f"param {key!r} is longer than {MAX_PARAM_VALUE} characters",
                           detail={"key": key})
    return text
