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
3. while each piece is in memory, on its way to the writer, what the cell
   rules and the contract inference need is gathered from it
   (:class:`appliance.validate._pieces.PieceStats`: null counts, ranges,
   first values, order counts, capped distinct sets, key-row hashes: past
   ``KEY_HASH_CAP`` rows these are spilled beside the staging file and counted
   in partitions), so the written Parquet is not read back for them;
4. the cell rules that look at a whole column (short rows, numbers that start
   late, ISO dates; :mod:`appliance.ingest.cells`) are decided from those
   facts (late numbers and dates confirmed by one aggregate query over the
   Parquet), and the columns they re-type are rewritten in one more streamed
   pass;
5. the contract is inferred from the gathered statistics, or checked: a
   contract's row counts (nullability, built-in checks, the profile's nulls,
   ranges and domains, with their sample values) are taken on each piece on its
   way to the writer as well (:class:`appliance.validate._piececounts.PieceCounts`),
   the duplicate tolerance from the key-row hashes; what is left (a column of
   the wrong dtype, a statistic past a cap or of a re-typed column) is an
   aggregate over the Parquet on the streaming engine
   (:class:`appliance.validate.ParquetTable`).

A Parquet file is sunk the same way (dictionary columns as strings). JSON
lines cannot be streamed with the same inference (the whole file decides
the columns), so one over the threshold is refused as ``too_big`` with that
reason, rather than run out of memory.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from appliance.domain.ingest import Reason
from appliance.errors import IngestRejected
from appliance.ingest._readers import mb, reject
from appliance.ingest.cells import _ISO_DATE, _ISO_DATETIME, INFER_ROWS, NULL_TOKENS
from appliance.ingest.dialect import Header, read_header

if TYPE_CHECKING:  # polars loads in the parser child only, not in the server
    import polars as pl

    from appliance.validate import ParquetTable
    from appliance.validate._pieces import PieceStats

_COMPRESSION: Final = "snappy"
CHUNK_BYTES = 32 << 20      # CSV text parsed at once: about 3x this in memory while parsed


def stream_csv(path: str, mm: mmap.mmap, skip: int, types: dict[str, pl.DataType] | None, *,
               max_columns: int, stage: Path, out: Path,
               spill: Path | None = None, contract_yaml: str | None = None) -> ParquetTable:
    """Read a UTF-8 CSV (already checked) into ``out`` as Parquet, in bounded memory;
    key-row hashes past ``KEY_HASH_CAP`` are spilled under ``spill`` (default: beside
    ``stage``; the caller removes it). With ``contract_yaml`` (the file's types are the
    contract's), its checks are counted on each piece as it is written."""
    from appliance.ingest._csv import csv_refusal

    header = read_header(mm, skip, max_columns=max_columns)
    try:
        return _stream(path, mm, skip, types, header, stage=stage, out=out,
                       spill=stage.parent if spill is None else spill,
                       contract_yaml=contract_yaml)
    except IngestRejected as exc:
        refusal = csv_refusal(exc, header)
        if refusal is exc:
            raise
        raise refusal from exc


def _stream(path: str, mm: mmap.mmap, skip: int, types: dict[str, pl.DataType] | None,
            header: Header, *, stage: Path, out: Path, spill: Path,
            contract_yaml: str | None) -> ParquetTable:

    from appliance.ingest._csv import structure_error, typed_read
    from appliance.validate import ParquetTable
    from appliance.validate._piececounts import contract_counts
    from appliance.validate._pieces import PieceStats

    rename = {r: n for r, n in zip(header.raw, header.names, strict=True) if r != n}

    def load(options: dict[str, Any]) -> ParquetTable:
        # what the cell rules and the contract need, gathered while each piece is in memory
        counts = contract_counts(contract_yaml) if contract_yaml is not None else None
        pieces = PieceStats(tokens=NULL_TOKENS, window=INFER_ROWS, spill=spill, counts=counts)
        _sink_chunks(mm, skip, header, options, rename, stage, pieces)
        return ParquetTable(stage, pieces=pieces)

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


