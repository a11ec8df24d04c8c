"""The prediction log: a bounded in-memory queue drained by one writer thread.

Requests only ``offer`` entries; the writer appends them to the store in
batches. When the queue is full the API sheds load with 503 (``Overloaded``)
instead of growing memory.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from appliance.errors import Overloaded
from appliance.store import predictions as q
from appliance.store.db import Store
from appliance.store.predictions import PredictionEntry

log = logging.getLogger(__name__)


class PredictionLog:
    def __init__(self, store: Store, *, capacity: int = 50_000, batch: int = 5_000,
                 interval_s: float = 0.5) -> None:
        self.store = store
        self.capacity = capacity
        self.batch = batch
        self.interval_s = interval_s
        self._queue: queue.Queue[PredictionEntry] = queue.Queue(maxsize=capacity)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        self.dropped = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        while self.flush():  # drain everything queued: nothing logged is dropped at exit
            pass

    def room_for(self, n: int) -> None:
        if self._queue.qsize() + n > self.capacity:
            raise Overloaded("the prediction log is full: try again shortly",
                             detail={"queued": self._queue.qsize(), "capacity": self.capacity})

    def offer(self, entries: list[PredictionEntry]) -> None:
        for entry in entries:
            try:
                self._queue.put_nowait(entry)
            except queue.Full:
                self.dropped += 1  # room_for() ran first; only a race lands here

    def flush(self) -> int:
        entries: list[PredictionEntry] = []
        while len(entries) < self.batch:
            try:
                entries.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if entries:
            with self.store.write() as s:
                q.append_predictions(s, entries)
            self.written += len(entries)
        return len(entries)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                while self.flush() >= self.batch:
                    pass
            except Exception:  # the writer outlives a bad batch; the log says why
                log.exception("prediction log write failed")
            self._stop.wait(self.interval_s)

    def stats(self) -> dict[str, Any]:
        return {"queued": self._queue.qsize(), "capacity": self.capacity,
                "written": self.written, "dropped": self.dropped}
