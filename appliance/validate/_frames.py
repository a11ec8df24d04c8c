"""The table a contract runs over: a polars frame in memory, or a Parquet file read in a stream.

Contract checks, contract inference and the duplicate-row counts are
aggregate ``select``s, so they need from a table only its schema, its height
and the result of a ``select`` (a single row). :class:`ParquetTable` gives
those for a Parquet file that is never loaded whole: each ``select`` runs on
polars' streaming engine over ``scan_parquet``, so memory is bounded by the
engine's batches and by what each aggregate keeps (a sum, a few samples, a
categorical domain), not by the file. This is how the parser checks a file
bigger than its memory cap (:mod:`appliance.ingest.stream`).

The one aggregate that grows with the data is an exact count of distinct
values (duplicate rows, an identifier column): :func:`distinct_count`
counts it one hash partition at a time over a streamed table, so the hash
set it holds is at most ``DISTINCT_PARTITION_ROWS`` entries.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Protocol, cast

import polars as pl

DISTINCT_PARTITION_ROWS = 4_000_000   # at most this many hashes in one distinct count


class Frame(Protocol):
    """What the validators read from a table (``pl.DataFrame`` has it all)."""

    @property
    def height(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def schema(self) -> pl.Schema: ...
    @property
    def columns(self) -> list[str]: ...
    def select(self, *exprs: Any) -> pl.DataFrame: ...
    def lazy(self) -> pl.LazyFrame: ...
    def get_column(self, name: str) -> pl.Series: ...


class ParquetTable:
    """A Parquet file seen as a :class:`Frame`: every ``select`` is one streamed pass."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lazy = pl.scan_parquet(self.path, glob=False)
        self._schema = self._lazy.collect_schema()
        self._height: int | None = None

    @property
    def height(self) -> int:
        if self._height is None:
            self._height = int(self._lazy.select(pl.len()).collect().item())
        return self._height

    @property
    def width(self) -> int:
        return len(self._schema)

    @property
    def schema(self) -> pl.Schema:
        return self._schema

    @property
    def columns(self) -> list[str]:
        return list(self._schema.names())

    def select(self, *exprs: Any) -> pl.DataFrame:
        return self._lazy.select(*exprs).collect(engine="streaming")

    def lazy(self) -> pl.LazyFrame:
        return self._lazy

    def get_column(self, name: str) -> pl.Series:
        return self._lazy.select(name).collect(engine="streaming").get_column(name)

    def collect(self) -> pl.DataFrame:
        """The whole table in memory (only for the callers that must, sized first)."""
        return self._lazy.collect(engine="streaming")


def is_streamed(df: Frame) -> bool:
    return isinstance(df, ParquetTable)


def row_hash(df: Frame, columns: list[str] | None = None) -> pl.Expr:
    """One hash per row over ``columns`` (all by default), as an expression."""
    names = columns if columns is not None else list(df.columns)
    return pl.struct([pl.col(n) for n in names]).hash()


def distinct_count(df: Frame, expr: pl.Expr) -> int:
    """Exact ``n_unique`` of ``expr`` over ``df``; over a streamed table, one hash
    partition at a time so no pass holds more than ``DISTINCT_PARTITION_ROWS`` hashes."""
    rows = df.height
    if not is_streamed(df) or rows <= DISTINCT_PARTITION_ROWS:
        return int(cast(int, df.select(expr.n_unique()).item()))
    parts = math.ceil(rows / DISTINCT_PARTITION_ROWS)
    bucket = expr.hash() % parts
    total = 0
    for k in range(parts):
        total += int(cast(int, df.select(expr.filter(bucket == k).n_unique()).item()))
    return total
