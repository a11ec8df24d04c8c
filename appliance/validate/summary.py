"""Per-column summaries for the console: counts, ranges, histograms, top values.

Two ``select`` passes over the frame, however many columns: the first gathers
every scalar statistic, the top values and the histograms; the second redoes
float columns whose statistics NaN or inf spoiled, on their finite values.

A version's Parquet file is summarised from a ``LazyFrame`` (``scan_parquet``)
in bounded memory, whatever its size, with the same figures as for the frame in
memory (tests/validate pins it, with batches and partitions forced tiny):

* counts, nulls, min, max, mean, std and HyperLogLog estimates: streamed
  aggregates, one column at a time (projection pushdown reads only that column);
* histograms: one more pass over the numeric columns in slices of
  ``HISTOGRAM_BATCH_ROWS`` rows, each binned with the column's min and max (see
  ``_histograms``): polars' ``hist`` collects its whole column;
* top values and the exact distinct count of text, categorical and boolean
  columns: a streamed ``group_by`` (``value_counts`` collects its whole column),
  one hash partition at a time past ``TOP_PARTITION_VALUES`` distinct values.

Only the mean and std may differ from the in-memory figures, in their last bits
(summed in another order).

Conventions:

* ``count`` is the number of non-null values, ``nulls`` the number of nulls.
* ``n_unique`` counts distinct non-null values. It is exact up to
  100,000 rows; above that, integer and temporal columns get polars'
  HyperLogLog estimate, and float columns get None: a continuous column's
  distinct count is about its row count and tells a reader nothing, while even
  estimating it for 16 float columns of 1M rows costs a third of the summary.
  Nested and object columns get None.
* Numeric columns (integers, floats, decimals): ``min``, ``max``, ``mean``,
  ``std`` and a 20-bin histogram ``{"edges": [21 floats], "counts": [20
  ints]}`` with equal-width bins ``(e_i, e_i+1]``, the first one closed
  (polars' ``hist``). For float columns these use finite values only: NaN and +/-inf are
  left out. A constant column gets the bins of ``[v - 0.5, v + 0.5]``.
* Strings, categoricals, enums and booleans: the 10 most frequent non-null
  values as ``[{"value": v, "count": n}]``, ties broken by value.
* Dates, datetimes and times: ``min`` and ``max`` as ISO strings.
* Every value is a plain JSON-safe python value: NaN/inf become None, and
  text (a top value, a string minimum or maximum) is cut to 200 characters
  followed by ``…`` (``appliance.domain.text.MAX_VALUE_CHARS``): a summary is
  stored in the metadata store and served by the API, and one cell can be
  50 MB. Two long values that share their first 200 characters show alike.
"""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from appliance.domain.reports import ColumnSummary
from appliance.validate._values import json_safe

HISTOGRAM_BINS = 20
TOP_VALUES = 10
EXACT_UNIQUE_MAX_ROWS = 100_000
TOP_PARTITION_VALUES = 1_000_000
"""Distinct values one streamed ``group_by`` may hold when counting a text column's values
of a ``LazyFrame``; a column with more is counted one hash partition at a time."""
HISTOGRAM_BATCH_ROWS = 1 << 17
"""Rows of a ``LazyFrame``'s numeric columns binned at a time for the histograms."""
"""Distinct values one streamed ``group_by`` may hold when counting a text column's values
of a ``LazyFrame``; a column with more is counted one hash partition at a time."""


def summarize(df: pl.DataFrame | pl.LazyFrame) -> list[ColumnSummary]:
    """One :class:`ColumnSummary` per column of ``df``, in column order.

    A ``LazyFrame`` is summarised a column at a time on the streaming engine
    (bounded memory); a ``DataFrame`` in one select.
    """
    schema = df.collect_schema() if isinstance(df, pl.LazyFrame) else df.schema
    height = (int(df.select(pl.len()).collect(engine="streaming").item())
              if isinstance(df, pl.LazyFrame) else df.height)
    kinds = {name: _kind(dtype) for name, dtype in schema.items()}
    exact = height <= EXACT_UNIQUE_MAX_ROWS
    lazy = isinstance(df, pl.LazyFrame)
    groups = [_column_exprs(f"{i}\x00", pl.col(name), dtype, kinds[name], exact,
                            counts=not lazy)
              for i, (name, dtype) in enumerate(schema.items())]
    stats = _by_column(_select(df, groups))
    for i in range(len(schema)):
        stats.setdefault(i, {})
    if isinstance(df, pl.LazyFrame):
        for i, name in enumerate(schema):
            if kinds[name] == "categorical":
                stats[i].update(_value_counts(df, name, nulls=int(stats[i].get("nulls") or 0)))

    # NaN/inf poison the mean (and inf the range): redo those float columns on finite values.
    redo: list[list[pl.Expr]] = []
    for i, (name, dtype) in enumerate(schema.items()):
        if dtype.is_float() and not _finite(stats[i].get("mean"), stats[i].get("min"), stats[i].get("max")):
            col = pl.col(name)
            redo.append(_numeric_exprs(f"{i}\x00", col.filter(col.is_finite()), bins=not lazy))
    if redo:
        for i, values in _by_column(_select(df, redo)).items():
            stats[i].update(values)
    if isinstance(df, pl.LazyFrame):
        _histograms(df, {i: name for i, name in enumerate(schema) if kinds[name] == "numeric"},
                    stats)

    return [
        _summary(name, dtype, kinds[name], stats[i], height)
        for i, (name, dtype) in enumerate(schema.items())
    ]


