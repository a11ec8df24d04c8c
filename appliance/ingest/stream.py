"""Streaming ingestion: a file bigger than the parser's memory, to Parquet in bounded memory.

The in-memory path (:mod:`appliance.ingest._csv`, ``read_parquet``) holds the
whole table, about twice the CSV's size at its peak. A file over the streaming
threshold (:meth:`ParseLimits.stream_from`: a quarter of
``APPLIANCE_PARSE_MEMORY_MB`` unless ``APPLIANCE_PARSE_STREAM_ABOVE_MB`` says
otherwise) takes this path instead, with the same outcome:

1. the header and dialect are read and checked as for any CSV (a sample);
2. polars' ``scan_csv`` with the same options is sunk to a staging Parquet file
   on the streaming engine, inside the same typing loop as the in-memory read
   (:func:`appliance.ingest._csv.typed_read`: a contract's types, or inferred
   types widened when a later value disagrees, and the missing-value tokens
   once the file is seen to use them);
3. the cell rules that look at a whole column (short rows, numbers that start
   late, ISO dates; :mod:`appliance.ingest.cells`) are aggregate queries over
   that Parquet, and the columns they re-type are rewritten in one more
   streamed pass;
4. the contract is inferred or checked over the Parquet
   (:class:`appliance.validate.ParquetTable`: every check is an aggregate on
   the streaming engine).

A Parquet file is sunk the same way (dictionary columns as strings). JSON
lines cannot be streamed with the same inference (the whole file decides
the columns), so one over the threshold is refused as ``too_big`` with that
reason, rather than run out of memory.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from appliance.domain.ingest import Reason
from appliance.errors import IngestRejected
from appliance.ingest._readers import mb, reject
from appliance.ingest.cells import _ISO_DATE, _ISO_DATETIME, INFER_ROWS
from appliance.ingest.dialect import read_header

if TYPE_CHECKING:  # polars loads in the parser child only, not in the server
    import polars as pl

    from appliance.validate import ParquetTable

_COMPRESSION: Final = "snappy"


def stream_csv(path: str, mm: mmap.mmap, skip: int, types: dict[str, pl.DataType] | None, *,
               max_columns: int, stage: Path, out: Path) -> ParquetTable:
    """Read a UTF-8 CSV (already checked) into ``out`` as Parquet, in bounded memory."""
    from appliance.ingest._csv import csv_refusal

    header = read_header(mm, skip, max_columns=max_columns)
    try:
        return _stream(path, types, header, stage=stage, out=out)
    except IngestRejected as exc:
        refusal = csv_refusal(exc, header)
        if refusal is exc:
            raise
        raise refusal from exc


def _stream(path: str, types: dict[str, pl.DataType] | None, header: Any, *, stage: Path,
            out: Path) -> ParquetTable:
    import polars as pl

    from appliance.ingest._csv import structure_error, typed_read
    from appliance.validate import ParquetTable

    rename = {r: n for r, n in zip(header.raw, header.names, strict=True) if r != n}

    def load(options: dict[str, Any]) -> ParquetTable:
        lazy = pl.scan_csv(path, **options)
        if rename:
            lazy = lazy.rename(rename)
        lazy.sink_parquet(stage, compression=_COMPRESSION, engine="streaming")
        return ParquetTable(stage)

    table, known, widened = typed_read(path, types, header, load)
    facts = _column_facts(table, known)
    # polars pads short rows with nulls silently; a short row always nulls the last column
    if widened or facts["last_nulls"]:
        problem = structure_error(path, header)
        if problem:
            raise reject(Reason.malformed, problem)
    casts = _late_number_casts(table, facts, decimal_comma=header.dialect.decimal_comma)
    casts += _iso_date_casts(table, facts, retyped={str(c.meta.output_name()) for c in casts})
    return _settle(table, casts, stage=stage, out=out)


def stream_parquet(path: str, *, stage: Path, out: Path) -> ParquetTable:
    """Copy a (checked) Parquet file to ``out`` in batches, dictionary columns as strings."""
    import polars as pl

    from appliance.ingest._readers import first_line
    from appliance.validate import ParquetTable

    try:
        lazy = pl.scan_parquet(path, glob=False)
        schema = lazy.collect_schema()
        casts = [pl.col(n).cast(pl.String) for n, t in schema.items()
                 if isinstance(t, pl.Categorical | pl.Enum)]
        (lazy.with_columns(casts) if casts else lazy).sink_parquet(
            out, compression=_COMPRESSION, engine="streaming")
    except pl.exceptions.PolarsError as exc:
        raise reject(Reason.malformed, "not a readable Parquet file: "
                     f"{first_line(exc).replace(path, 'the file')}") from exc
    del stage
    return ParquetTable(out)


def refuse_whole_file_format(fmt: str, size: int, threshold: int) -> IngestRejected:
    return reject(Reason.too_big, f"the {fmt} file is {mb(size)}: JSON lines are read whole (the "
                  "whole file decides the columns), and over "
                  f"{mb(threshold)} that may pass the parser's memory cap "
                  "(APPLIANCE_PARSE_MEMORY_MB); split it, convert it to CSV or Parquet, "
                  "or raise the cap")


# -- the cell rules, as aggregates -----------------------------------------------------


def _column_facts(table: ParquetTable, typed: dict[str, Any]) -> dict[str, Any]:
    """One streamed pass: the last column's nulls and, per untyped text column, the nulls
    among its first ``INFER_ROWS`` values and its first value (for the cell rules)."""
    import polars as pl

    rows = table.height
    window = min(INFER_ROWS, rows)
    text = [n for n, t in table.schema.items() if t == pl.String and n not in typed]
    exprs = [pl.col(table.columns[-1]).null_count().alias("last")]
    for i, name in enumerate(text):
        col = pl.col(name)
        exprs += [col.head(window).null_count().alias(f"h{i}"), col.null_count().alias(f"n{i}"),
                  col.drop_nulls().first().alias(f"f{i}")]
    row = table.select(exprs).row(0, named=True)
    return {"last_nulls": int(row["last"] or 0), "rows": rows, "window": window,
            "text": {name: (int(row[f"h{i}"]), int(row[f"n{i}"]), row[f"f{i}"])
                     for i, name in enumerate(text)}}


def _late_number_casts(table: ParquetTable, facts: dict[str, Any], *,
                       decimal_comma: bool) -> list[pl.Expr]:
    """``cells.parse_late_numbers`` over a streamed table: the same rule, as casts."""
    import polars as pl

    window = facts["window"]
    late = [n for n, (head_nulls, nulls, _) in facts["text"].items()
            if window and head_nulls >= window and facts["rows"] - nulls > 0]
    if not late:
        return []

    def numbers(name: str, target: pl.DataType) -> pl.Expr:
        text = pl.col(name).str.strip_chars()
        if decimal_comma:
            text = text.str.replace(",", ".", literal=True)
        return text.cast(target, strict=False)

    targets = (pl.Int64(), pl.Float64())
    row = table.select(numbers(n, t).null_count().alias(f"{i}:{j}")
                       for i, n in enumerate(late) for j, t in enumerate(targets)).row(0)
    casts = []
    for i, name in enumerate(late):
        nulls = facts["text"][name][1]
        for j, target in enumerate(targets):
            if row[i * len(targets) + j] == nulls:    # every present value is a number
                casts.append(numbers(name, target).alias(name))
                break
    return casts


def _iso_date_casts(table: ParquetTable, facts: dict[str, Any],
                    retyped: set[str]) -> list[pl.Expr]:
    """``cells.parse_iso_dates`` over a streamed table: a column whose first value is an
    ISO date (date-time) becomes one when every value parses."""
    import polars as pl

    candidates: list[tuple[str, pl.Expr]] = []
    for name, (_, _, first) in facts["text"].items():
        if name in retyped or not isinstance(first, str) or not facts["rows"]:
            continue
        col = pl.col(name)
        if _ISO_DATE.fullmatch(first):
            candidates.append((name, col.str.to_date("%Y-%m-%d", strict=False)))
        elif _ISO_DATETIME.fullmatch(first):
            # polars infers an offset's zone from one value on a Series only: ask it so
            try:
                zone = getattr(pl.Series([first]).str.to_datetime(time_unit="us").dtype,
                               "time_zone", None)
            except pl.exceptions.PolarsError:
                continue
            candidates.append((name, col.str.to_datetime(time_unit="us", time_zone=zone,
                                                         strict=False)))
    if not candidates:
        return []
    try:
        row = table.select(parsed.null_count().alias(str(i))
                           for i, (_, parsed) in enumerate(candidates)).row(0)
    except pl.exceptions.PolarsError:
        return []
    return [parsed.alias(name) for (name, parsed), nulls in zip(candidates, row, strict=True)
            if nulls == facts["text"][name][1]]


def _settle(table: ParquetTable, casts: list[pl.Expr], *, stage: Path,
            out: Path) -> ParquetTable:
    from appliance.validate import ParquetTable

    if casts:
        table.lazy().with_columns(casts).sink_parquet(
            out, compression=_COMPRESSION, engine="streaming")
        stage.unlink()
    else:
        os.replace(stage, out)
    return ParquetTable(out)
