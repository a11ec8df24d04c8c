"""Row counts of many checks in one polars ``select``, with a few distinct failing values each."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import polars as pl

from appliance.validate._frames import (
    Frame,
    ParquetTable,
    distinct_count,
    failing_values,
    is_streamed,
    row_hash,
)
from appliance.validate._pieces import key_columns_of
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


def count_all(df: Frame, counted: list[Counted]) -> None:
    """Fill ``count`` for every item in one select, then ``samples`` for those that failed."""
    if not counted:
        return
    pieces = df.pieces if isinstance(df, ParquetTable) else None
    if pieces is not None and pieces.counts is not None and pieces.counts.fill(
            counted, df.schema, pieces.stale):
        return                    # counted piece by piece while the file was written
    sums = df.select(c.fails.sum().alias(str(i)) for i, c in enumerate(counted)).row(0)
    for c, n in zip(counted, sums, strict=True):
        c.count = int(n or 0)
    failing = [c for c in counted if c.count and c.samples_wanted]
    if not failing:
        return
    if is_streamed(df):   # one streamed pass per failing check, stopping at its first rows
        for c in failing:
            found = failing_values(df, c.column, c.fails, _SAMPLE_SCAN_ROWS)
            c.samples = [json_safe(v) for v in found.unique(maintain_order=True).head(SAMPLE_SIZE)]
        return
    exprs = []
    for i, c in enumerate(failing):
        bad = pl.col(c.column).filter(c.fails).head(_SAMPLE_SCAN_ROWS)
        exprs.append(bad.unique(maintain_order=True).head(SAMPLE_SIZE).implode().alias(str(i)))
    for c, values in zip(failing, df.select(exprs).row(0), strict=True):
        c.samples = [json_safe(v) for v in values]


_EXACT_DUPLICATES_UP_TO = 200_000   # rows; larger frames are screened first
_KEY_COLUMNS = 3
_SCREEN_MARGIN = 0.03               # HyperLogLog's error is ~1%: a 3-point margin is ~4 sigma


def duplicate_rows(df: Frame) -> int:
    """How many rows repeat an earlier row exactly (one row hash over every column).

    A cheaper bound comes first: rows equal in every column are equal in a few
    (``_key_columns``), so no duplicate on those means none at all. A streamed
    table counts its distinct row hashes one hash partition at a time.
    """
    if df.height < 2 or df.width == 0:
        return 0
    key = _key_columns(df)
    if isinstance(df, pl.DataFrame):
        if len(key) < df.width and df.select(key).hash_rows().n_unique() == df.height:
            return 0
        return df.height - df.hash_rows().n_unique()
    if len(key) < df.width:
        pieces = df.pieces if isinstance(df, ParquetTable) else None
        known = pieces.key_distinct(key) if pieces is not None else None
        if (known if known is not None else distinct_count(df, row_hash(df, key))) == df.height:
            return 0
    return df.height - distinct_count(df, row_hash(df))


def duplicates_above(df: Frame, limit: float) -> int | None:
    """The exact duplicate-row count if its share may be above ``limit``, else None.

    Large frames are screened on a few columns' row hash with a HyperLogLog
    count (about 10 ms per million rows): only a share that could be within
    ``_SCREEN_MARGIN`` of the limit pays for the exact count over every column.
    """
    rows = df.height
    if rows < 2 or df.width == 0:
        return None
    if rows > _EXACT_DUPLICATES_UP_TO:
        pieces = df.pieces if isinstance(df, ParquetTable) else None
        known = pieces.key_distinct(_key_columns(df)) if pieces is not None else None
        if known is not None:    # counted exactly while written: no margin, no pass
            if (rows - known) / rows <= limit:
                return None
        else:
            if is_streamed(df):
                key_hash = row_hash(df, _key_columns(df))
                estimate = cast(int, df.select(key_hash.approx_n_unique()).item())
            else:
                estimate = cast(int, df.select(_key_columns(df)).hash_rows().approx_n_unique())
            if 1 - estimate / rows <= limit - _SCREEN_MARGIN:
                return None
    duplicates = duplicate_rows(df)
    return duplicates if duplicates / rows > limit else None


def _key_columns(df: Frame) -> list[str]:
    """A few columns likely to tell rows apart: floats, then integers, then the rest."""
    return key_columns_of(df.schema, _KEY_COLUMNS)


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
