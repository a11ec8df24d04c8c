"""The CSV reader of the parser child: a checked header, one polars read, honest diagnostics.

The header and dialect come from :mod:`appliance.ingest.dialect` (checked
before any parse). The fast path is one multi-threaded polars read, with the
contract's types when there is a contract. Missing-value tokens and ISO
dates follow :mod:`appliance.ingest.cells`: the tokens cost a second read
only for a file that has them (reading every file with ``null_values`` made
the read about 35% slower), found by one cheap select.

The slow diagnostics (DuckDB's strict CSV reader, a row look-up, a Python
scan) run only once something already looks wrong. Field counts in a
ragged-row message are counted by Python's csv module on the very line
DuckDB flagged, with the file's dialect: DuckDB's own count stops one field
past the header's ("Found: 3" for a row of 6).
"""

from __future__ import annotations

import csv
import mmap
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from appliance.domain.ingest import Reason
from appliance.errors import IngestRejected
from appliance.ingest._readers import first_cast_failure, first_line, reject
from appliance.ingest.cells import NULL_TOKENS, has_null_tokens, parse_iso_dates, parse_late_numbers
from appliance.ingest.dialect import Dialect, Header, count_fields, read_header
from appliance.ingest.scratch import scratch_duckdb

if TYPE_CHECKING:  # polars loads in the parser child only, not in the server
    import polars as pl

    from appliance.validate import Frame

F = TypeVar("F", bound="Frame")
_DIAGNOSE_S = 10.0          # at most this long scanning for a ragged row in Python
_POLARS_BAD_VALUE = re.compile(
    r"could not parse `(?P<value>.*?)` as dtype `(?P<dtype>[^`]*)` at column '.*?' "
    r"\(column number (?P<number>\d+)\)", re.S)


def read_csv(path: str, mm: mmap.mmap, skip: int, types: dict[str, pl.DataType] | None, *,
             max_columns: int) -> pl.DataFrame:
    """Read a UTF-8 CSV (already checked) into a frame, or refuse it with a reason."""
    header = read_header(mm, skip, max_columns=max_columns)
    try:
        return _read(path, types, header)
    except IngestRejected as exc:
        refusal = csv_refusal(exc, header)
        if refusal is exc:
            raise
        raise refusal from exc


def csv_refusal(exc: IngestRejected, header: Header) -> IngestRejected:
    """A malformed file's message names the dialect it was read with."""
    if exc.reason != Reason.malformed.value:
        return exc
    return reject(Reason.malformed, f"{exc.message} ({header.dialect.describe()})")


def options(dialect: Dialect) -> dict[str, Any]:
    return {"separator": dialect.delimiter, "quote_char": dialect.quote,
            "decimal_comma": dialect.decimal_comma, "glob": False}


def _read(path: str, types: dict[str, pl.DataType] | None, header: Header) -> pl.DataFrame:
    """Read with the contract's types (no inference); widen inferred columns that drift."""
    import polars as pl

    df, known, widened = typed_read(path, types, header, lambda kw: pl.read_csv(path, **kw))
    names, raw = header.names, header.raw
    if names != raw:
        df = df.rename({r: n for r, n in zip(raw, names, strict=True) if r != n})
    # polars pads short rows with nulls silently; a short row always nulls the last column
    if widened or df.get_column(df.columns[-1]).null_count():
        problem = structure_error(path, header)
        if problem:
            raise reject(Reason.malformed, problem)
    df = parse_late_numbers(df, typed=known, decimal_comma=header.dialect.decimal_comma)
    return parse_iso_dates(df, typed=known)


