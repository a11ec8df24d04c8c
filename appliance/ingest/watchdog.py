"""The parser's memory cap, on its anonymous resident memory: a watchdog thread in the parent.

The cap used to be ``RLIMIT_AS`` set by the child on itself. Address space is
not memory: polars, DuckDB, numpy and glibc reserve far more of it than they
touch, so a 512 MB cap stopped the child before it finished its imports, while
a file that really used the memory could still hit the cap somewhere a
MemoryError is not raised. The parent now samples the child's anonymous
resident memory (RSS less its file-backed and shared pages, ``rss - shared``
from psutil: the heap and the buffers the parse allocates; not the libraries'
mapped code, shared and constant, nor the mapped input file's pages, which the
kernel can drop and re-read) every ``interval_s`` and SIGKILLs the child the
moment it is over the cap; the parser pool then reports ``out_of_memory`` for the file (or
``parser_failed`` when it happens at start-up). The watchdog also keeps the
peak it saw, which the pool exposes for operators and the benchmarks.

Sampling means the child can overshoot by what it allocates in one interval
(tens of MB at most at 20 ms); the child's scratch DuckDB is told to stay well
under the cap (its ``memory_limit``, see ``appliance.ingest.scratch``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType

INTERVAL_S = 0.02


class RssWatchdog:
    """Watch one process's anonymous RSS while in its ``with`` block; ``kill`` it past
    ``limit_mb``."""

    def __init__(self, pid: int, limit_mb: int, kill: Callable[[], None], *,
                 interval_s: float = INTERVAL_S) -> None:
        self.pid = pid
        self.limit_bytes = int(limit_mb) << 20
        self.peak_bytes = 0
        self.tripped = False      # True once it killed the process for its memory
        self._kill = kill
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="parser-rss-watchdog",
                                        daemon=True)

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / (1 << 20)

    def __enter__(self) -> RssWatchdog:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
        except psutil.Error:
            return          # already gone: the caller sees it die
        while True:
            try:
                info = proc.memory_info()
                rss = int(info.rss - getattr(info, "shared", 0))
            except psutil.Error:
                return
            self.peak_bytes = max(self.peak_bytes, rss)
            if rss > self.limit_bytes:
                self.tripped = True
                self._kill()
                return
            if self._stop.wait(self._interval_s):
                return
