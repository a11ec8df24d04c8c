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
scan) only run once something already looks wrong. The format readers and those
diagnostics live in :mod:`appliance.ingest._readers`; this module opens the file
and orchestrates.
"""

from __future__ import annotations

import ast
import errno
import functools
import json
import mmap
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.domain.ingest import Reason
from appliance.domain.text import MAX_VALUE_CHARS, clip_text
from appliance.errors import IngestRejected
from appliance.ingest._readers import (
    check_utf8,
    gunzip_capped,
    mb,
    parquet_size,
    read_jsonl,
    read_parquet,
    reject,
)
from appliance.ingest.formats import FORMATS
from appliance.ingest.stream import refuse_whole_file_format, stream_csv, stream_parquet

if TYPE_CHECKING:  # polars loads in the parser child only, not in the server
    import polars as pl

    from appliance.config import Settings
    from appliance.validate import Frame


DEFAULT_MAX_COLUMNS = 2000         # APPLIANCE_MAX_COLUMNS' default
MAX_MESSAGE_CHARS = 2000           # a refusal's message, as stored and shown


@dataclass(frozen=True)
class ParseLimits:
    max_bytes: int                 # size of the file as dropped
    max_uncompressed_bytes: int    # the decompressed stream (.csv.gz) or decoded Parquet
    timeout_s: float               # wall clock per file, enforced by the parent
    memory_mb: int                 # resident-memory cap of the parser child
    max_columns: int = DEFAULT_MAX_COLUMNS   # checked before the parse
    stream_above_bytes: int | None = None    # None: a quarter of memory_mb (stream_from)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ParseLimits:
        above = d.get("stream_above_bytes")
        return cls(max_bytes=int(d["max_bytes"]),
                   max_uncompressed_bytes=int(d["max_uncompressed_bytes"]),
                   timeout_s=float(d["timeout_s"]), memory_mb=int(d["memory_mb"]),
                   max_columns=int(d["max_columns"]),
                   stream_above_bytes=None if above is None else int(above))

    @classmethod
    def from_settings(cls, settings: Settings) -> ParseLimits:
        above = settings.parse_stream_above_mb
        return cls(max_bytes=settings.max_file_bytes,
                   max_uncompressed_bytes=settings.max_uncompressed_bytes,
                   timeout_s=settings.parse_timeout_seconds, memory_mb=settings.parse_memory_mb,
                   max_columns=settings.max_columns,
                   stream_above_bytes=None if above is None else above << 20)

    def stream_from(self) -> int | None:
        """Tables decoding to more bytes than this are streamed (None: never).

        The in-memory path peaks at about twice the CSV's size over the child's own
        ~200 MB, so a quarter of the cap leaves it room; anything bigger is read in
        a stream (appliance.ingest.stream), whose memory does not grow with the file.
        """
        if self.stream_above_bytes is not None:
            return max(0, self.stream_above_bytes)
        return (self.memory_mb << 20) // 4 if self.memory_mb > 0 else None

    def streams(self, size: int) -> bool:
        threshold = self.stream_from()
        return threshold is not None and size > threshold


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
        return cls(ok=False, reason=Reason(reason).value, message=clip_text(message,
                                                                            MAX_MESSAGE_CHARS))

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
                message=clip_text(str(d.get("message", "")), MAX_MESSAGE_CHARS),
                rows=int(d.get("rows", 0)),
                columns=[{"name": c["name"], "dtype": c["dtype"]} for c in columns],
                contract_yaml=contract,
                inferred=_strict_bool(d.get("inferred", False)),
                report=None if report is None else bounded(report),
                parquet_written=_strict_bool(d.get("parquet_written", False)),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"malformed parse result: {exc!r}") from exc


def _strict_bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError(f"expected a boolean, got {type(v).__name__}")
    return v


def scratch_paths(dst: Path) -> tuple[Path, Path, Path]:
    """What a killed child may leave behind: the Parquet temp file, the gunzip scratch and
    a streamed read's staging Parquet."""
    return (dst.with_name(dst.name + ".tmp"), dst.with_name(dst.name + ".src.tmp"),
            dst.with_name(dst.name + ".stage.tmp"))


