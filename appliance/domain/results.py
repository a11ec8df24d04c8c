"""Pieces shared by the typed results services return (pydantic, frozen, pure).

``Timestamp`` is a datetime that serialises with ``isoformat()``, the exact text the
API has always answered (``2026-11-27T04:17:31.123456+00:00``), not pydantic's own
``...Z`` form. ``Field(default=None, exclude_if=is_none)`` marks a key that is absent, not
null, while unset (a gate's ``held_because``), as the stored documents and the API
have it.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import PlainSerializer, WithJsonSchema

Timestamp = Annotated[
    dt.datetime,
    PlainSerializer(lambda v: v.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def is_none(value: Any) -> bool:
    return value is None
