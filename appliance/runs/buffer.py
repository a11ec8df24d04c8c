"""Group commit for clients that send one value per request (the MLflow client's
``log_metric`` / ``log_param`` / ``set_tag``): each call is checked at once (keys,
values, the run is open, a param is not changed), queued, and answered only once its
values are committed. Calls that arrive while a commit is running ride along in the
next one, so concurrent loggers share transactions while a sequential one pays one
commit a call, exactly as before. Nothing acknowledged is ever lost to a crash (DESIGN
§7: ``kill -9`` loses no accepted data), and a commit that fails fails the calls whose
values it held.

A site that prefers throughput may set a delay (``APPLIANCE_MLFLOW_LOG_DELAY_MS``): calls
are then answered at once and committed by a background thread within the delay, about
3x the single-call throughput, at the price of losing up to that much of a run's logged
values to a server crash (a failed commit is then only logged). Off by default.
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
class _Ticket:
    """One call's wait for the commit that holds its values."""

    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


@dataclass
class _Pending:
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[_Ticket] = field(default_factory=list)


class LogBuffer:
    def __init__(self, runs: RunService, *, max_delay: float = 0.0) -> None:
        self.runs = runs
        self.max_delay = max_delay  # 0: answer once committed; else write-behind
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._commit_lock = threading.Lock()  # one commit at a time: batches stay in order
        self._pending: dict[str, _Pending] = {}
        self._params: dict[str, dict[str, str]] = {}  # open runs: params stored or pending
        self._failed: list[BaseException] = []

    def log(self, run_id: str, *, params: dict[str, Any] | None = None,
            metrics: list[dict[str, Any]] | None = None,
            tags: dict[str, Any] | None = None) -> None:
        """Check one call's values and return once they are committed; refused whole
        (nothing stored) on a bad value, and raised when the commit fails."""
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
        ticket = _Ticket()
        with self._lock:
            self._params[run_id] = {**known, **clean_params}
            pending = self._pending.setdefault(run_id, _Pending())
            pending.params.update(clean_params)
            pending.tags.update(clean_tags)
            pending.metrics.extend({"key": k, "step": step, "value": v, "ts": ts.isoformat()}
                                   for k, step, v, ts in points)
            pending.tickets.append(ticket)
            if self.max_delay > 0:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._loop, name="log-buffer",
                                                    daemon=True)
                    self._thread.start()
                return  # write-behind: the thread commits it within max_delay
        with self._commit_lock:
            if not ticket.done.is_set():  # else a commit that ran meanwhile took it along
                self._commit()
        if ticket.error is not None:
            raise ticket.error

    def flush(self) -> None:
        """Commit whatever is queued (every call commits before it returns: normally
        nothing)."""
        with self._commit_lock:
            self._commit()

    def forget(self, run_id: str) -> None:
        """Drop what is known of an open run (it ended or was deleted)."""
        self.flush()
        with self._lock:
            self._params.pop(run_id, None)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.flush()

    def _loop(self) -> None:
        while not self._stop.wait(self.max_delay):
            with self._commit_lock:
                self._commit()
            for error in self._errors():
                log.error("write-behind values could not be committed: %s", error)

    def _errors(self) -> list[BaseException]:
        with self._lock:
            errors, self._failed = self._failed, []
        return errors

    def _commit(self) -> None:
        """Write every queued batch (under the commit lock) and wake its callers."""
        with self._lock:
            batches, self._pending = self._pending, {}
        for run_id, pending in batches.items():
            try:
                self._write(run_id, pending)
            except BaseException as exc:  # the callers raise it: nothing is acknowledged
                with self._lock:
                    self._params.pop(run_id, None)  # read the stored params afresh
                for ticket in pending.tickets:
                    ticket.error = exc
                if self.max_delay > 0:  # nobody waits for these: say so in the log
                    with self._lock:
                        self._failed.append(exc)
            finally:
                for ticket in pending.tickets:
                    ticket.done.set()

    def _write(self, run_id: str, pending: _Pending) -> None:
        chunk = 10_000  # the runs service's batch limit
        for start in range(0, max(len(pending.metrics), 1), chunk):
            first = start == 0
            self.runs.log_batch(run_id, params=pending.params if first else None,
                                tags=pending.tags if first else None,
                                metrics=pending.metrics[start:start + chunk])
