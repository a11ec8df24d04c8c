"""Profiling a dataset's first file: the statistics behind an inferred contract.

Everything is computed in one polars ``select`` (plus one for the categories
of the columns found categorical, and one row hash for duplicates). The rules
are in :mod:`appliance.validate.contracts` and docs/concepts/contracts.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import replace
from typing import Any

import polars as pl

from appliance.validate._counting import duplicate_rows
from appliance.validate._frames import (
    Frame,
    ParquetTable,
    distinct_count,
    distinct_values,
    first_values,
    is_streamed,
    order_counts,
)
from appliance.validate._pieces import FIRST_VALUES, PieceStats
from appliance.validate._values import json_safe
from appliance.validate.profile import (
    DUPLICATE_WARN_MARGIN,
    MIN_DOMAIN_MASS,
    NULL_REJECT_MARGIN,
    ColumnProfile,
    FrameProfile,
    ceil_fraction,
    tolerance,
)

DOMAIN_MIN_VALUES = 50        # a domain needs at least this many non-null values ...
DOMAIN_MAX_DISTINCT = 50      # ... at most this many categories ...
DOMAIN_MIN_REPEAT = 2         # ... each seen this many times on average
TEXT_MIN_MEAN_LENGTH = 40     # longer values on average: free text
CATEGORY_MAX_LENGTH = 200     # a category this long is free text (and never copied into a contract)
RANGE_SPANS = 3              # the expected range reaches this many spans beyond the observed one
DATE_LIKE_SHARE = 0.9         # this share of values looking like dates: a date column
_DATE_SAMPLE = FIRST_VALUES   # the first values a text column's date share is taken from

_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:[ap]m|z|[+-]\d{2}:?\d{2})?)?"
DATE_LIKE = (
    r"(?i)^\s*(?:"
    r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}"                      # 2024-01-31, 31/01/2024, 31.01.24
    rf"|\d{{1,2}}[-/ ]{_MONTH}[-/ ,]+\d{{2,4}}"              # 19-Sep-03, 1 March 2024
    rf"|{_MONTH}[-/ ]\d{{1,2}}(?:[-/ ,]+\d{{2,4}})?"         # Jan-1-1995, Sep 19, 2003
    r"|\d{4}-?(?:q[1-4]|m\d{1,2}|w\d{1,2})"                 # 1974Q1, 2020M07, 2021-W05
    r"|\d{4}-\d{2}"                                         # 2024-01
    rf"){_TIME}\s*$"
)
_DATE_RE = re.compile(DATE_LIKE)


def observe(df: Frame) -> tuple[FrameProfile, dict[str, ColumnProfile]]:
    """The profile inference writes into a new contract for ``df``."""
    stats = _statistics(df)
    rows = df.height
    columns: dict[str, ColumnProfile] = {}
    categorical: list[str] = []
    for name, dtype in df.schema.items():
        s = stats[name]
        nulls = int(s["nulls"])
        null_fraction = ceil_fraction(nulls, rows)
        kind = _kind(dtype, s, rows - nulls)
        profile = ColumnProfile(kind=kind, null_fraction=null_fraction,
                                max_null_fraction=tolerance(null_fraction, NULL_REJECT_MARGIN))
        if kind == "categorical":
            categorical.append(name)
        if dtype.is_numeric() and s.get("lo") is not None:
            lo, hi = json_safe(s["lo"]), json_safe(s["hi"])
            profile = replace(
                profile, observed_range=(_short(lo), _short(hi)),
                expected_range=None if s.get("infinite") else expected_range(lo, hi, dtype, kind),
            )
        columns[name] = profile
    values: tuple[Any, ...] = ()
    if categorical and is_streamed(df):
        pieces = df.pieces if isinstance(df, ParquetTable) else None
        values = tuple(_known_domain(pieces, n)
                       or distinct_values(df, _as_string(pl.col(n), df.schema[n]).drop_nulls())
                       for n in categorical)
    elif categorical:
        values = df.select(
            _as_string(pl.col(n), df.schema[n]).drop_nulls().unique().sort().implode()
            for n in categorical
        ).row(0)
    if categorical:
        for name, domain in zip(categorical, values, strict=True):
            columns[name] = replace(columns[name], domain=tuple(domain), min_domain_mass=MIN_DOMAIN_MASS)
    duplicates = ceil_fraction(duplicate_rows(df), rows)
    frame = FrameProfile(rows=rows, duplicate_fraction=duplicates,
                         max_duplicate_fraction=tolerance(duplicates, DUPLICATE_WARN_MARGIN))
    return frame, columns


def _known_domain(pieces: PieceStats | None, name: str) -> list[Any] | None:
    return pieces.domain(name) if pieces is not None else None


def _statistics(df: Frame) -> dict[str, dict[str, Any]]:
    if isinstance(df, ParquetTable) and df.pieces is not None:
        return _piece_statistics(df, df.pieces)
    return _read_statistics(df)


def _read_statistics(df: Frame, only: set[str] | None = None) -> dict[str, dict[str, Any]]:
    """The statistics of ``df``'s columns (or of those in ``only``), read from it."""
    streamed = is_streamed(df)   # the streaming engine runs neither diff nor head in a select
    exprs: list[pl.Expr] = []
    wanted = [i for i, name in enumerate(df.columns) if only is None or name in only]
    for i, (name, dtype) in enumerate(df.schema.items()):
        if i not in wanted:
            continue
        col, key = pl.col(name), f"{i}:"
        nulls = col.null_count()
        if dtype.is_float():
            nulls = nulls + col.is_nan().sum()
            finite = col.filter(col.is_finite())
            exprs += [finite.min().alias(key + "lo"), finite.max().alias(key + "hi"),
                      col.is_infinite().sum().alias(key + "infinite")]
        elif dtype.is_integer():
            exprs += [col.min().alias(key + "lo"), col.max().alias(key + "hi")]
            if not streamed:
                # a column that only grows in file order (a year, a season, a running id)
                exprs += [(col.drop_nulls().diff() < 0).sum().alias(key + "decreases"),
                          (col.drop_nulls().diff() > 0).sum().alias(key + "increases")]
        elif _is_stringlike(dtype):
            text = _as_string(col, dtype).drop_nulls()
            exprs += [
                text.str.len_chars().mean().alias(key + "mean_length"),
                text.str.len_chars().max().alias(key + "max_length"),
            ]
            if not streamed:
                exprs += [
                    text.n_unique().alias(key + "distinct"),
                    text.head(_DATE_SAMPLE).str.contains(DATE_LIKE).mean().alias(key + "date_like"),
                ]
        exprs.append(nulls.alias(key + "nulls"))
    row = df.select(exprs).row(0, named=True) if exprs else {}
    by_index: dict[int, dict[str, Any]] = {i: {} for i in wanted}
    for key, value in row.items():
        index, _, stat = key.partition(":")
        by_index[int(index)][stat] = value
    if streamed:
        _streamed_statistics(df, by_index)
    return {name: by_index[i] for i, name in enumerate(df.columns) if i in by_index}


