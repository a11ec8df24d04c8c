"""Turning polars/python values into JSON-safe python scalars for reports and summaries."""

from __future__ import annotations

import base64
import datetime as dt
import math
from decimal import Decimal
from typing import Any

from appliance.domain.text import MAX_VALUE_CHARS, clip_text


def json_safe(value: Any) -> Any:
    """Return ``value`` as something ``json.dumps`` accepts without loss of meaning.

    NaN and infinities become ``None`` (JSON has no spelling for them), temporal
    values become ISO strings, decimals and other exotic scalars become strings.
    Text is cut to ``MAX_VALUE_CHARS`` (:mod:`appliance.domain.text`): these
    values go to the metadata store and the API, and a cell can be 50 MB.
    """
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, str):
        return clip_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else None
    if isinstance(value, bytes):
        return clip_text(base64.b64encode(value[: MAX_VALUE_CHARS]).decode("ascii"))
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return json_safe(item())
    return clip_text(str(value))