def spill_folder(dst: Path) -> Path:
    """Where a streamed read spills its key-row hashes (a folder; see validate._keyhashes)."""
    return dst.with_name(dst.name + ".keys.tmp")


def remove_scratch(dst: Path) -> None:
    """Remove what :func:`scratch_paths` and :func:`spill_folder` name, if there."""
    import shutil

    for leftover in scratch_paths(dst):
        with suppress(FileNotFoundError):
            leftover.unlink()
    shutil.rmtree(spill_folder(dst), ignore_errors=True)


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
        return ParseResult.failed(Reason.out_of_memory,
                                  f"parsing ran out of memory (cap {limits.memory_mb} MB)")
    except OSError as exc:
        if exc.errno != errno.ENOMEM:
            return ParseResult.failed(Reason.internal, f"{type(exc).__name__}: {exc}"[:2000])
        return ParseResult.failed(Reason.out_of_memory,
                                  f"parsing ran out of memory (cap {limits.memory_mb} MB)")
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # polars' PanicException derives from BaseException
        return ParseResult.failed(Reason.internal, f"{type(exc).__name__}: {exc}"[:2000])
    finally:
        remove_scratch(Path(dst))


def _parse(src: Path, dst: Path, *, fmt: str, dataset: str, contract_yaml: str | None,
           contract_version: int | None, limits: ParseLimits) -> ParseResult:
    import polars as pl

    if fmt not in FORMATS:
        raise reject(Reason.unsupported_format, f"unsupported format {fmt!r}")
    types = dict(_contract_types(contract_yaml)) if contract_yaml is not None else None
    tmp, gunzipped, stage = scratch_paths(dst)
    with _open_regular(src, limits) as fd:
        dst.parent.mkdir(parents=True, exist_ok=True)
        df: Frame
        if fmt == "csv.gz":
            gunzip_capped(fd, gunzipped, limits.max_uncompressed_bytes)
            df = _read_text(str(gunzipped), "csv", types, limits, tmp, stage, spill_folder(dst),
                            contract_yaml)
        elif fmt == "parquet":
            path = _fd_path(fd)
            decoded = parquet_size(path, limits.max_uncompressed_bytes,
                                   max_columns=limits.max_columns)
            df = (stream_parquet(path, stage=stage, out=tmp) if limits.streams(decoded)
                  else read_parquet(path))
        else:
            df = _read_text(_fd_path(fd), fmt, types, limits, tmp, stage, spill_folder(dst),
                            contract_yaml)
    if df.height == 0:
        raise reject(Reason.empty, "the file has a header but no data rows")
    for name, dtype in df.schema.items():
        if dtype.is_nested() or dtype == pl.Object:
            raise reject(Reason.malformed,
                         f"column {name!r} holds nested values ({dtype}); only flat tables are taken")
    return _finish(df, dst, dataset=dataset, contract_yaml=contract_yaml,
                   contract_version=contract_version)


def _read_text(path: str, fmt: str, types: dict[str, pl.DataType] | None,
               limits: ParseLimits, tmp: Path, stage: Path, spill: Path,
               contract_yaml: str | None) -> Frame:
    from appliance.ingest._csv import read_csv

    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise reject(Reason.empty, "the file is empty (0 bytes)")
        streamed = limits.streams(size)
        if streamed and fmt == "jsonl":
            raise refuse_whole_file_format(fmt, size, limits.stream_from() or 0)
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            skip = check_utf8(mm)
            if fmt == "jsonl":
                # polars' JSON reader refuses a UTF-8 BOM: hand it the bytes after it
                return read_jsonl(mm[skip:] if skip else path, types, mm,
                                  max_columns=limits.max_columns)
            if streamed:
                return stream_csv(path, mm, skip, types, max_columns=limits.max_columns,
                                  stage=stage, out=tmp, spill=spill,
                                  contract_yaml=contract_yaml)
            return read_csv(path, mm, skip, types, max_columns=limits.max_columns)


