"""Row counts of many checks in one polars ``select``, with a few distinct failing values each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from appliance.validate._values import json_safe

SAMPLE_SIZE = 5
_SAMPLE_SCAN_ROWS = 100_000  # distinct samples are drawn from the first failing rows only


@dataclass
class Counted:
    """One check whose failing-row count comes out of the shared select."""

    column: str
    check: str
    fails: pl.Expr             # true where a row fails
    key: tuple[Any, ...]
    samples_wanted: bool = True
    count: int = 0
    samples: list[Any] = field(default_factory=list)


def count_all(df: pl.DataFrame, counted: list[Counted]) -> None:
    """Fill ``count`` for every item in one select, then ``samples`` for those that failed."""
    if not counted:
        return
    sums = df.select(c.fails.sum().alias(str(i)) for i, c in enumerate(counted)).row(0)
    for c, n in zip(counted, sums, strict=True):
        c.count = int(n or 0)
    failing = [c for c in counted if c.count and c.samples_wanted]
    if not failing:
        return
    exprs = []
    for i, c in enumerate(failing):
        bad = pl.col(c.column).filter(c.fails).head(_SAMPLE_SCAN_ROWS)
        exprs.append(bad.unique(maintain_order=True).head(SAMPLE_SIZE).implode().alias(str(i)))
    for c, values in zip(failing, df.select(exprs).row(0), strict=True):
        c.samples = [json_safe(v) for v in values]


def rows_of(n: int, noun: str = "row") -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def of(n: int, total: int, noun: str = "value") -> str:
    """``3 of 200 values``."""
    return f"{n} of {rows_of(total, noun)}" if total != 1 else f"{n} of 1 {noun}"


def percent(fraction: float) -> str:
    if fraction == 0:
        return "0%"
    text = f"{fraction * 100:.1f}".rstrip("0").rstrip(".")
    return f"{text}%" if text != "0" else "<0.1%"


def shown(samples: list[Any], more: bool = False) -> str:
    """``('platinum', 'gold', ...)``, or nothing when there are no samples."""
    if not samples:
        return ""
    text = ", ".join(repr(v) for v in samples)
    return f" ({text}{', ...' if more or len(samples) >= SAMPLE_SIZE else ''})"
