"""A warm parser child with limits, and the pool the server talks to it through.

Untrusted bytes are parsed in a separate process (``python -m
appliance.ingest.worker``): a crash, a memory blow-up or a hang costs that
process, never the server. The child imports polars, pandera and the validate
modules once at start, so a file pays only for its own parsing.

Child -> parent is a trust boundary: the only thing that crosses it is one line
of JSON per message, read with a size cap and rebuilt field by field
(:meth:`ParseResult.from_json`); never pickle. The protocol, over the child's
stdin/stdout::

    child  -> {"ready": true, "pid": N}                 once imports are done
    parent -> {"op": "ping"}            child -> {"pong": true}
    parent -> {"op": "parse", ...}      child -> ParseResult as JSON
    parent -> {"op": "summarize", "path"}  child -> {"summary": [...]} or {"error": "..."}

Limits: the parent watches the child's resident memory and kills it past
``memory_mb`` (:class:`appliance.ingest.watchdog.RssWatchdog`, at start-up
and while it parses or summarises), and after ``timeout_s`` per file; it
starts a fresh one on the next call. The child turns off core files and tells
its scratch DuckDB to stay well under the cap (a quarter of it, at most 256 MB).
Every way a parse can fail ends in a :class:`ParseResult` with a reason, never
an exception: ``parser_failed`` (the child could not start), ``out_of_memory``,
``parser_crashed`` (it died otherwise), ``timeout``, ``internal``. The child
exits when its stdin closes or its parent changes (checked every second, busy
or not). The pipes, the reply deadline, the size cap and the kill are
``appliance.childproc.ChildChannel``'s, shared with the trainer.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from appliance.childproc import (
    ChildChannel,
    ChildGone,
    ReplyTimeout,
    ReplyTooBig,
    child_env,
    claim_stdout,
    emit,
    watch_parent,
)
from appliance.domain.ingest import Reason
from appliance.failpoints import failpoint
from appliance.ingest import scratch
from appliance.ingest.parse import (
    ParseLimits,
    ParseResult,
    parse_file,
    remove_scratch,
    summarize_parquet,
)
from appliance.ingest.watchdog import RssWatchdog

MAX_REPLY_BYTES = 64 << 20      # a summary is kilobytes; anything near this is hostile
STARTUP_TIMEOUT_S = 120.0       # imports on a cold, busy host
_PING_TIMEOUT_S = 5.0


class ParserPool:
    """One warm parser child; ``parse`` calls are serialised by a lock.

    Usable as a context manager. ``start`` is optional: the first ``parse``
    starts the child, and a dead or killed child is replaced on the next call.
    """

    def __init__(self, limits: ParseLimits, *, python: str | None = None,
                 startup_timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        self.limits = limits
        self._python = python or sys.executable
        self._startup_timeout_s = startup_timeout_s
        self._lock = threading.Lock()
        self._child: ChildChannel | None = None
        self._closed = False
        self.last_peak_mb = 0.0   # the child's peak RSS during the last start/parse/summary

    # -- lifecycle --------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The child's PID while one is running (for operators and tests)."""
        child = self._child
        return child.pid if child is not None and child.alive() else None

    def start(self) -> None:
        with self._lock:
            self._ensure_child()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop_child(graceful=True)

    def __enter__(self) -> ParserPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- parsing ----------------------------------------------------------------------

    def parse(self, src: Path, dst: Path, *, fmt: str, dataset: str,
              contract_yaml: str | None, contract_version: int | None) -> ParseResult:
        """Parse ``src`` into ``dst`` in the child. Never raises for a bad file."""
        request = {
            "op": "parse", "src": os.fspath(src), "dst": os.fspath(dst), "fmt": fmt,
            "dataset": dataset, "contract_yaml": contract_yaml,
            "contract_version": contract_version, "limits": self.limits.to_dict(),
        }
        with self._lock:
            if self._closed:
                raise RuntimeError("the parser pool is closed")
            try:
                self._ensure_child()
            except RuntimeError as exc:
                self._clean(Path(dst))
                return ParseResult.failed(Reason.parser_failed, f"{exc}; the file was not read")
            assert self._child is not None
            watch = self._watchdog(self._child)
            try:
                with watch:
                    self._child.send(request)
                    line = self._child.read_line(time.monotonic() + self.limits.timeout_s)
            except ReplyTimeout:
                self._stop_child(graceful=False)
                self._clean(Path(dst))
                return ParseResult.failed(
                    Reason.timeout, f"parsing took longer than {self.limits.timeout_s:g} s; "
                                    "the parser was stopped")
            except ReplyTooBig:
                self._stop_child(graceful=False)
                self._clean(Path(dst))
                return ParseResult.failed(Reason.parser_crashed, "the parser sent a reply over "
                                          f"{MAX_REPLY_BYTES >> 20} MB; it was stopped")
            except (ChildGone, OSError) as exc:
                status = self._stop_child(graceful=False)
                self._clean(Path(dst))
                if watch.tripped:
                    return ParseResult.failed(Reason.out_of_memory, _over_cap_message(
                        watch, self.limits, "while reading this file"))
                return ParseResult.failed(Reason.parser_crashed, _death_message(
                    status, self.limits, str(exc)))
            finally:
                self.last_peak_mb = watch.peak_mb
            try:
                result = ParseResult.from_json(line)
            except ValueError as exc:
                self._stop_child(graceful=False)
                self._clean(Path(dst))
                return ParseResult.failed(Reason.internal, f"the parser sent a bad reply: {exc}")
            if result.reason in _RESTART_AFTER:
                self._stop_child(graceful=False)   # out of memory: start afresh next time
            if result.parquet_written and not Path(dst).is_file():
                return ParseResult.failed(Reason.internal, "the parser reported a Parquet file "
                                                           "that is not there")
            return result

    def summarize(self, parquet: Path) -> list[dict[str, Any]]:
        """Column summary of a recorded version's Parquet file, computed in the child.

        Raises RuntimeError when the child fails or answers badly; the caller
        leaves the summary pending and may retry.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("the parser pool is closed")
            self._ensure_child()
            assert self._child is not None
            watch = self._watchdog(self._child)
            try:
                with watch:
                    self._child.send({"op": "summarize", "path": os.fspath(parquet)})
                    reply = self._child.read_json(time.monotonic() + self.limits.timeout_s)
            except (ReplyTimeout, ChildGone, OSError, ValueError) as exc:
                self._stop_child(graceful=False)
                why = (_over_cap_message(watch, self.limits, "while summarising")
                       if watch.tripped else repr(exc))
                raise RuntimeError(f"the summary of {parquet.name} failed: {why}") from exc
            finally:
                self.last_peak_mb = watch.peak_mb
        summary = reply.get("summary") if isinstance(reply, dict) else None
        if not isinstance(summary, list) or not all(isinstance(x, dict) for x in summary):
            error = reply.get("error") if isinstance(reply, dict) else None
            raise RuntimeError(f"the summary of {parquet.name} failed: {error or 'bad reply'}")
        return summary

    # -- the child --------------------------------------------------------------------

    def _ensure_child(self) -> None:
        if self._child is not None and self._child.alive() and self._ping():
            return
        self._stop_child(graceful=False)
        self._spawn()

    def _spawn(self) -> None:
        self._child = child = ChildChannel.spawn(
            [self._python, "-m", "appliance.ingest.worker",
             "--memory-mb", str(self.limits.memory_mb), "--parent-pid", str(os.getpid())],
            env=child_env(), max_line=MAX_REPLY_BYTES)
        watch = self._watchdog(child)
        try:
            with watch:
                ready = child.read_json(time.monotonic() + self._startup_timeout_s)
        except (ChildGone, ReplyTimeout, ValueError) as exc:
            status = self._stop_child(graceful=False)
            if watch.tripped:
                raise RuntimeError("the parser process could not start: " + _over_cap_message(
                    watch, self.limits, "while starting")) from exc
            raise RuntimeError(f"the parser process could not start (exit status {status}, "
                               f"{type(exc).__name__})") from exc
        finally:
            self.last_peak_mb = watch.peak_mb
        if not (isinstance(ready, dict) and ready.get("ready") is True):
            self._stop_child(graceful=False)
            raise RuntimeError("the parser process sent an unexpected greeting")

    def _watchdog(self, child: ChildChannel) -> RssWatchdog:
        return RssWatchdog(child.pid, self.limits.memory_mb, child.kill)

    def _ping(self) -> bool:
        assert self._child is not None
        try:
            self._child.send({"op": "ping"})
            reply = self._child.read_json(time.monotonic() + _PING_TIMEOUT_S)
        except (ChildGone, ReplyTimeout, BrokenPipeError, ValueError):
            return False
        return isinstance(reply, dict) and reply.get("pong") is True

    def _stop_child(self, *, graceful: bool) -> int | None:
        child, self._child = self._child, None
        return child.stop(graceful=graceful) if child is not None else None

    @staticmethod
    def _clean(dst: Path) -> None:
        remove_scratch(dst)


_RESTART_AFTER = frozenset({Reason.parser_crashed.value, Reason.out_of_memory.value})


def _over_cap_message(watch: RssWatchdog, limits: ParseLimits, when: str) -> str:
    return (f"the parser used {watch.peak_mb:.0f} MB of memory {when}, over its "
            f"{limits.memory_mb} MB cap (APPLIANCE_PARSE_MEMORY_MB); it was stopped")


def _death_message(status: int | None, limits: ParseLimits, detail: str) -> str:
    if status is not None and status < 0:
        try:
            how = f"was killed by {signal.Signals(-status).name}"
        except ValueError:
            how = f"was killed by signal {-status}"
    else:
        how = f"exited with status {status}"
    return (f"the parser process {how} while reading this file ({detail}); its memory cap is "
            f"{limits.memory_mb} MB")


# -- the child side ------------------------------------------------------------------------


def _warm_up() -> None:
    """Import and exercise the whole path once so the first real file pays nothing extra."""
    import tempfile

    import duckdb  # noqa: F401
    import pandera.polars  # noqa: F401
    import polars  # noqa: F401

    import appliance.validate.contracts
    import appliance.validate.summary  # noqa: F401

    with tempfile.TemporaryDirectory(prefix="appliance-parser-") as tmp:
        src = Path(tmp) / "warm.csv"
        src.write_text("x,y,z\n" + "".join(f"{i},{i * 0.5},c{i % 3}\n" for i in range(60)))
        limits = ParseLimits(1 << 20, 1 << 20, 60.0, 0)
        first = parse_file(src, Path(tmp) / "warm.parquet", fmt="csv", dataset="warm",
                           contract_yaml=None, contract_version=None, limits=limits)
        if first.contract_yaml:
            parse_file(src, Path(tmp) / "warm2.parquet", fmt="csv", dataset="warm",
                       contract_yaml=first.contract_yaml, contract_version=1, limits=limits)
            summarize_parquet(Path(tmp) / "warm2.parquet")


def _serve(channel: IO[bytes]) -> int:
    def reply(payload: str) -> None:
        emit(channel, payload)

    stdin = sys.stdin.buffer
    while line := stdin.readline():
        try:
            request = json.loads(line)
            if request.get("op") == "ping":
                reply('{"pong":true}')
                continue
            if request.get("op") == "summarize":
                reply(_summarize(Path(request["path"])))
                continue
            failpoint("parser.parse")   # the child dies mid-file (tests)
            result = parse_file(
                Path(request["src"]), Path(request["dst"]), fmt=str(request["fmt"]),
                dataset=str(request["dataset"]), contract_yaml=request.get("contract_yaml"),
                contract_version=request.get("contract_version"),
                limits=ParseLimits.from_dict(request["limits"]))
        except MemoryError:
            result = ParseResult.failed(Reason.out_of_memory, "the parser ran out of memory")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # a bad request or a library panic: answer, keep serving
            result = ParseResult.failed(Reason.internal, f"{type(exc).__name__}: {exc}"[:2000])
        reply(result.to_json())
        if result.reason in _RESTART_AFTER:
            return 70   # after a MemoryError the parent starts a clean child
    return 0


def _summarize(path: Path) -> str:
    try:
        return json.dumps({"summary": summarize_parquet(path)}, default=str)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        return json.dumps({"error": f"{type(exc).__name__}: {exc}"[:2000]})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m appliance.ingest.worker")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args(argv)
    if os.getppid() != args.parent_pid:
        return 0
    watch_parent(args.parent_pid)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # No RLIMIT_AS: the parent caps resident memory (appliance.ingest.watchdog).
    scratch.set_memory_cap(args.memory_mb)
    failpoint("parser.start")   # the child dies before it is ready (tests)
    channel = claim_stdout()
    _warm_up()
    emit(channel, json.dumps({"ready": True, "pid": os.getpid()}))
    return _serve(channel)


if __name__ == "__main__":
    sys.exit(main())
