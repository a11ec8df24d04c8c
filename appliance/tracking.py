"""Experiment tracking from notebooks and outside scripts, over the HTTP API.

``ApplianceClient.start_run`` returns a :class:`TrackedRun`. Logging a param,
metric or tag only checks the value and appends it to an in-memory buffer, so
a call costs microseconds; the buffer goes to ``POST /runs/{id}/log`` in
batches:

- when it holds ``buffer_size`` points (the background thread is woken; a
  caller that outruns the server by ``_BACKPRESSURE`` buffers sends itself),
- every ``flush_interval`` seconds, from a daemon thread,
- at :meth:`TrackedRun.flush` and :meth:`TrackedRun.end`,
- at interpreter exit (``atexit``), which also ends a run left open.

A killed process loses at most what is still in the buffer. Values are
checked here with the server's own rules (``appliance.domain.runs``), so a
NaN or a bad key raises in the notebook cell that logged it. If the server
still refuses a batch (4xx), that batch is dropped, never retried, and the
refusal is raised by the next call on the run. A batch that could not be sent
(connection error, 5xx) goes back to the front of the buffer for the next
flush. Batches leave in logging order, one at a time.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import numbers
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypedDict

from appliance.domain import runkeys as rules
from appliance.errors import ApplianceError, Conflict, InvalidInput, RemoteError

log = logging.getLogger(__name__)

DEFAULT_BUFFER_SIZE = 1000
DEFAULT_FLUSH_INTERVAL = 1.0
_BACKPRESSURE = 10  # buffers held before log_metric sends in the caller's thread


class _Point(TypedDict):
    """One buffered metric point, as ``POST /runs/{id}/log`` takes it."""

    key: str
    value: float
    step: int
    ts: float


class _Batch(TypedDict, total=False):
    """One ``POST /runs/{id}/log`` body: what the buffers held when it was taken."""

    params: dict[str, str]
    tags: dict[str, str]
    metrics: list[_Point]


class RunTransport(Protocol):
    """What a tracked run needs from its client: the three run calls of the HTTP API.

    ``appliance.client.ApplianceClient`` is one; declaring the need here keeps this
    module below the client (the client builds runs, a run never imports the client).
    """

    def log_run_batch(self, run_id: str, batch: Mapping[str, Any]) -> dict[str, Any]: ...

    def end_run(self, run_id: str, status: str = "succeeded",
                error: str | None = None) -> dict[str, Any]: ...

    def upload_artifact(self, run_id: str, path: Path,
                        name: str | None = None) -> dict[str, Any]: ...


class TrackedRun:
    """One external run: buffered, batched, thread-safe logging.

    >>> with client.start_run("sweep-1", experiment="churn") as run:   # doctest: +SKIP
    ...     run.log_params({"lr": 0.1, "depth": 5})
    ...     for epoch in range(10):
    ...         run.log_metric("loss", 1 / (epoch + 1))
    ...     run.log_artifact("confusion.png")
    """

    def __init__(
        self,
        client: RunTransport,
        run: Mapping[str, Any],
        *,
        params: Mapping[str, Any] | None = None,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        flush_interval: float | None = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        if buffer_size < 1:
            raise InvalidInput("buffer_size must be at least 1")
        self.client = client
        self.info: dict[str, Any] = dict(run)
        self.id: str = str(run["id"])
        self.name: str = str(run.get("name", ""))
        self.buffer_size = min(buffer_size, rules.MAX_BATCH)
        self.flush_interval = flush_interval
        self._lock = threading.Lock()        # guards the buffers and counters below
        self._send_lock = threading.Lock()   # one batch in flight: batches keep their order
        self._points: list[_Point] = []
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        # what the server holds, so a changed param is refused here, in the caller's cell
        self._logged_params = {k: rules.check_param_value(k, v) for k, v in (params or {}).items()}
        self._next_step: dict[str, int] = {}
        self._error: ApplianceError | None = None
        self._ended = False
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # flush and end at interpreter exit; a weak reference, so the hook keeps nothing alive
        self._exit_hook = _exit_hook(weakref.ref(self))
        atexit.register(self._exit_hook)
        if flush_interval is not None and flush_interval > 0:
            self._thread = threading.Thread(target=self._flush_loop, name=f"tracking-{self.id[:8]}",
                                            daemon=True)
            self._thread.start()

    def __repr__(self) -> str:
        state = "ended" if self._ended else "running"
        return f"<TrackedRun {self.name!r} {self.id} {state}, {self.pending} pending>"

    # -- logging ------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Params, tags and points logged but not yet sent."""
        with self._lock:
            return len(self._points) + len(self._params) + len(self._tags)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Params are logged once; logging a different value for a key is refused."""
        self._raise_pending()
        clean = {rules.check_key("param", k): rules.check_param_value(k, v) for k, v in params.items()}
        with self._lock:
            self._check_open()
            for key, value in clean.items():
                old = self._logged_params.get(key)
                if old is not None and old != value:
                    raise InvalidInput(
                        f"param {key!r} is already {old!r}; params are logged once",
                        detail={"key": key})
            self._logged_params.update(clean)
            self._params.update(clean)
            full = len(self._params) >= self.buffer_size
        if full:
            self._wake.set()

    def set_tag(self, key: str, value: Any) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._raise_pending()
        clean = {rules.check_key("tag", k): rules.check_param_value(k, v) for k, v in tags.items()}
        with self._lock:
            self._check_open()
            self._tags.update(clean)

    def log_metric(self, key: str, value: Any, step: int | None = None) -> None:
        """Buffer one point. ``step`` defaults to one more than the key's last step."""
        self.log_metrics({key: value}, step=step)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        self._raise_pending()
        if step is not None and (isinstance(step, bool) or not isinstance(step, numbers.Integral)
                                 or step < 0):
            raise InvalidInput(f"step must be a whole number >= 0, got {step!r}")
        checked = [(rules.check_key("metric", k), _metric_value(k, v)) for k, v in metrics.items()]
        now = time.time()
        with self._lock:
            self._check_open()
            for key, value in checked:
                at = self._next_step.get(key, 0) if step is None else int(step)
                self._next_step[key] = max(self._next_step.get(key, 0), at + 1)
                self._points.append({"key": key, "value": value, "step": at, "ts": now})
            held = len(self._points)
        if held >= self.buffer_size * _BACKPRESSURE or (held >= self.buffer_size and self._thread is None):
            self.flush()
        elif held >= self.buffer_size:
            self._wake.set()

    def log_artifact(self, path: str | Path, name: str | None = None) -> dict[str, Any]:
        """Upload a file now (content-addressed on the server); answers its name, sha256, size."""
        self._raise_pending()
        path = Path(path)
        with self._lock:
            self._check_open()
        out: dict[str, Any] = self.client.upload_artifact(self.id, path, name=name or path.name)
        return out

    # -- sending --------------------------------------------------------------

    def flush(self) -> None:
        """Send everything buffered now; raise a refusal the server gave since the last call."""
        self._send_all(raise_transient=True)
        self._raise_pending()

    def end(self, status: str = "succeeded", error: str | None = None) -> dict[str, Any]:
        """Flush, stop the timer and end the run (``succeeded`` or ``failed``).

        The run is ended even when the last flush was refused; the refusal is
        raised afterwards so it is not lost.
        """
        if status not in ("succeeded", "failed"):
            raise InvalidInput("a run ends as 'succeeded' or 'failed'")
        with self._lock:
            if self._ended:
                raise Conflict(f"run {self.id} has already ended")
        self._stop_thread()
        # unreachable server: the buffer is kept and this raises; end() can be called again
        self._send_all(raise_transient=True)
        with self._lock:
            refused, self._error = self._error, None
        self.info = self.client.end_run(self.id, status, error=error)
        with self._lock:
            self._ended = True
        atexit.unregister(self._exit_hook)
        if refused is not None:
            raise refused
        return self.info

    @property
    def ended(self) -> bool:
        return self._ended

    # -- context manager ----------------------------------------------------------

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._ended:
            return
        if exc is None:
            self.end("succeeded")
            return
        # the body's exception wins: a failure to end is logged, not raised over it
        try:
            self.end("failed", error=f"{type(exc).__name__}: {exc}"[:2000])
        except ApplianceError as end_exc:
            log.warning("run %s: could not end it as failed: %s", self.id, end_exc)

    # -- internals ------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._ended:
            raise Conflict(f"run {self.id} has ended: it takes no more logging")

    def _raise_pending(self) -> None:
        with self._lock:
            exc, self._error = self._error, None
        if exc is not None:
            raise exc

    def _take(self) -> _Batch | None:
        with self._lock:
            if not (self._points or self._params or self._tags):
                return None
            body: _Batch = {}
            if self._params:
                body["params"], self._params = self._params, {}
            if self._tags:
                body["tags"], self._tags = self._tags, {}
            if self._points:
                body["metrics"] = self._points[:rules.MAX_BATCH]
                del self._points[:rules.MAX_BATCH]
            return body

    def _give_back(self, body: _Batch) -> None:
        with self._lock:
            self._points[:0] = body.get("metrics", [])
            self._params = {**body.get("params", {}), **self._params}
            self._tags = {**body.get("tags", {}), **self._tags}

    def _send_all(self, *, raise_transient: bool) -> None:
        with self._send_lock:
            while (body := self._take()) is not None:
                try:
                    self.client.log_run_batch(self.id, body)
                except RemoteError as exc:
                    if exc.status == 0 or exc.status >= 500:
                        self._give_back(body)  # not refused, just not delivered: try again later
                        if raise_transient:
                            raise
                        log.warning("run %s: batch not delivered, will retry: %s", self.id, exc)
                        return
                    with self._lock:  # refused: dropped, reported once by the next call
                        self._error = self._error or exc

    def _flush_loop(self) -> None:
        interval = self.flush_interval or DEFAULT_FLUSH_INTERVAL
        while not self._stop.is_set():
            self._wake.wait(interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self._send_all(raise_transient=False)
            except Exception:  # the timer must survive anything; the next call reports
                log.exception("run %s: background flush failed", self.id)

    def _stop_thread(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)

    def _at_exit(self) -> None:
        """Flush, and end a run left open: failed if the interpreter dies of an exception."""
        if self._ended:
            return
        crashed = getattr(sys, "last_value", None)
        try:
            if crashed is not None:
                self.end("failed", error=f"{type(crashed).__name__}: {crashed}"[:2000])
            else:
                self.end("succeeded")
        except Exception as exc:
            print(f"appliance: run {self.id} was not ended cleanly at exit: {exc}", file=sys.stderr)


def _exit_hook(ref: weakref.ReferenceType[TrackedRun]) -> Any:
    def hook() -> None:
        run = ref()
        if run is not None:
            run._at_exit()

    return hook


def _metric_value(key: str, value: Any) -> float:
    """numpy scalars count as numbers; booleans, strings, NaN and inf do not."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool | float | int):
        with contextlib.suppress(TypeError, ValueError):
            value = float(value)
    return rules.check_metric_value(key, value)