def _select(df: pl.DataFrame | pl.LazyFrame, groups: list[list[pl.Expr]]) -> dict[str, Any]:
    """The one-row result of every expression: in one select for a frame in memory, one
    column's group at a time on the streaming engine for a lazy one."""
    if not any(groups):
        return {}
    if isinstance(df, pl.DataFrame):
        return df.select([e for group in groups for e in group]).row(0, named=True)
    row: dict[str, Any] = {}
    for group in groups:
        if group:
            row.update(df.select(group).collect(engine="streaming").row(0, named=True))
    return row


def _value_counts(lf: pl.LazyFrame, name: str, *, nulls: int) -> dict[str, Any]:
    """A text, categorical or boolean column's exact distinct count and top values, from
    a streamed ``group_by``: it holds one count per distinct value, so a column with more
    than ``TOP_PARTITION_VALUES`` of them (HyperLogLog's estimate) is counted one hash
    partition at a time (one more read of the column each), keeping each partition's
    top values. Memory: at most about ``TOP_PARTITION_VALUES`` distinct values, never
    the column. Categoricals and enums are counted as their text, which is what the
    summary shows; ties are broken by value, as text sorts (by code point)."""
    col = pl.col(name)
    if lf.collect_schema()[name] != pl.Boolean:
        col = col.cast(pl.String)
    values = lf.select(col.alias("v")).drop_nulls()
    estimate = int(values.select(pl.col("v").approx_n_unique()).collect(engine="streaming").item())
    parts = max(1, math.ceil(estimate * 1.1 / TOP_PARTITION_VALUES))
    distinct, top = 0, []
    for k in range(parts):
        part = values if parts == 1 else values.filter(pl.col("v").hash() % parts == k)
        counts = part.group_by("v").agg(pl.len().alias("count")).collect(engine="streaming")
        distinct += counts.height
        top += counts.sort(["count", "v"], descending=[True, False]).head(TOP_VALUES).rows()
    top.sort(key=lambda vc: (-vc[1], vc[0]))
    return {"n_unique": distinct + (1 if nulls else 0),   # as polars' n_unique, null included
            "top": [{name: v, "count": c} for v, c in top[:TOP_VALUES]]}


def _kind(dtype: pl.DataType) -> str:
    if dtype.is_integer() or dtype.is_float() or dtype.is_decimal():
        return "numeric"
    if dtype == pl.String or dtype == pl.Categorical or dtype == pl.Boolean or isinstance(dtype, pl.Enum):
        return "categorical"
    if dtype == pl.Date or dtype == pl.Time or isinstance(dtype, pl.Datetime):
        return "temporal"
    if dtype == pl.Null:
        return "null"
    if isinstance(dtype, pl.Duration) or dtype == pl.Binary:
        return "plain"
    return "nested"


def _column_exprs(prefix: str, col: pl.Expr, dtype: pl.DataType, kind: str, exact: bool,
                  *, counts: bool = True) -> list[pl.Expr]:
    """The column's statistics as expressions; ``counts=False`` leaves a text column's
    distinct count and top values out (``_value_counts`` makes them for a lazy frame)."""
    exprs = [col.null_count().alias(prefix + "nulls")]
    if kind == "nested" or (kind == "categorical" and not counts):
        return exprs
    if not exact and dtype.is_float():
        # distinct floats past 100k rows say nothing
        return exprs + _numeric_exprs(prefix, col, bins=counts)
    approximate = not exact and kind in ("numeric", "temporal")
    exprs.append((col.approx_n_unique() if approximate else col.n_unique()).alias(prefix + "n_unique"))
    if kind == "numeric":
        exprs += _numeric_exprs(prefix, col.cast(pl.Float64) if dtype.is_decimal() else col,
                                bins=counts)
    elif kind == "temporal":
        exprs += [col.min().alias(prefix + "min"), col.max().alias(prefix + "max")]
    elif kind == "categorical":
        tally = col.drop_nulls().value_counts(name="count")
        value, count = tally.struct.field(col.meta.output_name()), tally.struct.field("count")
        top = tally.sort_by([count, value], descending=[True, False]).head(TOP_VALUES)
        exprs.append(top.implode().alias(prefix + "top"))
    return exprs


