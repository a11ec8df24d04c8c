"""Training on a Dask cluster (``APPLIANCE_DASK_SCHEDULER``): the child process's job, on a worker.

The leader submits the request the child process takes (``appliance.train.child.worker``)
as one Dask task, :func:`train_on_worker`. On the worker the same code runs
(:func:`appliance.train.child.run.run_job`) with two differences: a search scores each
trial as its own Dask task (submitted from the training task, so trials fan out over the
cluster), and the outputs are written to a scratch folder on the worker and come back as
the result's JSON text plus the files' bytes (``model.onnx``, ``holdout.parquet``...),
never a pickled model. The dataset's Parquet file is read at the leader's path when the
worker sees it (a LocalCluster, a shared mount), else from the object store under its key
with the worker's own ``APPLIANCE_*`` settings.

A lost worker never hangs a run (xgboost #9419): the leader polls the scheduler, and
fails the run at once when the worker holding the training task leaves the cluster (the
scheduler would silently start it again elsewhere: the job's retries decide that),
``APPLIANCE_DASK_LOST_WORKER_SECONDS`` after a worker holding its trials left, or when the
task has sent nothing (it beats every few seconds) for that long. The run then fails like
any other and the job ledger re-queues it when the job has retries left.

The Dask cluster is trusted infrastructure: distributed pickles task arguments and results.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from appliance.config import Settings
from appliance.errors import InvalidInput, TrainingFailed

log = logging.getLogger(__name__)
# what the trainer writes to its out dir; explain/ files keep their folder
OUTPUTS = ("model.onnx", "holdout.parquet", "outliers.onnx", "explain/background.parquet",
           "explain/preprocess.json", "explain/booster.json")
SCHEMES = ("tcp", "tls", "ws", "wss", "inproc")
POLL_SECONDS = 0.5


def task_key(run_id: str) -> str:
    """The training task's key on the scheduler; its trials are ``<key>-trial-<i>``."""
    return f"appliance-train-{run_id}"


# -- on the worker ----------------------------------------------------------------------


def train_on_worker(request: dict[str, Any], champion_onnx: bytes | None,
                    beat_seconds: float) -> dict[str, Any]:
    """One training job on a Dask worker: {"result": JSON text, "files": {name: bytes},
    "worker": address}. Runs in the worker's process; imports nothing heavy until here."""
    from distributed import get_worker

    from appliance.train.child.run import empty_result, run_job

    worker = get_worker()
    key = task_key(str(request.get("run_id")))
    done = threading.Event()

    def send(message: dict[str, Any]) -> None:
        try:
            worker.log_event(key, message)
        except Exception:  # a closing worker: the leader notices it is gone
            log.debug("could not send %s", message, exc_info=True)

    def beat() -> None:
        while not done.wait(beat_seconds):
            send({"alive": True})

    threading.Thread(target=beat, daemon=True, name="appliance-train-beat").start()
    try:
        with tempfile.TemporaryDirectory(prefix="appliance-train-") as tmp:
            out = Path(tmp)
            job = {**request, "out_dir": str(out), "parquet_path": str(_dataset_path(request)),
                   "champion_onnx": None}
            if champion_onnx is not None:
                (out / "champion.onnx").write_bytes(champion_onnx)
                job["champion_onnx"] = str(out / "champion.onnx")
            send({"progress": {"stage": "start", "fraction": 0.0}})
            try:
                result = run_job(job, lambda stage, fraction: send(
                    {"progress": {"stage": stage, "fraction": round(float(fraction), 4)}}),
                    map_trials=_trial_mapper(key))
            except Exception as exc:  # like the child: every failure is a result
                result = empty_result()
                result["error"] = {"type": "internal",
                                   "message": f"{type(exc).__name__}: {exc}"[:2000]}
            files = {name: (out / name).read_bytes() for name in OUTPUTS
                     if (out / name).is_file()}
    finally:
        done.set()
    return {"result": json.dumps(result, allow_nan=False, default=str), "files": files,
            "worker": str(worker.address)}


def _dataset_path(request: dict[str, Any]) -> Path:
    """The leader's path when this worker sees it, else the object store's copy."""
    path = Path(str(request.get("parquet_path")))
    key = request.get("parquet_key")
    if path.is_file() or not key:
        return path   # a missing file is run_job's clear error
    from appliance.objects.factory import open_object_store

    return open_object_store(Settings()).local_path(str(key))


def _trial_mapper(key: str) -> Callable[..., list[dict[str, Any]]]:
    """A search's trials as Dask tasks, the fit and validation rows scattered once."""

    def map_trials(score: Callable[..., dict[str, Any]], sets: list[dict[str, Any]],
                   data: Any) -> list[dict[str, Any]]:
        from distributed import worker_client

        with worker_client() as client:   # secedes: this thread waits without a slot
            [shared] = client.scatter([data], hash=False)
            futures = [client.submit(score, params, shared, key=f"{key}-trial-{i}", pure=False)
                       for i, params in enumerate(sets)]
            scores: list[dict[str, Any]] = client.gather(futures)
            return scores

    return map_trials


# -- on the leader ----------------------------------------------------------------------


