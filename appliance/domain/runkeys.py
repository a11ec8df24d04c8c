"""The rules a run's logged values obey, on both sides of the wire. Pure, and light.

The tracking client (``appliance.tracking``) checks params, metrics and tags with
these before it sends them, and the runs service checks them again when they
arrive; ``appliance.domain.runs`` re-exports them beside the run's types. Kept
apart from those pydantic models so that ``from appliance import ApplianceClient``
imports no pydantic.
"""

from __future__ import annotations

import json
import math
import re

from appliance.errors import InvalidInput

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