def _piece_statistics(df: ParquetTable, pieces: PieceStats) -> dict[str, dict[str, Any]]:
    """The statistics of a streamed table from what was gathered while it was written; a
    distinct count past the gathered cap is counted over the file."""
    out: dict[str, dict[str, Any]] = {}
    stale = pieces.stale & set(df.columns)       # re-typed after they were gathered
    read = _read_statistics(df, only=stale) if stale else {}
    for name, dtype in df.schema.items():
        if name in stale:
            out[name] = read[name]
            continue
        stats = pieces.statistic(name, dtype)
        if _is_stringlike(dtype):
            if "distinct" not in stats:
                stats["distinct"] = distinct_count(df, _as_string(pl.col(name), dtype).drop_nulls())
            stats["date_like"] = pl.Series(pieces.first_text(name)[:_DATE_SAMPLE],
                                           dtype=pl.String).str.contains(DATE_LIKE).mean()
        out[name] = stats
    return out


def _streamed_statistics(df: Frame, by_index: dict[int, dict[str, Any]]) -> None:
    """The order- and set-based statistics of a streamed table, each in bounded memory."""
    for i, (name, dtype) in enumerate(df.schema.items()):
        if i not in by_index:
            continue
        stats = by_index[i]
        if dtype.is_integer():
            stats["decreases"], stats["increases"] = order_counts(df, name)
        elif _is_stringlike(dtype):
            text = _as_string(pl.col(name), dtype).drop_nulls()
            stats["distinct"] = distinct_count(df, text)
            stats["date_like"] = first_values(df, text, _DATE_SAMPLE).str.contains(
                DATE_LIKE).mean()