def typed_read(path: str, types: dict[str, pl.DataType] | None, header: Header,
               load: Callable[[dict[str, Any]], F]) -> tuple[F, dict[str, pl.DataType],
                                                           dict[str, pl.DataType]]:
    """The typing loop shared by the in-memory and the streamed read.

    ``load`` reads the file with polars' CSV options (``pl.read_csv``, or a
    ``scan_csv`` sunk to Parquet) and returns a table. Returns that table, the
    contract's types of its columns and the inferred columns widened on the way.
    """
    import polars as pl

    names, raw = header.names, header.raw
    raw_of = dict(zip(names, raw, strict=True))
    known = {n: types[n] for n in names if n in types} if types else {}
    widened: dict[str, pl.DataType] = {}
    nulls: list[str] | None = None     # the tokens, once the file is known to use them
    opts = options(header.dialect)
    while True:
        try:
            if types is not None and len(known) == len(names):
                df = load({"schema": {raw_of[n]: t for n, t in known.items()},
                           "null_values": nulls, **opts})
            else:
                overrides = {raw_of[n]: t for n, t in {**known, **widened}.items()}
                df = load({"schema_overrides": overrides, "null_values": nulls, **opts})
        except pl.exceptions.NoDataError as exc:
            raise reject(Reason.empty, "the file holds no header and no rows") from exc
        except pl.exceptions.ComputeError as exc:
            bad = _POLARS_BAD_VALUE.search(str(exc))
            number = int(bad["number"]) if bad else 0
            column = names[number - 1] if 0 < number <= len(names) else None
            if bad and nulls is None and bad["value"] in NULL_TOKENS:
                nulls = list(NULL_TOKENS)    # e.g. NA first seen past the inferred rows
                continue
            if bad and column and column not in known and bad["dtype"] != "str" \
                    and widened.get(column) != pl.String:
                # typed from the first rows, then a later value disagreed: widen and re-read
                integer = bad["dtype"].startswith(("i", "u"))
                widened[column] = (pl.Float64() if integer and _is_float(bad["value"])
                                   else pl.String())
                continue
            if bad and column in known:
                located = _locate_bad_value(path, header, column, known[column], nulls)
                if located:
                    raise reject(Reason.malformed, located) from exc
            raise reject(Reason.malformed, structure_error(path, header, thorough=True)
                         or first_line(exc)) from exc
        if nulls is None and has_null_tokens(df):
            nulls = list(NULL_TOKENS)
            continue
        return df, known, widened


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _locate_bad_value(path: str, header: Header, column: str, dtype: pl.DataType,
                      nulls: list[str] | None) -> str | None:
    import polars as pl

    raw = header.raw[header.names.index(column)]
    s = pl.read_csv(path, columns=[raw], infer_schema=False, null_values=nulls,
                    **options(header.dialect)).get_column(raw)
    hit = first_cast_failure(s, dtype)
    if hit is None:
        return None
    row, value = hit
    return (f"column {column!r}, row {row} (line {row + 1}): value {value!r:.80} is not a valid "
            f"{dtype}")


def structure_error(path: str, header: Header, *, thorough: bool = False) -> str | None:
    """The first ragged row or unclosed quote, by line, or None.

    DuckDB's strict reader finds it fast; ``thorough`` (the file already failed
    to parse) adds a Python scan for what DuckDB lets through, such as a
    trailing separator.
    """
    import duckdb

    dialect, ncols = header.dialect, len(header.raw)
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(ncols)) + "}"
    quote = _sql_text(dialect.quote)
    con = scratch_duckdb()
    try:
        con.execute(
            f"SELECT count(*) FROM read_csv($1, header=true, auto_detect=false, "
            f"columns={columns}, delim={_sql_text(dialect.delimiter)}, quote={quote}, "
            f"escape={quote}, strict_mode=true, null_padding=false, store_rejects=true, "
            f"max_line_size=16777216, buffer_size=33554432)", [path]).fetchall()
        row = con.execute(
            "SELECT line, error_type, csv_line FROM reject_errors "
            "WHERE error_type IN ('MISSING COLUMNS', 'TOO MANY COLUMNS', 'UNQUOTED VALUE') "
            "ORDER BY line LIMIT 1").fetchone()
    except duckdb.Error:
        row = None
    finally:
        con.close()
    if row is None:
        return _scan_ragged(path, dialect, ncols) if thorough else None
    line, kind, text = row
    if kind == "UNQUOTED VALUE":
        return f"line {line}: a quoted value is never closed (unclosed quote)"
    return _ragged(int(line), count_fields(str(text), dialect), ncols)


def _ragged(line: int, found: int, ncols: int) -> str:
    return (f"line {line}: ragged row with {found} field{'s' if found != 1 else ''} where the "
            f"header has {ncols}")


def _scan_ragged(path: str, dialect: Dialect, ncols: int) -> str | None:
    deadline = time.monotonic() + _DIAGNOSE_S
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=dialect.delimiter, quotechar=dialect.quote,
                            strict=False)
        try:
            next(reader, None)
            line = reader.line_num + 1     # where the next record starts
            for number, row in enumerate(reader):
                if row and len(row) != ncols:
                    return _ragged(line, len(row), ncols)
                line = reader.line_num + 1
                if number % 10_000 == 0 and time.monotonic() > deadline:
                    return None
        except csv.Error:   # a cell past the field size limit: no count to give
            return None
    return None


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