def _sink_chunks(mm: mmap.mmap, skip: int, header: Header, options: dict[str, Any],
                 rename: dict[str, str], stage: Path, pieces: PieceStats) -> None:
    """Parse the CSV ``CHUNK_BYTES`` of text at a time with ``pl.read_csv`` and sink the
    chunks to ``stage`` with polars' streaming Parquet writer; ``pieces`` sees each
    chunk on its way (the statistics the checks need, without reading ``stage`` back).

    The first chunk is read with ``options`` as given (so polars infers the untyped
    columns from the file's first rows, as it does reading the whole file), every
    later one with the first one's schema: a value that does not fit raises the
    error a whole-file read raises, and :func:`typed_read` widens and starts again.
    (polars' own streaming CSV source was measured to hold about half the file:
    a 1.7 GB CSV went past a 1 GB cap.)
    """
    import io

    import polars as pl
    from polars.io.plugins import register_io_source

    end = mm.find(b"\n", skip)
    head = bytes(mm[skip:end + 1]) if end >= 0 else bytes(mm[skip:]) + b"\n"
    options = {k: v for k, v in options.items() if k != "glob"}
    texts = _chunks(mm, len(head) + skip, header.dialect.quote.encode())
    first_text = next(texts, b"")
    first = pl.read_csv(io.BytesIO(head + first_text), **options)
    del first_text
    if "schema" not in options:       # later chunks: the first chunk's types
        options = {k: v for k, v in options.items() if k != "schema_overrides"}
        options["schema"] = first.schema

    def frames(*_: Any) -> Iterator[pl.DataFrame]:
        nonlocal first
        df, first = first, pl.DataFrame()
        df = df.rename(rename) if rename else df
        pieces.add(df)
        yield df
        for text in texts:
            df = pl.read_csv(io.BytesIO(head + text), **options)
            df = df.rename(rename) if rename else df
            pieces.add(df)
            yield df

    schema = first.rename(rename).schema if rename else first.schema
    register_io_source(frames, schema=schema).sink_parquet(
        stage, compression=_COMPRESSION, engine="streaming")


def _chunks(mm: mmap.mmap, start: int, quote: bytes) -> Iterator[bytes]:
    """The text after the header in pieces of about ``CHUNK_BYTES``, each cut after a line
    end outside quotes (an even number of quote characters before it: a doubled quote
    inside a quoted value counts twice)."""
    size = len(mm)
    first = True
    while start < size:
        limit = min(size, start + CHUNK_BYTES)
        block = mm[start:limit]
        # the first chunk holds the rows polars infers types from, as in a whole-file read
        while first and limit < size and block.count(b"\n") <= INFER_ROWS:
            limit = min(size, limit + CHUNK_BYTES)
            block = mm[start:limit]
        first = False
        cut = len(block)
        if limit < size:
            cut = _cut(block, quote)
            while cut == 0 and limit < size:   # no clean line end yet: take more text
                limit = min(size, limit + CHUNK_BYTES)
                block = mm[start:limit]
                cut = len(block) if limit == size else _cut(block, quote)
        yield block[:cut] if cut < len(block) else block
        start += cut


def _cut(block: bytes, quote: bytes) -> int:
    """Just past the last line end of ``block`` outside quotes, or 0 when there is none."""
    parity = block.count(quote) % 2
    pos = len(block)
    while True:
        newline = block.rfind(b"\n", 0, pos)
        if newline < 0:
            return 0
        parity ^= block.count(quote, newline + 1, pos) % 2
        if parity == 0:
            return newline + 1
        pos = newline


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
    """The last column's nulls and, per untyped text column, the nulls among its first
    ``INFER_ROWS`` values, its nulls and its first value (for the cell rules): from what
    was gathered while the table was written, else one streamed pass."""
    import polars as pl

    from appliance.validate._frames import first_values

    rows = table.height
    window = min(INFER_ROWS, rows)
    text = [n for n, t in table.schema.items() if t == pl.String and n not in typed]
    pieces = table.pieces
    if pieces is not None:
        return {"last_nulls": pieces.null_counts[table.columns[-1]], "rows": rows,
                "window": window,
                "text": {name: (pieces.head_nulls[name], pieces.null_counts[name],
                                next(iter(pieces.first_text(name)), None)) for name in text}}
    exprs = [pl.col(table.columns[-1]).null_count().alias("last")]
    exprs += [pl.col(name).null_count().alias(f"n{i}") for i, name in enumerate(text)]
    row = table.select(exprs).row(0, named=True)
    # the streaming engine runs no head inside an aggregate: the first rows on their own
    head = table.lazy().select(text).head(window).collect(engine="streaming")
    firsts = [first_values(table, pl.col(name).drop_nulls(), 1) for name in text]
    return {"last_nulls": int(row["last"] or 0), "rows": rows, "window": window,
            "text": {name: (head.get_column(name).null_count(), int(row[f"n{i}"]),
                            first[0] if first.len() else None)
                     for i, (name, first) in enumerate(zip(text, firsts, strict=True))}}


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
        if table.pieces is not None:     # what was gathered about these columns is stale
            table.pieces.retyped({str(c.meta.output_name()) for c in casts})
    else:
        os.replace(stage, out)
    return ParquetTable(out, pieces=table.pieces)
