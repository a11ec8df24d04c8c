"""Training runs: a job file in, a tracked run and a registered ONNX model version out.

The server validates the job against the dataset (so a bad file is a 4xx and
no run is left behind), queues a run, and trains one job at a time in a child
process (``python -m appliance.train.child.worker``; on a Dask worker when
``APPLIANCE_DASK_SCHEDULER`` is set: ``appliance.train.dask_runner``) that reads the version's
immutable Parquet file and writes ``model.onnx`` and ``holdout.parquet`` to a
folder the server chose; only JSON lines come back. The server then records
the metrics, trials, artifacts and the model version, and applies the
promotion gate. A run interrupted by a restart is re-queued once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.childproc import ChildChannel, ChildGone, ReplyTimeout, ReplyTooBig, child_env
from appliance.config import Settings
from appliance.datasets.service import DatasetService
from appliance.domain.events import JobFinished
from appliance.domain.principal import Principal
from appliance.domain.registry import (
    CHALLENGER,
    CHAMPION,
    Gate,
    ModelVersion,
    VersionStatus,
    beats,
    human_override,
)
from appliance.domain.runs import Run, RunDetail, RunKind, RunProgress, RunStatus
from appliance.durable import require_free_disk
from appliance.errors import ApplianceError, InvalidInput, NotFound, TrainingFailed
from appliance.events import EventBus
from appliance.failpoints import failpoint
from appliance.registry.service import RegistryService
from appliance.runs.service import RunService
from appliance.store.tables import RunRow
from appliance.train.child.explainer import ARTIFACTS as EXPLAIN_ARTIFACTS
from appliance.train.files import git_commit, log_tail
from appliance.train.spec import JobSpec

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 2
_MAX_LINE = 64 << 20


class TrainingService:
    def __init__(self, settings: Settings, runs: RunService, registry: RegistryService,
                 datasets: DatasetService, *, events: EventBus) -> None:
        self.settings = settings
        self.runs = runs
        self.registry = registry
        self.datasets = datasets
        # JobFinished per run: a failure raises an alert, a success clears it; durations
        self.events = events
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="training")
        self._children: set[ChildChannel] = set()
        self._lock = threading.Lock()
        self._closing = False
        self._local: set[uuid.UUID] = set()  # runs this process queued or trains
        self._dask: Any = None  # appliance.train.dask_runner.DaskTrainer, once it trains
        self.heartbeat_seconds = 15.0  # a running child's run beats this often

    def close(self) -> None:
        # A run cut off by shutdown stays `running`: the next start marks it interrupted
        # and re-queues it, exactly as after a crash.
        self._closing = True
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            for child in list(self._children):
                child.kill()
        if self._dask is not None:
            self._dask.close()

    # -- submitting ----------------------------------------------------------------

    def submit(self, job: JobSpec | str, *, by: Principal | str,
               dataset_version: int | None = None) -> Run:
        """Check a job against its dataset and queue a run; 4xx errors leave no run.

        ``job`` is a parsed ``JobSpec`` (the scheduler's loop passes the one its job
        file loader made) or job-file text (``POST /api/v1/runs``, ``appliance train``),
        parsed here once. ``dataset_version`` pins the data (the new-data trigger); by
        default the dataset's current version is used."""
        plan = self._check(job if isinstance(job, JobSpec) else _parse(job), dataset_version)
        self._check_disk(plan)
        spec = plan.spec
        row = RunRow(
            name=spec.name, kind=RunKind.train.value, status=RunStatus.queued.value,
            experiment=spec.name, dataset=spec.dataset, dataset_version=plan.dataset_version,
            spec=spec.text(), seed=spec.split.seed, params={}, tags={"job": spec.name},
            metrics={},
        )
        principal = by if isinstance(by, Principal) else Principal(str(by), _system_role())
        out = self.runs.queue(row, by=principal)
        self._local.add(row.id)
        self._executor.submit(self._execute, row.id, by, spec)
        return out

    def _check_disk(self, plan: TrainingPlan) -> None:
        """The free-disk guard (DESIGN §7): room for the floor plus the run's files."""
        parquet = self.datasets.parquet_path(plan.spec.dataset, plan.dataset_version)
        try:
            size = parquet.stat().st_size
        except OSError:
            size = 0
        require_free_disk(self.settings.home, floor_mb=self.settings.min_free_disk_mb,
                          extra_bytes=4 * size, doing="training")

    def wait(self, run_id: str, *, timeout: float, poll: float = 0.5,
             beat: Any = None) -> RunDetail:
        """Block until a run finishes (or ``timeout`` passes) and return it."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.runs.show(run_id)
            if run.finished or self._closing:
                return run
            if time.monotonic() > deadline:
                raise TrainingFailed(f"run {run_id} did not finish within {timeout:g} s",
                                     detail={"run_id": run_id})
            if beat is not None:
                beat()
            time.sleep(poll)

    def runs_for(self, job: str, dataset: str, dataset_version: int) -> list[Run]:
        """Train runs of ``job`` on one dataset version, oldest first."""
        found = self.runs.list_runs(kind=RunKind.train.value, experiment=job, dataset=dataset,
                                    limit=500, sort="created_at").items
        return [r for r in found if r.dataset_version == dataset_version]

    def _check(self, spec: JobSpec, dataset_version: int | None = None, *,
               check_params: bool = True) -> TrainingPlan:
        """The job against its dataset version (and its estimator, unless done already)."""
        from appliance.train.spec import check_job

        if check_params:
            check_job(spec)
        try:
            current = self.datasets.current_version(spec.dataset)
        except NotFound:
            raise InvalidInput(f"dataset {spec.dataset!r} does not exist",
                               detail={"field": "dataset"}) from None
        number = current if dataset_version is None else dataset_version
        if number is None:
            raise InvalidInput(f"dataset {spec.dataset!r} has no accepted version to train on",
                               detail={"field": "dataset"})
        version = self.datasets.version(spec.dataset, number)
        columns = set(version.column_names())
        if spec.target not in columns:
            raise InvalidInput(f"target {spec.target!r} is not a column of "
                               f"{spec.dataset} v{number}", detail={"field": "target"})
        for name in (spec.features.include or []) + (spec.features.exclude or []):
            if name not in columns:
                raise InvalidInput(f"feature {name!r} is not a column of {spec.dataset} "
                                   f"v{number}", detail={"field": "features"})
        for name in spec.fairness.sensitive if spec.fairness else []:
            if name not in columns:
                raise InvalidInput(f"sensitive column {name!r} is not a column of "
                                   f"{spec.dataset} v{number}", detail={"field": "fairness"})
        target = version.column_summary(spec.target)
        if target and target.get("n_unique") == 1:
            raise InvalidInput(f"target {spec.target!r} has a single value in "
                               f"{spec.dataset} v{number}: nothing to learn",
                               detail={"field": "target"})
        return TrainingPlan(spec, int(number))

    # -- executing -----------------------------------------------------------------

    def recover(self, *, stale_before: dt.datetime | None = None) -> None:
        """Runs a dead process left queued or running are re-queued once. ``stale_before``
        (scale-out): only those whose heartbeat is older, never this process's own."""
        for row in self.runs.unfinished():
            if row.kind != RunKind.train.value or row.id in self._local:
                continue
            if stale_before is not None and _aware(row.heartbeat_at) >= stale_before:
                continue  # alive: another host's run
            self._local.add(row.id)
            if row.status == RunStatus.running.value:
                self.runs.transition(row.id, RunStatus.interrupted, error="the server stopped")
            elif row.status == RunStatus.queued.value and row.attempts == 0:
                self._executor.submit(self._execute, row.id, "system", None)
                continue
            else:
                self.runs.transition(row.id, RunStatus.interrupted, error="the server stopped")
            if row.attempts < MAX_ATTEMPTS:
                self.runs.transition(row.id, RunStatus.queued, error=None)
                self._executor.submit(self._execute, row.id, "system", None)
            else:
                log.warning("run %s was interrupted %d times; not re-queued", row.id, row.attempts)

    def _execute(self, run_id: uuid.UUID, by: Principal | str, spec: JobSpec | None) -> None:
        """Train one queued run: ``spec`` is the job as submitted, or None for a run
        recovered after a restart (then its stored text is parsed)."""
        out_dir = self.settings.runs_dir / str(run_id)
        started = time.perf_counter()
        status = RunStatus.failed
        job: str | None = None
        error: str | None = None
        if self.runs.show(str(run_id)).status is not RunStatus.queued:
            self._local.discard(run_id)
            return  # another host has it
        try:
            self.runs.transition(run_id, RunStatus.running)
            detail = self.runs.show(str(run_id))
            # the estimator checks ran at submit; a recovered run's text is parsed afresh
            plan = self._check(spec if spec is not None else _parse(detail.spec or ""),
                               detail.dataset_version, check_params=spec is None)
            result = self._train(run_id, plan, out_dir)
            warnings = [str(w) for w in result.get("warnings") or []]
            if warnings:
                self.runs.set_warnings(run_id, warnings)
            if not result.get("ok"):
                err = result.get("error") or {}
                raise TrainingFailed(str(err.get("message") or "training failed"),
                                     detail={"field": err.get("field")})
            failpoint("train.before_record")
            self._record(run_id, plan, result, out_dir, by)
            failpoint("train.after_record")
            environment = {**(result.get("environment") or {}),
                           "git_commit": git_commit(self.settings.resolved_jobs_dir)}
            self.runs.transition(run_id, RunStatus.succeeded, environment=environment,
                                 progress=None)
            status = RunStatus.succeeded
            job = plan.spec.name
        except Exception as exc:  # a job never takes the service down with it
            if self._closing:
                return
            message = exc.message if isinstance(exc, ApplianceError) else f"{type(exc).__name__}: {exc}"
            log.warning("training run %s failed: %s", run_id, message)
            try:
                self.runs.transition(run_id, RunStatus.failed, error=message[:4000],
                                     progress=None)
            except ApplianceError:
                log.exception("could not mark run %s failed", run_id)
            error = message[:2000]
            job = self.runs.show(str(run_id)).name
        finally:
            self._local.discard(run_id)
            shutil.rmtree(out_dir, ignore_errors=True)
            if job is not None and not self._closing:
                self.events.publish(JobFinished(
                    job, RunKind.train.value, status.value, time.perf_counter() - started,
                    error=error, run_id=str(run_id)))

    def _train(self, run_id: uuid.UUID, plan: TrainingPlan, out_dir: Path) -> dict[str, Any]:
        out_dir.mkdir(parents=True, exist_ok=True)
        parquet = self.datasets.parquet_path(plan.spec.dataset, plan.dataset_version)
        champion_onnx = None
        model = plan.spec.name
        try:
            current = self.registry.aliases(model).get(CHAMPION)
        except NotFound:
            current = None
        if current is not None:
            champion_onnx = out_dir / "champion.onnx"
            champion_onnx.write_bytes(self.registry.onnx_bytes(model, current))
        request = {
            "job": plan.spec.model_dump(mode="json"),  # the one serialisation, for the child
            "parquet_path": str(parquet),
            "parquet_key": self.datasets.parquet_key(plan.spec.dataset, plan.dataset_version),
            "out_dir": str(out_dir),
            "champion_onnx": str(champion_onnx) if champion_onnx else None,
            "memory_mb": self.settings.train_memory_mb,
            "parent_pid": os.getpid(),
        }
        plan.champion_version = current
        if self.settings.dask_scheduler:  # scale-out: a Dask worker trains
            return self._run_dask(run_id, request)
        return self._run_child(run_id, request)

    def _run_dask(self, run_id: uuid.UUID, request: dict[str, Any]) -> dict[str, Any]:
        from appliance.train.dask_runner import DaskTrainer

        with self._lock:
            self._dask = self._dask or DaskTrainer(self.settings)
        return self._dask.run(str(run_id), request, lambda p: self.runs.heartbeat(
            run_id, _progress(p) if p else None), lambda t: self.runs.set_logs(run_id, t))

    def _run_child(self, run_id: uuid.UUID, request: dict[str, Any]) -> dict[str, Any]:
        """Start the trainer, send it the request, and read progress lines until its result
        (``appliance.childproc.ChildChannel``: the deadline, the size cap and the kill)."""
        log_path = Path(request["out_dir"]) / "train.log"
        with log_path.open("wb") as log_file:  # the child's stderr: kept as the run's logs
            child = ChildChannel.spawn(
                [sys.executable, "-m", "appliance.train.child.worker"],
                env=child_env(keep_callers_arenas=False), max_line=_MAX_LINE, stderr=log_file)
        with self._lock:
            self._children.add(child)
        timeout = self.settings.train_timeout_seconds
        deadline = time.monotonic() + timeout
        beating = threading.Event()  # a live run beats: never taken for a dead host's
        threading.Thread(target=self._beat, args=(run_id, beating), daemon=True).start()
        try:
            child.send(request)
            child.close_input()
            while True:
                try:
                    line = child.read_line(deadline)
                except ReplyTimeout:
                    raise TrainingFailed(f"training took longer than {timeout:g} s; "
                                         "stopped") from None
                except ReplyTooBig:
                    raise TrainingFailed("the trainer sent an oversized reply; stopped") from None
                except ChildGone:
                    raise TrainingFailed(f"the trainer process died (exit status "
                                         f"{child.wait()})") from None
                message = json.loads(line) if line.strip() else {}
                if not isinstance(message, dict):
                    continue
                if "progress" in message and isinstance(message["progress"], dict):
                    self.runs.heartbeat(run_id, _progress(message["progress"]))
                elif "result" in message and isinstance(message["result"], dict):
                    child.wait(timeout=30)
                    result: dict[str, Any] = message["result"]
                    return result
        finally:
            beating.set()
            child.stop(graceful=False)
            with self._lock:
                self._children.discard(child)
            self.runs.set_logs(run_id, log_tail(log_path))

    def _beat(self, run_id: uuid.UUID, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_seconds):
            try:
                self.runs.heartbeat(run_id)
            except Exception:
                log.debug("heartbeat of run %s failed", run_id, exc_info=True)

    # -- recording -------------------------------------------------------------------

    def _record(self, run_id: uuid.UUID, plan: TrainingPlan, result: dict[str, Any],
                out_dir: Path, by: Principal | str) -> None:
        spec = plan.spec
        metrics = {k: v for k, v in (result.get("metrics") or {}).items()
                   if isinstance(v, int | float)}
        principal = by if isinstance(by, Principal) else Principal(str(by), _system_role())
        existing = self.registry.version_for_run(run_id)
        if existing is not None:  # recorded before a crash: never a second version
            log.info("run %s already registered %s v%s", run_id, existing.model, existing.number)
            self._apply_gate(spec, self._gate(plan, result), existing, existing.status, principal)
            return
        params = {"estimator": result.get("estimator"), **(result.get("params") or {})}
        points = [{"key": k, "value": v, "step": 0} for k, v in metrics.items()]
        points += [p for p in result.get("metric_steps") or [] if isinstance(p, dict)]
        tags = {"task": result.get("task"), "flavor": result.get("flavor")}
        data = result.get("data")
        if isinstance(data, dict) and data.get("mode"):
            tags["data_mode"] = str(data["mode"])   # memory | external | sample
        self.runs.log_batch(str(run_id), params=params, metrics=points, tags=tags)
        for i, trial in enumerate(result.get("trials") or []):
            child = RunRow(name=f"{spec.name}-trial-{i}", kind=RunKind.trial.value,
                           status=RunStatus.queued.value, parent_id=run_id,
                           experiment=spec.name, dataset=spec.dataset,
                           dataset_version=plan.dataset_version, seed=spec.split.seed,
                           params={}, tags={"trial": str(i)}, metrics={})
            self.runs.queue(child, by=principal)
            self.runs.transition(child.id, RunStatus.running)
            self.runs.log_batch(str(child.id), params=trial.get("params") or {},
                                metrics=[{"key": k, "value": v} for k, v
                                         in (trial.get("metrics") or {}).items()])
            self.runs.transition(child.id, RunStatus.succeeded)
        # the explanations' files (appliance.train.child.explainer) keep their explain/ path
        for name in ("model.onnx", "holdout.parquet", "outliers.onnx", *EXPLAIN_ARTIFACTS):
            path = out_dir / name
            if path.exists():
                with path.open("rb") as fh:
                    self.runs.add_artifact_at(str(run_id), name, fh)
        parity = result.get("parity") or {}
        if not parity.get("passed"):
            worst = json.dumps(parity.get("worst_rows") or [], default=str)[:1500]
            raise TrainingFailed(f"ONNX parity failed (max abs diff {parity.get('max_abs_diff')}, "
                                 f"tolerance {parity.get('tolerance')}); worst rows: {worst}")
        gate = self._gate(plan, result)
        override = self._human_override(spec.name, spec.promote.alias or CHAMPION)
        if gate.passed and override:
            gate = gate.model_copy(update={"held_because": override})
        status = (VersionStatus.pending_approval
                  if gate.passed and spec.promote.require_approval else VersionStatus.ready)
        detector = out_dir / "outliers.onnx"
        version = self.registry.register(
            model=spec.name, onnx_bytes=(out_dir / "model.onnx").read_bytes(),
            outlier_onnx=detector.read_bytes() if detector.is_file() else None,
            flavor=str(result.get("flavor")), task=result.get("task"), run_id=run_id,
            signature=result.get("signature"), parity=parity, metrics=metrics,
            fairness=result.get("fairness"), dataset=spec.dataset,
            dataset_version=plan.dataset_version, by=principal, status=status,
            facts={"purpose": spec.description, "limitations": list(spec.limitations),
                   "contract_version": self.datasets.version(
                       spec.dataset, plan.dataset_version).contract_version,
                   "gate": gate.model_dump(), "importances": result.get("importances"),
                   "outliers": result.get("outliers"),
                   "warnings": [str(w) for w in result.get("warnings") or []]},
        )
        failpoint("train.after_register")
        self._apply_gate(spec, gate, version, status, principal)

    def _apply_gate(self, spec: JobSpec, gate: Gate, version: ModelVersion,
                    status: VersionStatus, principal: Principal) -> None:
        alias = spec.promote.alias or CHAMPION
        aliases = self.registry.aliases(spec.name)
        number = version.number
        reason = (f"gate: {gate.metric} {gate.value} vs champion "
                  f"{gate.champion_value} (min_delta {gate.min_delta})")
        if gate.held_because and aliases.get(alias) != number:
            if aliases.get(CHALLENGER) != number:
                self.registry.set_alias(spec.name, CHALLENGER, number,
                                        reason=f"held: {gate.held_because}; " + reason,
                                        by=principal)
            return
        if gate.passed and status is VersionStatus.ready:
            if aliases.get(alias) == number:
                return
            if self._same_model(spec.name, aliases.get(alias), version):
                return  # an identical retrain (same ONNX bytes): nothing to move
            self.registry.set_alias(spec.name, alias, number, reason=reason, by=principal)
        elif gate.passed and aliases.get(CHALLENGER) != number:
            self.registry.set_alias(spec.name, CHALLENGER, number,
                                    reason="held for approval: " + reason, by=principal)

    def _same_model(self, model: str, current: int | None, version: ModelVersion) -> bool:
        """The alias already serves these exact ONNX bytes (a retrain on the same data)."""
        if current is None:
            return False
        return self.registry.version(model, current).onnx_sha256 == version.onnx_sha256

    def _human_override(self, model: str, alias: str) -> str | None:
        try:
            return human_override(alias, self.registry.history(model, alias))
        except NotFound:
            return None

    def _gate(self, plan: TrainingPlan, result: dict[str, Any]) -> Gate:
        """The promotion gate: the candidate against the champion on the job's metric."""
        metric = str(plan.spec.metric)
        value = (result.get("metrics") or {}).get(metric)
        champion_value = result.get("champion_metric")
        basis = "native"
        if champion_value is not None and result.get("challenger_metric") is not None:
            # like with like: both ONNX-scored on the same holdout, so a tie is exact
            value, basis = result["challenger_metric"], "onnx"
        min_delta = float(plan.spec.promote.min_delta or 0.0)
        fairness = result.get("fairness") or {}
        fair = fairness.get("passed", True) if fairness else True
        passed = (value is not None and fair
                  and beats(metric, float(value), champion_value, min_delta))
        return Gate(metric=metric, value=value, champion_version=plan.champion_version,
                    champion_value=champion_value, min_delta=min_delta, fairness_passed=fair,
                    basis=basis, passed=bool(passed))


@dataclass
class TrainingPlan:
    """One run's job, checked against the dataset version it trains on; the champion it
    is compared with is known once the trainer starts."""

    spec: JobSpec
    dataset_version: int
    champion_version: int | None = None


def _parse(job_text: str) -> JobSpec:
    """A job file's text, parsed once (the estimator checks come with ``_check``)."""
    from appliance.train.spec import parse_job

    if not isinstance(job_text, str) or len(job_text) > 1_000_000:
        raise InvalidInput("a job file is YAML text of at most 1 MB")
    return parse_job(job_text, check_params=False)


def _progress(p: dict[str, Any]) -> RunProgress:
    fraction = p.get("fraction")
    return RunProgress(stage=str(p.get("stage", ""))[:100],
                       fraction=float(fraction) if isinstance(fraction, int | float) else None)


def _system_role() -> Any:
    from appliance.domain.roles import Role

    return Role.admin


def _aware(at: dt.datetime | None) -> dt.datetime:
    if at is None:
        return dt.datetime.min.replace(tzinfo=dt.UTC)
    return at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