class DaskTrainer:
    """The leader's side: one client to the scheduler, one training run at a time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.address = check_scheduler(settings.dask_scheduler)
        self._client: Any = None
        self._lock = threading.Lock()
        self._closing = False

    def close(self) -> None:
        self._closing = True
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close(timeout=5)

    def _connect(self) -> Any:
        with self._lock:
            if self._client is None or self._client.status in ("closing", "closed"):
                from distributed import Client

                try:
                    self._client = Client(self.address, set_as_default=False, timeout=min(
                        30.0, self.settings.dask_lost_worker_seconds))
                except (OSError, TimeoutError) as exc:
                    raise TrainingFailed(f"cannot reach the Dask scheduler at {self.address}: "
                                         f"{exc}") from None
            return self._client

    def run(self, run_id: str, request: dict[str, Any],
            beat: Callable[[dict[str, Any] | None], None],
            set_logs: Callable[[str], None]) -> dict[str, Any]:
        """Train on a worker; write its files to ``request["out_dir"]``; return the result
        dict the child would have sent. ``beat(progress or None)`` keeps the run alive."""
        client = self._connect()
        key = task_key(run_id)
        out_dir = Path(request["out_dir"])
        champion = request.get("champion_onnx")
        payload = {k: v for k, v in request.items() if k not in ("parent_pid", "champion_onnx")}
        payload["run_id"] = run_id
        lost = self.settings.dask_lost_worker_seconds
        future = client.submit(train_on_worker, payload,
                               Path(champion).read_bytes() if champion else None,
                               max(0.5, min(5.0, lost / 4)), key=key, pure=False)
        watch = _Watch(key, lost)
        started = time.monotonic()
        try:
            while not future.done():
                if self._closing:
                    raise TrainingFailed("the server stopped")
                if time.monotonic() - started > self.settings.train_timeout_seconds:
                    raise TrainingFailed(f"training took longer than "
                                         f"{self.settings.train_timeout_seconds:g} s; stopped")
                for message in watch.events(client):
                    progress = message.get("progress")
                    beat(progress if isinstance(progress, dict) else None)
                watch.check(client)
                time.sleep(POLL_SECONDS)
            try:
                answer = future.result()
            except Exception as exc:
                raise TrainingFailed(f"training on Dask failed: {type(exc).__name__}: "
                                     f"{str(exc)[:500]}") from None
        except OSError as exc:   # the scheduler went away (distributed's CommClosedError too)
            future.cancel(reason="the scheduler went away", force=True)
            raise TrainingFailed(f"lost the Dask scheduler at {self.address}: "
                                 f"{type(exc).__name__}: {exc}") from None
        except BaseException:
            future.cancel(reason="the run failed or the server stopped", force=True)
            set_logs(f"training on the Dask cluster at {self.address}, task {key}; "
                     f"{watch.summary()}\n")
            raise
        for name, data in answer["files"].items():
            if name in OUTPUTS:   # never a path the worker chose
                path = out_dir / name
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        result: dict[str, Any] = json.loads(answer["result"])
        set_logs(f"trained on Dask worker {answer['worker']} (scheduler {self.address}), "
                 f"task {key}; {watch.summary()}\n")
        return result


class _Watch:
    """Which workers hold a run's tasks, and whether one of them has left the cluster."""

    def __init__(self, key: str, lost_seconds: float) -> None:
        self.key = key
        self.lost_seconds = lost_seconds
        self.main: str | None = None
        self.trial_workers: set[str] = set()
        self.trial_keys: set[str] = set()
        self.seen_events = 0
        self.last_event: float | None = None
        self.lost_at: float | None = None
        self.lost: str | None = None

    def events(self, client: Any) -> list[dict[str, Any]]:
        got = client.get_events(self.key)
        new = [m for _, m in got[self.seen_events:] if isinstance(m, dict)]
        if len(got) > self.seen_events:
            self.last_event = time.monotonic()
        self.seen_events = len(got)
        return new

    def check(self, client: Any) -> None:
        now = time.monotonic()
        alive = set(client.scheduler_info()["workers"])
        if self.main is not None and self.main not in alive:
            raise TrainingFailed(f"the Dask worker {self.main} training this run left the "
                                 "cluster (lost mid-training)")
        for gone in sorted(self.trial_workers - alive):
            if self.lost_at is None:
                self.lost_at, self.lost = now, gone
                log.warning("Dask worker %s holding trials of %s left the cluster", gone,
                            self.key)
        if self.lost_at is not None and now - self.lost_at > self.lost_seconds:
            raise TrainingFailed(f"the Dask worker {self.lost} holding this run's search trials "
                                 f"left the cluster and the run did not finish within "
                                 f"{self.lost_seconds:g} s")
        if self.last_event is not None and now - self.last_event > self.lost_seconds:
            raise TrainingFailed(f"the training task on Dask sent nothing for "
                                 f"{self.lost_seconds:g} s (its worker is lost or stuck)")
        for address, keys in client.processing().items():
            for k in keys:
                if k == self.key:
                    self.main = address
                elif str(k).startswith(self.key + "-trial-"):
                    self.trial_workers.add(address)
                    self.trial_keys.add(str(k))

    def summary(self) -> str:
        workers = sorted(self.trial_workers)
        return (f"{len(self.trial_keys)} search trials seen running as Dask tasks on "
                f"{len(workers)} workers ({', '.join(workers) or 'none'})")


def check_scheduler(address: str | None) -> str:
    """``APPLIANCE_DASK_SCHEDULER``: a scheduler address such as tcp://host:8786."""
    text = (address or "").strip()
    parts = urlsplit(text)
    if parts.scheme not in SCHEMES or not (parts.netloc or parts.scheme == "inproc"):
        raise InvalidInput(f"APPLIANCE_DASK_SCHEDULER must be a scheduler address such as "
                           f"tcp://host:8786, got {text[:100]!r}",
                           detail={"field": "dask_scheduler"})
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise InvalidInput("APPLIANCE_DASK_SCHEDULER takes host and port only",
                           detail={"field": "dask_scheduler"})
    return text
