"""The prediction log: a bounded in-memory queue drained by one writer thread.

Requests only ``offer`` entries; the writer appends them to the store in
batches, running the outlier detectors of the batch's rows first
(``appliance.serve.outliercheck``). When the queue is full the API sheds load with 503 (``Overloaded``)
instead of growing memory. In scale-out (metadata on PostgreSQL) the batches go to
this host's Parquet parts instead of the table (``appliance.store.parts``): the
writer also rolls them every ``roll_seconds``, and ``close`` rolls what is left.

The writer shares the GIL with the event loop. Each flush has a fixed cost
(~3 ms: a store session, an Arrow scan, a commit) plus ~20 us an entry, so it
runs every 0.25 s in batches of at most 1,000 entries: few fixed costs, and no
single C call over a huge list that a request would wait behind. ``start`` also
shortens the interpreter's switch interval, which bounds how long a request
waits for the GIL while the writer runs Python (5 ms by default, which alone
would blow a 2 ms p99).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import deque
from typing import Any

from appliance.errors import Overloaded
from appliance.serve.outliercheck import OnChecked, resolve
from appliance.store import predictions as q
from appliance.store.db import Store
from appliance.store.predictions import PredictionEntry

log = logging.getLogger(__name__)


class PredictionLog:
    def __init__(self, store: Store, *, capacity: int = 50_000, batch: int = 1000,
                 interval_s: float = 0.25, switch_interval_s: float | None = 0.0002,
                 on_outliers: OnChecked | None = None) -> None:
        self.store = store
        self.on_outliers = on_outliers  # counts each batch's outlier checks (metrics)
        self.capacity = capacity
        self.batch = batch
        self.interval_s = interval_s
        self.switch_interval_s = switch_interval_s
        self._chunks: deque[list[PredictionEntry]] = deque()  # one list per request
        self._queued = 0
        self._lock = threading.Lock()        # guards _chunks and _queued
        self._write_lock = threading.Lock()  # one flush at a time (writer, labels, drift)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0
        self.failed = 0

    def start(self) -> None:
        if self.store.parts is not None:  # scale-out: roll what a killed process spooled
            try:
                self.store.parts.recover()
            except Exception:
                log.exception("rolling the spooled log parts failed (retried at the next start)")
        if self._thread is None:
            if self.switch_interval_s is not None and \
                    sys.getswitchinterval() > self.switch_interval_s:
                sys.setswitchinterval(self.switch_interval_s)
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self.flush()  # drain everything queued: nothing logged is dropped at exit
        if self.store.parts is not None:  # scale-out: the spool becomes parts
            try:
                self.store.parts.close()
            except Exception:  # the spool stays on disk: the next start rolls it
                log.exception("rolling the log's last parts failed; kept in the spool")

    def room_for(self, n: int) -> None:
        queued = self._queued
        if queued + n > self.capacity:
            raise Overloaded("the prediction log is full: try again shortly",
                             detail={"queued": queued, "capacity": self.capacity})

    def offer(self, entries: list[PredictionEntry]) -> None:
        if not entries:
            return
        with self._lock:
            room = self.capacity - self._queued
            if room < len(entries):  # room_for() ran first; only a race lands here
                self.dropped += len(entries) - max(room, 0)
                entries = entries[:max(room, 0)]
                if not entries:
                    return
            self._chunks.append(entries)
            self._queued += len(entries)

    def _take(self, limit: int) -> list[PredictionEntry]:
        """Up to ``limit`` entries, oldest first (whole requests, the last one maybe split)."""
        out: list[PredictionEntry] = []
        with self._lock:
            while self._chunks and len(out) < limit:
                chunk = self._chunks.popleft()
                room = limit - len(out)
                if len(chunk) > room:
                    self._chunks.appendleft(chunk[room:])
                    chunk = chunk[:room]
                out += chunk
            self._queued -= len(out)
        return out

    def _write_batch(self) -> int:
        """Append one batch; the number of entries it took from the queue."""
        with self._write_lock:
            entries = self._take(self.batch)
            if entries:
                try:
                    entries = resolve(entries, self.on_outliers)  # outlier checks, batched
                    q.log_predictions(self.store, entries)  # the table, or the parts
                except Exception:
                    self.failed += len(entries)
                    raise
                self.written += len(entries)
            return len(entries)

    def flush(self) -> int:
        """Write everything queued now (in batches): what a reader must see is in the store."""
        with self._write_lock:  # a batch the writer thread already took lands first
            pass
        due, total = self._queued, 0
        while total < due and (n := self._write_batch()):  # bounded: new traffic can't pin it
            total += n
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                while self._write_batch() >= self.batch and not self._stop.is_set():
                    pass
                if self.store.parts is not None:
                    self.store.parts.tick()  # roll a part every roll_seconds
            except Exception:  # the writer outlives a bad batch; the log says why
                log.exception("prediction log write failed")
            self._stop.wait(self.interval_s)

    def stats(self) -> dict[str, Any]:
        return {"queued": self._queued, "capacity": self.capacity,
                "written": self.written, "dropped": self.dropped, "failed": self.failed}
