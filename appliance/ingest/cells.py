"""From cell text to values: missing-value tokens, ISO dates, dictionary columns as strings.

Missing values arrive spelled as the tool that wrote the file spells them.
An empty field is null; so is a field that is exactly one of ``NULL_TOKENS``
(R writes ``NA``, Excel ``#N/A``, pandas ``NaN`` or ``<NA>``, others ``null``
or ``None``), in any column, as pandas' and R's readers do. A column of
numbers with ``NA`` in it therefore stays numeric. The price is that a text
column cannot hold the literal string ``NA`` (Namibia's country code), quoted
or not: write it another way, or ingest Parquet. A float ``NaN`` read
from CSV is null too, so that the same file gives the same nulls whichever
spelling it used. In JSON lines, ``null`` is null, and a string that is
exactly a token is null as well; a column whose only strings were tokens
(R's jsonlite writes a numeric ``NA`` as ``"NA"``) then becomes numeric.

Dates: a text column whose values are all ISO 8601 dates (``2024-01-31``)
becomes ``Date``; all ISO date-times (``2024-01-31 12:00``,
``2024-01-31T12:00:00.5``, with or without ``Z`` or an offset) become
``Datetime(us)``, in UTC when they carry an offset. Nothing else is read as
a date: ``01/02/2024`` is January 2nd in one country and February 1st in
another, so it stays text. Later files are read with the contract's dtypes,
so a dataset keeps the dtypes its first file gave it.

Parquet dictionary columns (pandas ``category``, Arrow dictionaries) and
polars ``Categorical``/``Enum`` columns are read as ``String``: the encoding
is a storage detail, and a contract compares dtypes.
"""

from __future__ import annotations

import re
from collections.abc import Container
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # polars loads in the parser child only, not in the server
    import polars as pl

    from appliance.validate import Frame

NULL_TOKENS: tuple[str, ...] = (
    "NA", "N/A", "n/a", "#N/A", "NaN", "nan", "null", "NULL", "None", "<NA>",
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}(?::?\d{2})?)?")


def has_null_tokens(df: Frame) -> bool:
    """True when a text column holds a token or a float column holds NaN (one select)."""
    import polars as pl

    from appliance.validate import ParquetTable

    if isinstance(df, ParquetTable) and df.pieces is not None:
        return df.pieces.null_tokens     # gathered while the table was written
    exprs = []
    for name, dtype in df.schema.items():
        if dtype == pl.String:
            exprs.append(pl.col(name).is_in(NULL_TOKENS).any())
        elif dtype.is_float():
            exprs.append(pl.col(name).is_nan().any())
    return bool(exprs) and any(df.select(exprs).row(0))


def json_null_tokens(df: pl.DataFrame, typed: Container[str]) -> pl.DataFrame:
    """JSON lines: token strings become null; untyped columns of numbers and tokens, numbers."""
    import polars as pl

    strings = [n for n, t in df.schema.items() if t == pl.String]
    if not strings:
        return df
    counts = df.select(pl.col(n).is_in(NULL_TOKENS).sum() for n in strings).row(0)
    fixed = []
    for name, count in zip(strings, counts, strict=True):
        if not count:
            continue
        col = pl.col(name)
        cleaned = df.select(pl.when(col.is_in(NULL_TOKENS)).then(None).otherwise(col)
                            .alias(name)).to_series()
        fixed.append(cleaned if name in typed else _as_numbers(cleaned))
    return df.with_columns(fixed) if fixed else df


def _as_numbers(s: pl.Series) -> pl.Series:
    import polars as pl

    for dtype in (pl.Int64, pl.Float64):
        try:
            return s.cast(dtype, strict=True)
        except pl.exceptions.PolarsError:
            continue
    return s


def parse_iso_dates(df: pl.DataFrame, typed: Container[str]) -> pl.DataFrame:
    """Text columns (not typed by a contract) holding only ISO dates or date-times, as such."""
    import polars as pl

    parsed = []
    for name, dtype in df.schema.items():
        if dtype != pl.String or name in typed or df.height == 0:
            continue
        s = df.get_column(name)
        first = s[0] if s[0] is not None else next(iter(s.drop_nulls().head(1)), None)
        if not isinstance(first, str):
            continue
        try:
            if _ISO_DATE.fullmatch(first):
                parsed.append(s.str.to_date("%Y-%m-%d", strict=True))
            elif _ISO_DATETIME.fullmatch(first):
                parsed.append(s.str.to_datetime(time_unit="us", strict=True))
        except pl.exceptions.PolarsError:
            continue   # not every value is a date: the column stays text
    return df.with_columns(parsed) if parsed else df


INFER_ROWS = 100  # polars types a CSV column from this many leading rows


def parse_late_numbers(df: pl.DataFrame, typed: Container[str], *,
                       decimal_comma: bool = False) -> pl.DataFrame:
    """Text columns (not typed by a contract) that are text only because their first
    ``INFER_ROWS`` values were missing, re-typed as Int64 or Float64 when every value is
    a number. R and Excel exports often start a series late (a ticker listed later, a
    sensor added mid-year); without this the contract would record it as String."""
    import polars as pl

    retyped = []
    window = min(INFER_ROWS, df.height)
    for name, dtype in df.schema.items():
        if dtype != pl.String or name in typed or window == 0:
            continue
        s = df.get_column(name)
        present = s.len() - s.null_count()
        if s.head(window).null_count() < window or present == 0:
            continue
        text = s.str.strip_chars()
        if decimal_comma:
            text = text.str.replace(",", ".", literal=True)
        for target in (pl.Int64, pl.Float64):
            cast = text.cast(target, strict=False)
            if cast.len() - cast.null_count() == present:
                retyped.append(cast.alias(name))
                break
    return df.with_columns(retyped) if retyped else df


def dictionaries_as_strings(df: pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    casts = [pl.col(n).cast(pl.String) for n, t in df.schema.items()
             if isinstance(t, pl.Categorical | pl.Enum)]
    return df.with_columns(casts) if casts else df
