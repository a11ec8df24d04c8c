"""The format readers of the parser child: bytes on disk to a polars frame, or a refusal.

Split out of :mod:`appliance.ingest.parse`, which opens the file and orchestrates.
CSV, JSON lines and Parquet readers, gzip decompression under its cap, the UTF-8
and header checks, and the slow diagnostics (DuckDB's strict CSV reader, bad-value
look-ups, a JSON line scan) that only run once something already looks wrong.
polars and DuckDB are imported inside the functions: only the child loads them.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import mmap
import os
import re
import time
import zlib
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.domain.ingest import Reason
from appliance.errors import IngestRejected

if TYPE_CHECKING:  # polars loads in the parser child only, not in the server
    import polars as pl

_CHUNK = 4 << 20            # UTF-8 scan and gunzip step
_HEADER_MAX = 1 << 20       # the CSV header must fit in the first MiB
_DIAGNOSE_S = 10.0          # at most this long hunting for the bad JSON line
_BOMS = ((b"\xff\xfe", "UTF-16/32 (little-endian)"), (b"\xfe\xff", "UTF-16 (big-endian)"),
         (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"))
_POLARS_BAD_VALUE = re.compile(
    r"could not parse `(?P<value>.*?)` as dtype `(?P<dtype>[^`]*)` at column '.*?' "
    r"\(column number (?P<number>\d+)\)", re.S)


def reject(reason: Reason, message: str) -> IngestRejected:
    return IngestRejected(reason.value, message)


def mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


# -- gzip ------------------------------------------------------------------------------


def gunzip_capped(fd: int, out_path: Path, cap: int) -> None:
    """Stream-decompress a gzip file into ``out_path``, refusing past ``cap`` bytes."""
    with suppress(FileNotFoundError):
        out_path.unlink()
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    total, member = 0, zlib.decompressobj(16 + zlib.MAX_WBITS)

    def emit(piece: bytes) -> None:
        nonlocal total
        total += len(piece)
        if total > cap:
            raise reject(Reason.too_big, "the gzip stream expands past the "
                                         f"{mb(cap)} limit on decompressed data")
        os.write(out, piece)

    try:
        while chunk := os.read(fd, 1 << 20):
            data = chunk
            while data:
                if member.eof:  # another gzip member follows, or zero padding
                    if not data.startswith(b"\x1f\x8b"):
                        if data.strip(b"\x00"):
                            raise reject(Reason.malformed, "trailing bytes after the gzip data")
                        break
                    member = zlib.decompressobj(16 + zlib.MAX_WBITS)
                piece = member.decompress(data, _CHUNK)
                emit(piece)
                # a full output buffer may leave output pending with no input left
                while len(piece) == _CHUNK and not member.unconsumed_tail and not member.eof:
                    piece = member.decompress(b"", _CHUNK)
                    emit(piece)
                data = member.unused_data if member.eof else member.unconsumed_tail
        if not member.eof:
            raise reject(Reason.malformed, "the gzip stream is truncated")
    except zlib.error as exc:
        raise reject(Reason.malformed, f"not a valid gzip stream ({exc})") from exc
    finally:
        os.close(out)


# -- text: encoding, CSV, JSON lines ------------------------------------------------------


def read_text(path: str, fmt: str, types: dict[str, pl.DataType] | None) -> pl.DataFrame:
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise reject(Reason.empty, "the file is empty (0 bytes)")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            skip = _check_utf8(mm)
            if fmt == "jsonl":
                # polars' JSON reader refuses a UTF-8 BOM: hand it the bytes after it
                return _read_jsonl(mm[skip:] if skip else path, types, mm)
            return _read_csv(path, types, _csv_header(mm, skip))


def _check_utf8(mm: mmap.mmap) -> int:
    """Refuse anything but UTF-8 text; return the length of a UTF-8 BOM to skip."""
    for bom, name in _BOMS:
        if mm[: len(bom)] == bom:
            raise reject(Reason.encoding, f"the file is {name} (byte-order mark); save it as UTF-8")
    nul = mm.find(b"\x00")
    if nul >= 0:
        raise reject(Reason.encoding, f"line {_line_at(mm, nul)} holds a NUL byte: UTF-16 "
                                      "text or binary data, not UTF-8")
    skip = 3 if mm[:3] == codecs.BOM_UTF8 else 0
    pos, size = skip, len(mm)
    with memoryview(mm) as view:
        while pos < size:
            end = min(size, pos + _CHUNK)
            try:
                _, used = codecs.utf_8_decode(view[pos:end], "strict", end == size)
            except UnicodeDecodeError as exc:
                bad = pos + exc.start
                raise reject(Reason.encoding, f"line {_line_at(mm, bad)} is not UTF-8 (byte "
                             f"0x{mm[bad]:02X} at offset {bad}); save the file as UTF-8") from exc
            pos += max(used, 1)
    return skip


def _line_at(mm: mmap.mmap, offset: int) -> int:
    return mm[:offset].count(b"\n") + 1


def _csv_header(mm: mmap.mmap, skip: int) -> list[str]:
    head = mm[skip: skip + _HEADER_MAX]
    text = codecs.utf_8_decode(head, "strict", False)[0]
    if not text.strip() and len(mm) - skip <= _HEADER_MAX:
        raise reject(Reason.empty, "the file holds no header and no rows")
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), strict=True), [])
    except csv.Error as exc:
        raise reject(Reason.malformed, f"line 1 (the header) cannot be read: {exc}") from exc
    if not header:
        raise reject(Reason.malformed, "line 1 is blank; expected a header of column names")
    for i, name in enumerate(header, 1):
        if not name.strip():
            raise reject(Reason.malformed, f"column {i} has no name in the header (line 1)")
        if name in header[: i - 1]:
            raise reject(Reason.malformed, f"column name {name!r} appears twice in the header")
    return header


def _read_csv(path: str, types: dict[str, pl.DataType] | None, header: list[str]) -> pl.DataFrame:
    """Read with the contract's types (no inference); widen inferred columns that drift."""
    import polars as pl

    known = {h: types[h] for h in header if h in types} if types else {}
    widened: dict[str, pl.DataType] = {}
    while True:
        try:
            if types is not None and len(known) == len(header):
                df = pl.read_csv(path, schema=known, glob=False)
            else:
                df = pl.read_csv(path, schema_overrides={**known, **widened}, glob=False)
            break
        except pl.exceptions.NoDataError as exc:
            raise reject(Reason.empty, "the file holds no header and no rows") from exc
        except pl.exceptions.ComputeError as exc:
            bad = _POLARS_BAD_VALUE.search(str(exc))
            number = int(bad["number"]) if bad else 0
            column = header[number - 1] if 0 < number <= len(header) else None
            if bad and column and column not in known and bad["dtype"] != "str" \
                    and widened.get(column) != pl.String:
                # typed from the first rows, then a later value disagreed: widen and re-read
                integer = bad["dtype"].startswith(("i", "u"))
                widened[column] = (pl.Float64() if integer and _is_float(bad["value"])
                                   else pl.String())
                continue
            if bad and column in known:
                located = _locate_bad_value(path, column, known[column])
                if located:
                    raise reject(Reason.malformed, located) from exc
            raise reject(Reason.malformed, _csv_structure_error(path, len(header))
                         or _first_line(exc)) from exc
    # polars pads short rows with nulls silently; a short row always nulls the last column
    if widened or df.get_column(df.columns[-1]).null_count():
        problem = _csv_structure_error(path, len(header))
        if problem:
            raise reject(Reason.malformed, problem)
    return df


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _locate_bad_value(path: str, column: str, dtype: pl.DataType) -> str | None:
    import polars as pl

    raw = pl.read_csv(path, columns=[column], infer_schema=False, glob=False).get_column(column)
    hit = _first_cast_failure(raw, dtype)
    if hit is None:
        return None
    row, value = hit
    return (f"column {column!r}, row {row} (line {row + 1}): value {value!r:.80} is not a valid "
            f"{dtype}")