def _finish(df: Frame, dst: Path, *, dataset: str, contract_yaml: str | None,
            contract_version: int | None) -> ParseResult:
    """Check (or infer) the contract over the table and move its Parquet into place.

    An in-memory frame is written here; a streamed table is already written.
    """
    import polars as pl

    from appliance.domain.reports import ValidationReport
    from appliance.validate.contracts import infer_contract, validate_frame

    tmp = scratch_paths(dst)[0]
    # polars writes Parquet without the GIL: overlap it with validation. The column
    # summary is not made here: it is off the acceptance path (see summarize_parquet).
    frame = df if isinstance(df, pl.DataFrame) else None
    writer = _Background(lambda: frame.write_parquet(tmp, compression="snappy")
                         if frame is not None else None)
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
        message=clip_text(f"{df.height} rows" if report.passed else report.headline(),
                          MAX_MESSAGE_CHARS),
        rows=df.height,
        columns=[{"name": n, "dtype": str(t)} for n, t in df.schema.items()],
        contract_yaml=contract, inferred=contract_yaml is None,
        report=bounded(report.to_dict()), parquet_written=True)


def bounded(value: Any, *, limit: int = MAX_MESSAGE_CHARS) -> Any:
    """A report with its text cut: sample values to ``MAX_VALUE_CHARS``, any other text to
    ``MAX_MESSAGE_CHARS`` (cells of any size may have been quoted into it)."""
    if isinstance(value, str):
        return clip_text(value, limit)
    if isinstance(value, dict):
        return {k: bounded(v, limit=MAX_VALUE_CHARS if k == "sample_values" else limit)
                for k, v in value.items()}
    if isinstance(value, list):
        return [bounded(v, limit=limit) for v in value]
    return value


def summarize_parquet(path: Path) -> list[dict[str, Any]]:
    """Per-column summary of a version's Parquet file (ours, written by ``parse_file``).

    Runs in the parser child after the version is recorded, so a version is
    accepted as soon as it is validated and durable, and its summary follows
    a moment later. Read lazily, a column at a time: bounded by one column,
    not the table (see ``appliance.validate.summary``).
    """
    import polars as pl

    from appliance.validate.summary import summarize

    return [s.to_dict() for s in summarize(pl.scan_parquet(path))]


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


# -- opening ---------------------------------------------------------------------------


@contextmanager
def _open_regular(src: Path, limits: ParseLimits) -> Iterator[int]:
    """Open without following links or blocking on a FIFO; only a plain regular file passes."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(src, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO):
            raise reject(Reason.not_regular_file,
                         f"{src.name} is not a regular file (a symbolic link, socket or "
                         "device)") from exc
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else
                    "a directory" if stat.S_ISDIR(st.st_mode) else "a device or special file")
            raise reject(Reason.not_regular_file, f"{src.name} is {kind}, not a regular file")
        if st.st_nlink > 1:
            raise reject(Reason.not_regular_file,
                         f"{src.name} has {st.st_nlink} hard links; only a file with one is taken")
        if st.st_size > limits.max_bytes:
            raise reject(Reason.too_big, f"{src.name} is {mb(st.st_size)}, over the "
                                         f"{mb(limits.max_bytes)} limit")
        if st.st_size == 0:
            raise reject(Reason.empty, "the file is empty (0 bytes)")
        yield fd
    finally:
        os.close(fd)


def _fd_path(fd: int) -> str:
    # Readers reopen the inode already checked through /proc, never the name again.
    return f"/proc/self/fd/{fd}" if os.path.isdir("/proc/self/fd") else f"/dev/fd/{fd}"


# -- contract types ----------------------------------------------------------------------


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