def _numeric_exprs(prefix: str, x: pl.Expr, *, bins: bool = True) -> list[pl.Expr]:
    """Moments and polars' own histogram (its bin edges are ``linspace(min, max, 21)``);
    ``bins=False`` leaves the histogram out (``_histograms`` makes it for a lazy frame)."""
    exprs = [
        x.min().alias(prefix + "min"),
        x.max().alias(prefix + "max"),
        x.mean().alias(prefix + "mean"),
        x.std().alias(prefix + "std"),
    ]
    if bins:
        exprs.append(x.hist(bin_count=HISTOGRAM_BINS, include_breakpoint=True).implode()
                     .alias(prefix + "bins"))
    return exprs


def _histograms(lf: pl.LazyFrame, columns: dict[int, str], stats: dict[int, dict[str, Any]]
                ) -> None:
    """Polars' histogram of each numeric column of a lazy frame, ``HISTOGRAM_BATCH_ROWS`` rows
    at a time (slices of the scan): exactly the whole column's.

    ``hist(bin_count=20)`` places a value by the column's min and max alone, so each
    batch is binned with the column's min and max (known from the first pass) put in
    front of it, and their own two counts taken off again. Floats are binned on their
    finite values, as the summary's statistics are.
    """
    ranges = {i: (stats[i].get("min"), stats[i].get("max")) for i in columns}
    columns = {i: name for i, name in columns.items()
               if None not in ranges[i] and _finite(*ranges[i])}
    if not columns:
        return
    schema = lf.collect_schema()
    exprs = [(pl.col(name).cast(pl.Float64) if schema[name].is_decimal() else pl.col(name))
             .alias(str(i)) for i, name in columns.items()]
    totals: dict[int, list[int]] = {}
    breaks: dict[int, list[float]] = {}
    pads: dict[int, pl.Series] = {}
    pad_counts: dict[int, list[int]] = {}
    height = int(lf.select(pl.len()).collect(engine="streaming").item())
    for start in range(0, height, HISTOGRAM_BATCH_ROWS):
        # a slice of the scan reads only the row groups it covers
        batch = lf.slice(start, HISTOGRAM_BATCH_ROWS).select(exprs).collect(engine="streaming")
        for i in columns:
            values = batch.get_column(str(i)).drop_nulls()
            if values.dtype.is_float():
                values = values.filter(values.is_finite())
            if i not in pads:
                pads[i] = pl.Series(list(ranges[i]), dtype=values.dtype)
                pad = pads[i].hist(bin_count=HISTOGRAM_BINS, include_breakpoint=True)
                breaks[i] = pad.get_column("breakpoint").to_list()
                pad_counts[i] = [int(c) for c in pad.get_column("count")]
                totals[i] = [0] * HISTOGRAM_BINS
            counts = pl.concat([pads[i], values]).hist(bin_count=HISTOGRAM_BINS)
            totals[i] = [t + int(c) - p for t, c, p in zip(
                totals[i], counts.get_column("count"), pad_counts[i], strict=True)]
    for i in totals:
        stats[i]["bins"] = [{"breakpoint": b, "count": c}
                            for b, c in zip(breaks[i], totals[i], strict=True)]


def _finite(*values: Any) -> bool:
    return all(v is None or math.isfinite(v) for v in values)


def _by_column(row: dict[str, Any]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for key, value in row.items():
        index, _, stat = key.partition("\x00")
        out.setdefault(int(index), {})[stat] = value
    return out


def _histogram(stats: dict[str, Any]) -> dict[str, list[float]] | None:
    lo, hi, bins = stats.get("min"), stats.get("max"), stats.get("bins") or []
    if lo is None or hi is None or len(bins) != HISTOGRAM_BINS:
        return None
    lower = float(lo) - 0.5 if lo == hi else float(lo)  # polars widens a constant column too
    edges = [lower] + [float(b["breakpoint"]) for b in bins]
    if not _finite(*edges):
        return None
    return {"edges": edges, "counts": [int(b["count"]) for b in bins]}


def _summary(
    name: str, dtype: pl.DataType, kind: str, stats: dict[str, Any],
    rows: int,
) -> ColumnSummary:
    nulls = int(stats.get("nulls") or 0)
    n_unique = stats.get("n_unique")
    if n_unique is not None:
        n_unique = max(int(n_unique) - (1 if nulls else 0), 0)  # polars counts null as a value
    elif kind == "null":
        n_unique = 0
    summary: dict[str, Any] = {}
    if kind in ("numeric", "temporal"):
        summary["min"] = json_safe(stats.get("min"))
        summary["max"] = json_safe(stats.get("max"))
    if kind == "numeric":
        summary["mean"] = json_safe(stats.get("mean"))
        summary["std"] = json_safe(stats.get("std"))
        summary["histogram"] = _histogram(stats)
    if kind == "categorical":
        summary["top_values"] = [
            {"value": json_safe(entry[name]), "count": int(entry["count"])}
            # the plan may turn sort + head into an unordered top-k: order them here
            for entry in sorted(stats.get("top") or [], key=lambda e: (-e["count"], e[name]))
        ]
    return ColumnSummary(
        name=name, dtype=str(dtype), count=rows - nulls, nulls=nulls, n_unique=n_unique, **summary
    )
