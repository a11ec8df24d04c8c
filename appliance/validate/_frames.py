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
from typing import TYPE_CHECKING, Any, Protocol, cast

import polars as pl

from appliance.validate._pieces import hash_of

if TYPE_CHECKING:
    from appliance.validate._pieces import PieceStats

DISTINCT_PARTITION_ROWS = 2_000_000   # at most about this many values in one distinct count


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
    """A Parquet file seen as a :class:`Frame`: every ``select`` is one streamed pass.

    ``pieces``, when given, holds the table's statistics gathered while it was
    written (:class:`appliance.validate._pieces.PieceStats`): the readers that know
    them take them from there instead of reading the file again.
    """

    def __init__(self, path: Path | str, pieces: PieceStats | None = None) -> None:
        self.path = Path(path)
        self.pieces = pieces
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
    return hash_of(columns if columns is not None else list(df.columns))


def distinct_count(df: Frame, expr: pl.Expr) -> int:
    """Exact ``n_unique`` of ``expr`` over ``df``.

    Over a streamed table: when HyperLogLog says the values are few, one streamed
    ``unique``; otherwise the values' hashes are first written to disk split into
    hash partitions of about ``DISTINCT_PARTITION_ROWS`` (one streamed pass), then
    each partition's values are counted on their own, so no step holds more than
    one partition's hash set.
    """
    if not isinstance(df, ParquetTable):
        return int(cast(int, df.select(expr.n_unique()).item()))
    values = df.lazy().select(expr.alias("v"))
    estimate = int(cast(int, values.select(pl.col("v").approx_n_unique())
                        .collect(engine="streaming").item()))
    parts = math.ceil(estimate * 1.1 / DISTINCT_PARTITION_ROWS)
    if parts <= 1:
        return int(values.unique().select(pl.len()).collect(engine="streaming").item())
    import tempfile

    with tempfile.TemporaryDirectory(prefix=".distinct-", dir=df.path.parent) as tmp:
        # values (not their hashes) are compared: only partitions are chosen by hash
        values.with_columns((pl.col("v").hash() % parts).alias("k")).sink_parquet(
            pl.PartitionBy(tmp, key="k", include_key=False), engine="streaming")
        return sum(int(pl.scan_parquet(part).unique().select(pl.len())
                       .collect(engine="streaming").item())
                   for part in sorted(Path(tmp).iterdir()))


def distinct_values(df: Frame, expr: pl.Expr) -> list[Any]:
    """The sorted distinct values of ``expr`` (few, e.g. a categorical column's domain)."""
    return (df.lazy().select(expr.alias("v")).unique().sort("v").collect(engine="streaming")
            .get_column("v").to_list())


def first_values(df: Frame, expr: pl.Expr, n: int) -> pl.Series:
    """The first ``n`` values of ``expr`` (a column, maybe less its nulls), in file order."""
    if not isinstance(df, ParquetTable):
        return df.select(expr.head(n)).to_series()
    return df.lazy().select(expr).head(n).collect(engine="streaming").to_series()


def failing_values(df: Frame, column: str, fails: pl.Expr, n: int) -> pl.Series:
    """The values of ``column`` in the first ``n`` rows where ``fails`` holds."""
    if not isinstance(df, ParquetTable):
        return df.select(pl.col(column).filter(fails).head(n)).to_series()
    return (df.lazy().filter(fails).select(pl.col(column)).head(n)
            .collect(engine="streaming").to_series())


def order_counts(df: Frame, column: str) -> tuple[int, int]:
    """How often ``column``'s non-null values decrease and increase from one to the next,
    in file order. Over a streamed table, one Parquet batch at a time (the streaming
    engine has no ``diff``), carrying the last value across batches."""
    if not isinstance(df, ParquetTable):
        values = pl.col(column).drop_nulls()
        row = df.select((values.diff() < 0).sum(), (values.diff() > 0).sum()).row(0)
        return int(row[0] or 0), int(row[1] or 0)
    import pyarrow.parquet as pq

    down = up = 0
    last: pl.Series | None = None
    with pq.ParquetFile(df.path) as parquet:
        for batch in parquet.iter_batches(batch_size=1 << 20, columns=[column]):
            s = cast(pl.Series, pl.from_arrow(batch.column(0))).drop_nulls()
            if last is not None:
                s = pl.concat([last, s])
            if s.len():
                steps = s.diff().drop_nulls()
                down += int((steps < 0).sum())
                up += int((steps > 0).sum())
                last = s.tail(1)
    return down, up