def _first_cast_failure(s: pl.Series, dtype: pl.DataType) -> tuple[int, Any] | None:
    """1-based row and value of the first non-null that does not survive a cast to ``dtype``."""
    import polars as pl

    try:
        cast = s.cast(dtype, strict=False)
    except pl.exceptions.PolarsError:
        return (1, s[0]) if len(s) else None
    bad = cast.is_null() & s.is_not_null()
    if s.dtype.is_float() and dtype.is_integer():
        bad = bad | (s.is_not_null() & (s != s.floor()))   # a cast would truncate 1.5 to 1
    idx = bad.arg_true()
    return (int(idx[0]) + 1, s[int(idx[0])]) if len(idx) else None


def _csv_structure_error(path: str, ncols: int) -> str | None:
    """Ask DuckDB's strict reader for the first ragged row or unclosed quote, by line."""
    import duckdb

    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(ncols)) + "}"
    con = duckdb.connect(":memory:", config={"memory_limit": "256MB", "threads": 1})
    try:
        con.execute(
            f"SELECT count(*) FROM read_csv($1, header=true, auto_detect=false, "
            f"columns={columns}, delim=',', quote='\"', escape='\"', strict_mode=true, "
            f"null_padding=false, store_rejects=true, max_line_size=16777216, "
            f"buffer_size=33554432)", [path]).fetchall()
        row = con.execute(
            "SELECT line, error_type, error_message FROM reject_errors "
            "WHERE error_type IN ('MISSING COLUMNS', 'TOO MANY COLUMNS', 'UNQUOTED VALUE') "
            "ORDER BY line LIMIT 1").fetchone()
    except duckdb.Error:
        return None
    finally:
        con.close()
    if row is None:
        return None
    line, kind, text = row
    if kind == "UNQUOTED VALUE":
        return f"line {line}: a quoted value is never closed (unclosed quote)"
    found = re.search(r"Found: (\d+)", str(text))
    fields = f"{found[1]} field{'s' if found[1] != '1' else ''}" if found else "a different count"
    return f"line {line}: ragged row with {fields} where the header has {ncols}"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _read_jsonl(source: str | bytes, types: dict[str, pl.DataType] | None,
                mm: mmap.mmap) -> pl.DataFrame:
    import polars as pl

    try:
        # the whole file decides the columns: keys first seen late must not vanish
        df = pl.read_ndjson(source, infer_schema_length=None)
    except pl.exceptions.PolarsError as exc:
        raise reject(Reason.malformed, _jsonl_bad_line(mm) or
                     f"not valid JSON lines: {_first_line(exc)}") from exc
    if df.width == 0:
        raise reject(Reason.empty, "the file holds no JSON records")
    casts = []
    for name, dtype in (types or {}).items():
        if name in df.columns and df.schema[name] != dtype:
            hit = _first_cast_failure(df.get_column(name), dtype)
            if hit is not None:
                raise reject(Reason.malformed, f"column {name!r}, line {hit[0]}: value "
                                               f"{hit[1]!r:.80} is not a valid {dtype}")
            casts.append(pl.col(name).cast(dtype))
    return df.with_columns(casts) if casts else df


