"""Parse one untrusted inbox file into a Parquet version and its contract report.

This runs INSIDE the parser child (``appliance.ingest.worker``), never in the
server: the bytes are hostile until proven otherwise. Every refusal is an
:class:`IngestRejected` with a ``Reason`` code and a message naming the column
and line where we can; :func:`parse_file` turns those, and any other exception,
into a :class:`ParseResult`, which crosses back to the parent as JSON only.

The fast path for a good CSV is a cheap UTF-8 scan of the mapped file, one
multi-threaded polars read (with the contract's types when there is a contract,
so no inference) and the Parquet write overlapped with validation. The column
summary is made afterwards, from the written Parquet (:func:`summarize_parquet`).
The slow diagnostics (DuckDB's strict CSV reader, row look-ups, a JSON line
scan) only run once something already looks wrong.
"""

from __future__ import annotations

import ast
import codecs
import csv
import errno
import functools
import io
import json
import mmap
import os
import re
import stat
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.domain.ingest import Reason
from appliance.errors import IngestRejected
from appliance.ingest.formats import FORMATS

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


@dataclass(frozen=True)
class ParseLimits:
    max_bytes: int                 # size of the file as dropped
    max_uncompressed_bytes: int    # the decompressed stream (.csv.gz) or decoded Parquet
    timeout_s: float               # wall clock per file, enforced by the parent
    memory_mb: int                 # RLIMIT_AS of the parser child

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParseLimits:
        return cls(max_bytes=int(d["max_bytes"]),
                   max_uncompressed_bytes=int(d["max_uncompressed_bytes"]),
                   timeout_s=float(d["timeout_s"]), memory_mb=int(d["memory_mb"]))