def _kind(dtype: pl.DataType, s: dict[str, Any], non_null: int) -> str:
    if dtype.is_integer():
        grows = s.get("decreases") == 0 and (s.get("increases") or 0) >= 2
        return "sequence" if grows else "numeric"
    if dtype.is_float():
        return "numeric"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype in (pl.Date, pl.Datetime):
        return "date"
    if not _is_stringlike(dtype) or non_null == 0:
        return "other" if not _is_stringlike(dtype) else "string"
    distinct = int(s["distinct"])
    if (s.get("date_like") or 0) >= DATE_LIKE_SHARE:
        return "date"
    if (s.get("mean_length") or 0) > TEXT_MIN_MEAN_LENGTH \
            or (s.get("max_length") or 0) > CATEGORY_MAX_LENGTH:
        return "text"
    if (
        non_null >= DOMAIN_MIN_VALUES and distinct <= DOMAIN_MAX_DISTINCT
        and distinct * DOMAIN_MIN_REPEAT <= non_null
    ):
        return "categorical"
    return "identifier" if distinct == non_null and non_null > 1 else "string"


def expected_range(lo: Any, hi: Any, dtype: pl.DataType, kind: str) -> tuple[Any, Any]:
    """The soft range: the observed one widened by three spans; no upper bound for a sequence.

    ``span = max - min`` (or ``abs(max)``, or 1, when that is zero), ``reach =
    RANGE_SPANS * span``; ``lower = 0`` if ``min >= 0`` else ``min - reach``;
    ``upper = max + reach``. Bounds are rounded outward to three significant
    digits of the reach and clamped to an integer dtype's limits.
    """
    span = ((hi - lo) or abs(hi) or 1) * RANGE_SPANS
    lower = 0 if lo >= 0 else lo - span
    upper = hi + span
    exponent = math.floor(math.log10(span)) - 2   # -52.637361 -> -53
    if dtype.is_integer():
        if exponent > 0:
            step = 10**exponent
            lower, upper = (int(lower) // step) * step, -(-int(upper) // step) * step
        dmin, dmax = _integer_limits(dtype)
        bounds: tuple[Any, Any] = (max(int(lower), dmin), min(int(upper), dmax))
    else:
        step = 10.0**exponent
        digits = max(-exponent, 0)
        flo = round(math.floor(lower / step) * step, digits) if lower else 0.0
        fhi = round(math.ceil(upper / step) * step, digits)
        bounds = (float(flo), float(fhi))
    return (bounds[0], None) if kind == "sequence" else bounds


def _short(value: Any) -> Any:
    """Six significant digits for the (informational) observed range of a float column."""
    return float(f"{value:.6g}") if isinstance(value, float) else value


def _integer_limits(dtype: pl.DataType) -> tuple[int, int]:
    name = str(dtype)
    if name.startswith("UInt"):
        return 0, 2 ** int(name[4:]) - 1
    bits = int(name[3:])
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _is_stringlike(dtype: pl.DataType) -> bool:
    return dtype == pl.String or dtype == pl.Categorical or isinstance(dtype, pl.Enum)


def _as_string(col: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    return col if dtype == pl.String else col.cast(pl.String)


def looks_like_date(value: str) -> bool:
    """Whether one value matches the date patterns inference uses (for tests and docs)."""
    return bool(_DATE_RE.match(value))
