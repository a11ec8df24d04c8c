"""Write-behind logging for clients that send one value per request (the MLflow client's
``log_metric`` / ``log_param`` / ``set_tag``): each call is checked at once (keys,
values, the run is open, a param is not changed) and answered, and its values are
committed in batches by one background thread, at most ``max_delay`` seconds later or
as soon as ``max_points`` wait. Anything that reads or ends a run flushes it first, so
a client always reads what it logged. A crash can lose the last ``max_delay`` seconds of
acknowledged values: these are telemetry (a run's points), as the runs service says;
run creation, endings and deletions are never buffered.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import Conflict, InvalidInput
from appliance.runs.checks import params as check_params
from appliance.runs.checks import points as check_points
from appliance.runs.checks import tags as check_tags
from appliance.runs.service import RunService

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)


class LogBuffer:
    def __init__(self, runs: RunService, *, max_delay: float = 0.2,
                 max_points: int = 5_000) -> None:
        self.runs = runs
        self.max_delay = max_delay
        self.max_points = max_points
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time: batches stay in order
        self._pending: dict[str, _Pending] = {}
        self._params: dict[str, dict[str, str]] = {}  # open runs: params stored or pending
        self._count = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def is_open(self, run_id: str) -> bool:
        """Whether the run is known open here: ``log`` then reads nothing from the store
        (an async caller may call it without a thread hop)."""
        with self._lock:
            return run_id in self._params

    def log(self, run_id: str, *, params: dict[str, Any] | None = None,
            metrics: list[dict[str, Any]] | None = None,
            tags: dict[str, Any] | None = None) -> None:
        """Check and queue one call's values, or refuse them whole (nothing queued)."""
        clean_params = check_params(params or {})
        clean_tags = check_tags(tags or {})
        points = check_points(list(metrics or []))
        with self._lock:
            known = self._params.get(run_id)
        if known is None:
            record = self.runs.record(run_id)  # NotFound for an unknown run
            if record.finished:
                raise Conflict(f"run {run_id} is {record.status.value}: it takes no more "
                               "logging")
            known = dict(record.params)
        for key, value in clean_params.items():
            if key in known and known[key] != value:
                raise InvalidInput(
                    f"param {key!r} is already {known[key]!r}; params are logged once",
                    detail={"key": key})
        with self._lock:
            self._params[run_id] = {**known, **clean_params}
            pending = self._pending.setdefault(run_id, _Pending())
            pending.params.update(clean_params)
            pending.tags.update(clean_tags)
            pending.metrics.extend({"key": k, "step": step, "value": v, "ts": ts.isoformat()}
                                   for k, step, v, ts in points)
            self._count += len(points) + len(clean_params) + len(clean_tags)
            full = self._count >= self.max_points
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="log-buffer",
                                                daemon=True)
                self._thread.start()
        if full:
            self._wake.set()

    def flush(self) -> None:
        """Commit everything queued (the caller waits)."""
        with self._flush_lock:
            with self._lock:
                batches, self._pending, self._count = self._pending, {}, 0
            for run_id, pending in batches.items():
                self._write(run_id, pending)

    def forget(self, run_id: str) -> None:
        """Flush, then drop what is known of an open run (it ended or was deleted)."""
        self.flush()
        with self._lock:
            self._params.pop(run_id, None)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _write(self, run_id: str, pending: _Pending) -> None:
        chunk = 10_000  # the runs service's batch limit
        try:
            for start in range(0, max(len(pending.metrics), 1), chunk):
                first = start == 0
                self.runs.log_batch(run_id, params=pending.params if first else None,
                                    tags=pending.tags if first else None,
                                    metrics=pending.metrics[start:start + chunk])
        except Exception:  # checked on arrival: only the store can fail here
            log.exception("buffered values of run %s could not be written", run_id)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.max_delay)
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                log.exception("log buffer flush failed")