@dataclass
class ParseResult:
    ok: bool                        # False -> the file is quarantined, no version at all
    reason: str | None              # a Reason value when not ok
    message: str                    # readable, names the column/line where possible
    rows: int = 0
    columns: list[dict[str, str]] = field(default_factory=list)   # [{"name", "dtype"}]
    contract_yaml: str | None = None  # inferred (when none was given) or the one given
    inferred: bool = False
    report: dict[str, Any] | None = None     # ValidationReport.to_dict(); None when not ok
    parquet_written: bool = False   # True when dst was written (ok, even if the report failed)

    @classmethod
    def failed(cls, reason: str | Reason, message: str) -> ParseResult:
        return cls(ok=False, reason=Reason(reason).value, message=message)

    def to_json(self) -> str:
        # default=str: an odd value in a report (a date, a decimal) must not make it unsendable
        return json.dumps(asdict(self), default=str, separators=(",", ":"))

    @classmethod
    def from_json(cls, s: str | bytes) -> ParseResult:
        """Rebuild from the child's JSON, checking every field; a bad shape raises ValueError."""
        d = json.loads(s)
        if not isinstance(d, dict):
            raise ValueError("parse result is not a JSON object")
        try:
            columns = d.get("columns") or []
            report, contract, reason = d.get("report"), d.get("contract_yaml"), d.get("reason")
            if not isinstance(columns, list) or not all(
                isinstance(c, dict) and isinstance(c.get("name"), str)
                and isinstance(c.get("dtype"), str) for c in columns):
                raise ValueError("columns must be a list of {name, dtype}")
            if report is not None and not isinstance(report, dict):
                raise ValueError("report must be an object")
            if contract is not None and not isinstance(contract, str):
                raise ValueError("contract_yaml must be a string")
            ok = _strict_bool(d["ok"])
            if ok == (reason is not None) or (ok and report is None):
                raise ValueError("ok, reason and report disagree")
            return cls(
                ok=ok,
                reason=None if reason is None else Reason(reason).value,
                message=str(d.get("message", "")),
                rows=int(d.get("rows", 0)),
                columns=[{"name": c["name"], "dtype": c["dtype"]} for c in columns],
                contract_yaml=contract,
                inferred=_strict_bool(d.get("inferred", False)),
                report=report,
                parquet_written=_strict_bool(d.get("parquet_written", False)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed parse result: {exc!r}") from exc


def _strict_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected a boolean, got {type(v).__name__}")
    return v


def scratch_paths(dst: Path) -> tuple[Path, Path]:
    """What a killed child may leave behind: the Parquet temp file and the gunzip scratch."""
    return dst.with_name(dst.name + ".tmp"), dst.with_name(dst.name + ".src.tmp")


def parse_file(src: Path, dst: Path, *, fmt: str, dataset: str, contract_yaml: str | None,
               contract_version: int | None, limits: ParseLimits) -> ParseResult:
    """Read ``src`` safely, check it against its contract and write ``dst`` as Parquet.

    Never raises: every failure is a ``ParseResult(ok=False, reason=...)``.
    """
    try:
        return _parse(Path(src), Path(dst), fmt=fmt, dataset=dataset,
                      contract_yaml=contract_yaml, contract_version=contract_version,
                      limits=limits)
    except IngestRejected as exc:
        return ParseResult.failed(exc.reason, exc.message)
    except MemoryError:
        return ParseResult.failed(Reason.parser_crashed,
                                  f"parsing ran out of memory (cap {limits.memory_mb} MB)")
    except OSError as exc:
        if exc.errno != errno.ENOMEM:
            return ParseResult.failed(Reason.internal, f"{type(exc).__name__}: {exc}"[:2000])
        return ParseResult.failed(Reason.parser_crashed,
                                  f"parsing ran out of memory (cap {limits.memory_mb} MB)")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # polars' PanicException derives from BaseException
        return ParseResult.failed(Reason.internal, f"{type(exc).__name__}: {exc}"[:2000])
    finally:
        for leftover in scratch_paths(Path(dst)):
            with suppress(FileNotFoundError):
                leftover.unlink()


def _parse(src: Path, dst: Path, *, fmt: str, dataset: str, contract_yaml: str | None,
           contract_version: int | None, limits: ParseLimits) -> ParseResult:
    import polars as pl

    if fmt not in FORMATS:
        raise _reject(Reason.unsupported_format, f"unsupported format {fmt!r}")
    types = dict(_contract_types(contract_yaml)) if contract_yaml is not None else None
    with _open_regular(src, limits) as fd:
        dst.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "csv.gz":
            scratch = scratch_paths(dst)[1]
            _gunzip_capped(fd, scratch, limits.max_uncompressed_bytes)
            df = _read_text(str(scratch), "csv", types)
        elif fmt == "parquet":
            df = _read_parquet(_fd_path(fd), limits.max_uncompressed_bytes)
        else:
            df = _read_text(_fd_path(fd), fmt, types)
    if df.height == 0:
        raise _reject(Reason.empty, "the file has a header but no data rows")
    for name, dtype in df.schema.items():
        if dtype.is_nested() or dtype == pl.Object:
            raise _reject(Reason.malformed,
                          f"column {name!r} holds nested values ({dtype}); only flat tables are taken")
    return _finish(df, dst, dataset=dataset, contract_yaml=contract_yaml,
                   contract_version=contract_version)


def _finish(df: pl.DataFrame, dst: Path, *, dataset: str, contract_yaml: str | None,
            contract_version: int | None) -> ParseResult:
    from appliance.domain.reports import ValidationReport
    from appliance.validate.contracts import infer_contract, validate_frame

    tmp = scratch_paths(dst)[0]
    # polars writes Parquet without the GIL: overlap it with validation. The column
    # summary is not made here: it is off the acceptance path (see summarize_parquet).
    writer = _Background(lambda: df.write_parquet(tmp, compression="snappy"))
    try:
        if contract_yaml is None:
            # A contract inferred from this very frame holds for it by construction
            # (observed dtypes, nullability, widened ranges, observed categories;
            # tests/validate pins that round trip), so checking it again is skipped.
            contract = infer_contract(df, dataset=dataset)
            report = ValidationReport(passed=True, contract_version=None, rows=df.height)
        else:
            contract = contract_yaml
            report = validate_frame(df, contract, contract_version=contract_version)
    finally:
        writer.wait()
    writer.raise_if_failed()
    os.replace(tmp, dst)
    return ParseResult(
        ok=True, reason=None,
        message=f"{df.height} rows" if report.passed else report.headline(),
        rows=df.height,
        columns=[{"name": n, "dtype": str(t)} for n, t in df.schema.items()],
        contract_yaml=contract, inferred=contract_yaml is None, report=report.to_dict(),
        parquet_written=True)


def summarize_parquet(path: Path) -> list[dict[str, Any]]:
    """Per-column summary of a version's Parquet file (ours, written by ``parse_file``).

    Runs in the parser child after the version is recorded, so a version is
    accepted as soon as it is validated and durable, and its summary follows
    a moment later.
    """
    import polars as pl

    from appliance.validate.summary import summarize

    return [s.to_dict() for s in summarize(pl.read_parquet(path))]


class _Background:
    """One callable on a thread; ``raise_if_failed`` re-raises what it raised."""

    def __init__(self, fn: Callable[[], object]) -> None:
        self._fn = fn
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:
            self._error = exc

    def wait(self) -> None:
        self._thread.join()

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error


def _reject(reason: Reason, message: str) -> IngestRejected:
    return IngestRejected(reason.value, message)


# -- opening ---------------------------------------------------------------------------


@contextmanager
def _open_regular(src: Path, limits: ParseLimits) -> Iterator[int]:
    """Open without following links or blocking on a FIFO; only a plain regular file passes."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(src, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO):
            raise _reject(Reason.not_regular_file,
                          f"{src.name} is not a regular file (a symbolic link, socket or "
                          "device)") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else
                    "a directory" if stat.S_ISDIR(st.st_mode) else "a device or special file")
            raise _reject(Reason.not_regular_file, f"{src.name} is {kind}, not a regular file")
        if st.st_nlink > 1:
            raise _reject(Reason.not_regular_file,
                          f"{src.name} has {st.st_nlink} hard links; only a file with one is taken")
        if st.st_size > limits.max_bytes:
            raise _reject(Reason.too_big, f"{src.name} is {_mb(st.st_size)}, over the "
                                          f"{_mb(limits.max_bytes)} limit")
        if st.st_size == 0:
            raise _reject(Reason.empty, "the file is empty (0 bytes)")
        yield fd
    finally:
        os.close(fd)


def _fd_path(fd: int) -> str:
    # Readers reopen the inode already checked through /proc, never the name again.
    return f"/proc/self/fd/{fd}" if os.path.isdir("/proc/self/fd") else f"/dev/fd/{fd}"


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def _gunzip_capped(fd: int, out_path: Path, cap: int) -> None:
    """Stream-decompress a gzip file into ``out_path``, refusing past ``cap`` bytes."""
    with suppress(FileNotFoundError):
        out_path.unlink()
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    total, member = 0, zlib.decompressobj(16 + zlib.MAX_WBITS)

    def emit(piece: bytes) -> None:
        nonlocal total
        total += len(piece)
        if total > cap:
            raise _reject(Reason.too_big, "the gzip stream expands past the "
                                          f"{_mb(cap)} limit on decompressed data")
        os.write(out, piece)

    try:
        while chunk := os.read(fd, 1 << 20):
            data = chunk
            while data:
                if member.eof:  # another gzip member follows, or zero padding
                    if not data.startswith(b"\x1f\x8b"):
                        if data.strip(b"\x00"):
                            raise _reject(Reason.malformed, "trailing bytes after the gzip data")
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
            raise _reject(Reason.malformed, "the gzip stream is truncated")
    except zlib.error as exc:
        raise _reject(Reason.malformed, f"not a valid gzip stream ({exc})") from exc
    finally:
        os.close(out)


# -- text: encoding, CSV, JSON lines ------------------------------------------------------


def _read_text(path: str, fmt: str, types: dict[str, pl.DataType] | None) -> pl.DataFrame:
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size == 0:
            raise _reject(Reason.empty, "the file is empty (0 bytes)")
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
            raise _reject(Reason.encoding, f"the file is {name} (byte-order mark); save it as UTF-8")
    nul = mm.find(b"\x00")
    if nul >= 0:
        raise _reject(Reason.encoding, f"line {_line_at(mm, nul)} holds a NUL byte: UTF-16 "
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
                raise _reject(Reason.encoding, f"line {_line_at(mm, bad)} is not UTF-8 (byte "
                              f"0x{mm[bad]:02X} at offset {bad}); save the file as UTF-8") from exc
            pos += max(used, 1)
    return skip


def _line_at(mm: mmap.mmap, offset: int) -> int:
    return mm[:offset].count(b"\n") + 1


def _csv_header(mm: mmap.mmap, skip: int) -> list[str]:
    head = mm[skip: skip + _HEADER_MAX]
    text = codecs.utf_8_decode(head, "strict", False)[0]
    if not text.strip() and len(mm) - skip <= _HEADER_MAX:
        raise _reject(Reason.empty, "the file holds no header and no rows")
    try:
        header = next(csv.reader(io.StringIO(text, newline=""), strict=True), [])
    except csv.Error as exc:
        raise _reject(Reason.malformed, f"line 1 (the header) cannot be read: {exc}") from exc
    if not header:
        raise _reject(Reason.malformed, "line 1 is blank; expected a header of column names")
    for i, name in enumerate(header, 1):
        if not name.strip():
            raise _reject(Reason.malformed, f"column {i} has no name in the header (line 1)")
        if name in header[: i - 1]:
            raise _reject(Reason.malformed, f"column name {name!r} appears twice in the header")
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
            raise _reject(Reason.empty, "the file holds no header and no rows") from exc
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
                    raise _reject(Reason.malformed, located) from exc
            raise _reject(Reason.malformed, _csv_structure_error(path, len(header))
                          or _first_line(exc)) from exc
    # polars pads short rows with nulls silently; a short row always nulls the last column
    if widened or df.get_column(df.columns[-1]).null_count():
        problem = _csv_structure_error(path, len(header))
        if problem:
            raise _reject(Reason.malformed, problem)
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
        raise _reject(Reason.malformed, _jsonl_bad_line(mm) or
                      f"not valid JSON lines: {_first_line(exc)}") from exc
    if df.width == 0:
        raise _reject(Reason.empty, "the file holds no JSON records")
    casts = []
    for name, dtype in (types or {}).items():
        if name in df.columns and df.schema[name] != dtype:
            hit = _first_cast_failure(df.get_column(name), dtype)
            if hit is not None:
                raise _reject(Reason.malformed, f"column {name!r}, line {hit[0]}: value "
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
        raise _reject(Reason.empty, "the file holds no JSON records")
    return None


# -- Parquet and contract types -----------------------------------------------------------


def _read_parquet(path: str, cap: int) -> pl.DataFrame:
    import duckdb
    import polars as pl

    con = duckdb.connect(":memory:", config={"memory_limit": "256MB", "threads": 1})
    try:
        size, leaves, rows = con.execute(
            "SELECT sum(total_uncompressed_size), count(DISTINCT path_in_schema), "
            "(SELECT sum(num_rows) FROM parquet_file_metadata($1)) FROM parquet_metadata($1)",
            [path]).fetchone() or (0, 0, 0)
    except duckdb.Error as exc:
        raise _reject(Reason.malformed, "not a readable Parquet file: "
                      f"{_first_line(exc).replace(path, 'the file')}") from exc
    finally:
        con.close()
    # Dictionary/RLE pages can decode far past their stored size: bound by rows too.
    estimate = max(int(size or 0), int(rows or 0) * int(leaves or 0) * 8)
    if estimate > cap:
        raise _reject(Reason.too_big, f"the Parquet file decodes to about {_mb(estimate)}, over "
                                      f"the {_mb(cap)} limit")
    try:
        return pl.read_parquet(path, glob=False)
    except pl.exceptions.PolarsError as exc:
        raise _reject(Reason.malformed, "not a readable Parquet file: "
                      f"{_first_line(exc).replace(path, 'the file')}") from exc


@functools.lru_cache(maxsize=16)
def _contract_types(contract_yaml: str) -> tuple[tuple[str, pl.DataType], ...]:
    """Column -> polars dtype of a contract; cached, as most files reuse their dataset's."""
    from appliance.validate.contracts import contract_columns

    return tuple((n, polars_dtype(t)) for n, t in contract_columns(contract_yaml).items())


_DTYPE_TEXT = re.compile(r"^\s*([A-Za-z][A-Za-z0-9]*)\s*(?:\((.*)\))?\s*$", re.S)


def polars_dtype(text: str) -> pl.DataType:
    """Turn a dtype string such as ``Int64`` or ``Datetime(time_unit='us')`` into a dtype.

    Only literal arguments are read (``ast.literal_eval``), never evaluated code.
    """
    import polars as pl

    from appliance.errors import ContractInvalid

    match = _DTYPE_TEXT.match(text)
    cls = getattr(pl, match[1], None) if match else None
    if not (match and isinstance(cls, type) and issubclass(cls, pl.DataType)):
        raise ContractInvalid(f"unknown column type {text!r} in the contract")
    if not match[2]:
        return cls()
    try:
        call = ast.parse(f"f({match[2]})", mode="eval").body
        assert isinstance(call, ast.Call)
        args = [ast.literal_eval(a) for a in call.args]
        kwargs = {str(k.arg): ast.literal_eval(k.value) for k in call.keywords}
        return cls(*args, **kwargs)
    except (SyntaxError, ValueError, TypeError, AssertionError) as exc:
        raise ContractInvalid(f"cannot read column type {text!r} in the contract") from exc