def _jsonl_bad_line(mm: mmap.mmap) -> str | None:
    deadline, records = time.monotonic() + _DIAGNOSE_S, 0
    mm.seek(0)
    for number, raw in enumerate(iter(mm.readline, b""), 1):
        line = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
        if not line:
            continue
        try:
            value = json.loads(line)
        except (ValueError, RecursionError) as exc:
            return f"line {number}: not valid JSON ({exc})"
        if not isinstance(value, dict):
            return f"line {number}: expected a JSON object, got {type(value).__name__}"
        records += 1
        if time.monotonic() > deadline:
            return None
    if records == 0:
        raise reject(Reason.empty, "the file holds no JSON records")
    return None


# -- Parquet -----------------------------------------------------------------------------


def read_parquet(path: str, cap: int) -> pl.DataFrame:
    import duckdb
    import polars as pl

    con = duckdb.connect(":memory:", config={"memory_limit": "256MB", "threads": 1})
    try:
        size, leaves, rows = con.execute(
            "SELECT sum(total_uncompressed_size), count(DISTINCT path_in_schema), "
            "(SELECT sum(num_rows) FROM parquet_file_metadata($1)) FROM parquet_metadata($1)",
            [path]).fetchone() or (0, 0, 0)
    except duckdb.Error as exc:
        raise reject(Reason.malformed, "not a readable Parquet file: "
                     f"{_first_line(exc).replace(path, 'the file')}") from exc
    finally:
        con.close()
    # Dictionary/RLE pages can decode far past their stored size: bound by rows too.
    estimate = max(int(size or 0), int(rows or 0) * int(leaves or 0) * 8)
    if estimate > cap:
        raise reject(Reason.too_big, f"the Parquet file decodes to about {mb(estimate)}, over "
                                     f"the {mb(cap)} limit")
    try:
        return pl.read_parquet(path, glob=False)
    except pl.exceptions.PolarsError as exc:
        raise reject(Reason.malformed, "not a readable Parquet file: "
                     f"{_first_line(exc).replace(path, 'the file')}") from exc
