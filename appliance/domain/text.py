"""Bounds on text taken from data: what of a cell may be stored or shown.

A cell can be 50 MB. What the metadata store keeps and the API returns of
it (column summaries' top values and ranges, validation reports' sample
values, refusal messages) is cut to ``MAX_VALUE_CHARS`` characters followed
by ``ELLIPSIS``, so a hostile file cannot bloat the store or a response.
"""

from __future__ import annotations

MAX_VALUE_CHARS = 200
ELLIPSIS = "…"


def clip_text(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` unchanged when it fits in ``limit`` characters, else its start and ``ELLIPSIS``."""
    return text if len(text) <= limit else text[:limit] + ELLIPSIS
