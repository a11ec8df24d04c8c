"""The format readers of the parser child: bytes on disk to a polars frame, or a refusal.

Split out of :mod:`appliance.ingest.parse`, which opens the file and orchestrates.
Gzip decompression under its cap, the UTF-8 check, the JSON lines and Parquet
readers and the helpers the CSV reader (:mod:`appliance.ingest._csv`) shares.
The slow diagnostics (a JSON line scan) only run once something already looks
wrong. polars and DuckDB are imported inside the functions: only the child
loads them.
"""

from __future__ import annotations

import codecs
import json
import mmap
import os
import time
import zlib
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.domain.ingest import Reason
from appliance.errors import IngestRejected
from appliance.ingest.scratch import scratch_duckdb

if TYPE_CHECKING:  # polars loads in the parser child only, not in the server
    import polars as pl

_CHUNK = 4 << 20            # UTF-8 scan and gunzip step
_DIAGNOSE_S = 10.0          # at most this long hunting for the bad JSON line
_UTF8_ONLY = ("save the file as UTF-8 (encodings tried: UTF-8, with or without a BOM; "
              "in Excel choose \"CSV UTF-8\")")
_BOMS = ((b"\xff\xfe", "UTF-16/32 (little-endian)"), (b"\xfe\xff", "UTF-16 (big-endian)"),
         (b"\x00\x00\xfe\xff", "UTF-32 (big-endian)"))


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


# -- text: encoding, JSON lines ----------------------------------------------------------


def check_utf8(mm: mmap.mmap) -> int:
    """Refuse anything but UTF-8 text; return the length of a UTF-8 BOM to skip."""
    for bom, name in _BOMS:
        if mm[: len(bom)] == bom:
            raise reject(Reason.encoding, f"the file is {name} (byte-order mark); {_UTF8_ONLY}")
    nul = mm.find(b"\x00")
    if nul >= 0:
        raise reject(Reason.encoding, f"line {_line_at(mm, nul)} holds a NUL byte: UTF-16 "
                                      f"text or binary data, not UTF-8; {_UTF8_ONLY}")
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
                             f"0x{mm[bad]:02X} at offset {bad}); {_UTF8_ONLY}") from exc
            pos += max(used, 1)
    return skip


def _line_at(mm: mmap.mmap, offset: int) -> int:
    return mm[:offset].count(b"\n") + 1


def first_cast_failure(s: pl.Series, dtype: pl.DataType) -> tuple[int, Any] | None:
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


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def read_jsonl(source: str | bytes, types: dict[str, pl.DataType] | None,
               mm: mmap.mmap, *, max_columns: int) -> pl.DataFrame:
    import polars as pl

    from appliance.ingest.cells import json_null_tokens, parse_iso_dates

    try:
        # the whole file decides the columns: keys first seen late must not vanish
        df = pl.read_ndjson(source, infer_schema_length=None)
    except pl.exceptions.PolarsError as exc:
        raise reject(Reason.malformed, _jsonl_bad_line(mm) or
                     f"not valid JSON lines: {first_line(exc)}") from exc
    if df.width == 0:
        raise reject(Reason.empty, "the file holds no JSON records")
    check_width(df.width, max_columns)
    typed = set(types or ())
    df = json_null_tokens(df, typed)
    casts = []
    for name, dtype in (types or {}).items():
        if name in df.columns and df.schema[name] != dtype:
            hit = first_cast_failure(df.get_column(name), dtype)
            if hit is not None:
                raise reject(Reason.malformed, f"column {name!r}, line {hit[0]}: value "
                                               f"{hit[1]!r:.80} is not a valid {dtype}")
            casts.append(pl.col(name).cast(dtype))
    return parse_iso_dates(df.with_columns(casts) if casts else df, typed)


def check_width(columns: int, max_columns: int) -> None:
    if columns > max_columns:
        raise reject(Reason.too_many_columns, f"the file has {columns:,} columns, over the limit "
                                              f"of {max_columns:,} (APPLIANCE_MAX_COLUMNS)")


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


def parquet_size(path: str, cap: int, *, max_columns: int) -> int:
    """About how many bytes the Parquet file decodes to, from its footer; refuses a file
    that is not Parquet, too wide, or decodes past ``cap``."""
    import duckdb

    con = scratch_duckdb()
    try:
        size, leaves, rows = con.execute(
            "SELECT sum(total_uncompressed_size), count(DISTINCT path_in_schema), "
            "(SELECT sum(num_rows) FROM parquet_file_metadata($1)) FROM parquet_metadata($1)",
            [path]).fetchone() or (0, 0, 0)
    except duckdb.Error as exc:
        raise reject(Reason.malformed, "not a readable Parquet file: "
                     f"{first_line(exc).replace(path, 'the file')}") from exc
    finally:
        con.close()
    check_width(int(leaves or 0), max_columns)
    # Dictionary/RLE pages can decode far past their stored size: bound by rows too.
    estimate = max(int(size or 0), int(rows or 0) * int(leaves or 0) * 8)
    if estimate > cap:
        raise reject(Reason.too_big, f"the Parquet file decodes to about {mb(estimate)}, over "
                                     f"the {mb(cap)} limit")
    return estimate


def read_parquet(path: str) -> pl.DataFrame:
    """The whole (checked, see :func:`parquet_size`) Parquet file in memory."""
    import polars as pl

    from appliance.ingest.cells import dictionaries_as_strings

    try:
        return dictionaries_as_strings(pl.read_parquet(path, glob=False))
    except pl.exceptions.PolarsError as exc:
        raise reject(Reason.malformed, "not a readable Parquet file: "
                     f"{first_line(exc).replace(path, 'the file')}") from exc
