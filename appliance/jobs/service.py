"""Scheduled jobs: built-ins, job-file jobs, the run ledger, pause/resume/run-now, recovery.

Job ids are dotted names:

- ``inbox.scan``: the inbox guard (watcher alive, full scan);
- ``housekeeping.checkpoint`` / ``housekeeping.retention`` (and
  ``housekeeping.backup`` when a backup service is wired): bodies given by the
  composition root (the retention windows are ``appliance.privacy.retention``'s);
- ``train.<job>``: the continuous-training loop of a job file
  (``schedule.train``: ``on: new_data``, ``cron`` or ``every``);
- ``drift.<job>``: the scheduled drift and live-metric check
  (``schedule.drift``: ``every``/``cron``, ``window``, ``p_val``, thresholds);
- ``canary.<job>``: the canary verdict and its rule (``promote.canary``).

Every run is a ledger row. A recurring tick that finds its job still running is
recorded ``skipped``; queued runs (new data, run-now, retries, recovery) wait
their turn instead. A failed run is retried with backoff up to the job's
``retries``. Every finished run is published as a ``JobFinished`` event
(alerts raise ``job_failed`` when no retry is left; metrics time it). At start,
rows a dead process left ``running`` become ``interrupted`` and are re-queued
once.

The services a job-file job needs (training, datasets, registry, drift,
serving) come in as ``JobCollaborators``, each a Protocol declared in
``appliance.jobs.ports``; a job file is parsed once, and its ``JobSpec`` is what
the loop hands to training.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.audit import Auditor
from appliance.domain.canary import CanaryAction
from appliance.domain.events import JobFinished
from appliance.domain.jobs import (
    DriftJobResult,
    Job,
    JobFileError,
    JobRun,
    JobRunStatus,
    JobsReload,
    LoopResult,
    Trigger,
    backoff_seconds,
    check_job_id,
)
from appliance.domain.principal import Principal
from appliance.domain.roles import Role
from appliance.errors import ApplianceError, Conflict, NotFound
from appliance.events import EventBus
from appliance.failpoints import failpoint
from appliance.jobs import files as jobfiles
from appliance.jobs.canary import canary_job, rule_of, scheduled_canary
from appliance.jobs.defs import JobDef, RunContext, jsonable, timing
from appliance.jobs.ledger import JobLedger, captured_logs, heartbeats
from appliance.jobs.ports import JobCollaborators
from appliance.jobs.reading import JobReading
from appliance.jobs.scheduler import Scheduler, TriggerSpec
from appliance.store.db import Store
from appliance.train.spec import JobSpec

log = logging.getLogger(__name__)
SYSTEM = "scheduler"


class JobService(JobReading):
    def __init__(self, store: Store, auditor: Auditor, scheduler: Scheduler, ledger: JobLedger,
                 *, jobs_dir: Path, events: EventBus,
                 collaborators: JobCollaborators | None = None,
                 heartbeat_seconds: float = 15.0,
                 train_timeout_seconds: float = 3600.0,
                 leading: Callable[[], bool] = lambda: True) -> None:
        self.store = store
        self.auditor = auditor
        self.scheduler = scheduler
        self.ledger = ledger
        self.jobs_dir = jobs_dir
        self.events = events  # JobFinished for every run
        self.collaborators = collaborators  # None: built-in jobs only
        self.heartbeat_seconds = heartbeat_seconds
        self.train_timeout_seconds = train_timeout_seconds
        self._defs: dict[str, JobDef] = {}
        self._files: dict[Path, jobfiles.LoadedFile] = {}
        self._reload_lock = threading.Lock()
        self._closing = False
        # scale-out: only the lease holder runs jobs (a follower records, the leader runs)
        self.leading = leading
        self._local: set[str] = set()  # ledger rows this process queued or runs
        scheduler.on_skipped = self._skipped

    # -- definitions -------------------------------------------------------------

    def add_builtin(self, job_id: str, fn: Callable[[], Any], trigger: TriggerSpec, *,
                    description: str, retries: int = 0, role: Role = Role.operator) -> None:
        check_job_id(job_id)
        self._define(JobDef(id=job_id, kind="builtin", run=lambda ctx: fn(), trigger=trigger,
                            retries=retries, description=description, role=role))

    def _define(self, job: JobDef) -> None:
        old = self._defs.get(job.id)
        if old is not None:
            job.lock = old.lock  # a reload never lets two runs of one job overlap
        self._defs[job.id] = job
        if job.trigger is not None:
            self.scheduler.add(job.id, lambda: self._tick(job.id), job.trigger)
        else:
            self.scheduler.remove(job.id)

    def _undefine(self, job_id: str) -> None:
        self._defs.pop(job_id, None)
        self.scheduler.remove(job_id)

    def reload(self) -> JobsReload:
        """Re-read the jobs folder; only files whose fingerprint changed are parsed again."""
        with self._reload_lock:
            seen = jobfiles.scan(self.jobs_dir)
            changed = False
            for path in list(self._files):
                if path not in seen:
                    for job_id in self._files.pop(path).jobs:
                        self._undefine(job_id)
                    log.info("job file %s removed; its jobs are gone", path.name)
                    changed = True
            for path, stat in seen.items():
                old = self._files.get(path)
                if old is not None and old.stat == stat:
                    continue
                loaded = jobfiles.load(path, stat)
                if old is not None and loaded.ok and old.digest == loaded.digest:
                    old.stat = stat  # touched, same bytes
                    continue
                for job_id in old.jobs if old is not None else []:
                    self._undefine(job_id)
                if loaded.ok:
                    loaded.jobs = self._define_file(loaded)
                    log.info("job file %s loaded: %s", path.name, ", ".join(loaded.jobs) or "-")
                else:
                    assert loaded.error is not None
                    log.warning("job file %s is invalid (not scheduled): %s", path.name,
                                loaded.error.message)
                self._files[path] = loaded
                changed = True
            if changed:
                self._apply_pauses()
        return JobsReload(changed=changed, files=[f.public() for f in self._files.values()])

    def _define_file(self, jf: jobfiles.LoadedFile) -> list[str]:
        spec = jf.spec
        assert spec is not None
        clash = [j for f in self._files.values() if f.path != jf.path
                 for j in f.jobs if j.split(".", 1)[1] == spec.name]
        if clash:
            jf.error = JobFileError(
                message=f"job name {spec.name!r} is already defined by another file",
                line=None, field="name")
            return []
        ids = []
        train = spec.schedule.train if spec.schedule else None
        train_id = f"train.{spec.name}"
        self._define(JobDef(
            id=train_id, kind="train",
            run=functools.partial(self._train_loop, spec=spec),
            trigger=timing(train.cron, train.every) if train else None,
            new_data=spec.dataset if train is not None and train.on == "new_data" else None,
            retries=train.retries if train else 1, source=str(jf.path),
            description=f"train {spec.name} on {spec.dataset}: train, evaluate, register, "
                        "promote"))
        ids.append(train_id)
        drift = spec.schedule.drift if spec.schedule else None
        if drift is not None:
            drift_id = f"drift.{spec.name}"
            self._define(JobDef(
                id=drift_id, kind="drift",
                run=functools.partial(self._drift_check, spec=spec),
                trigger=timing(drift.cron, drift.every), retries=0, source=str(jf.path),
                description=f"drift and live metrics of {spec.name} over {drift.window}"))
            ids.append(drift_id)
        canary = canary_job(spec, str(jf.path), functools.partial(self._canary_check, spec=spec))
        if canary is not None:
            self._define(canary)
            ids.append(canary.id)
        return ids

    def sync_pauses(self) -> None:
        """Scale-out, on the leader: follow the pauses and resumes made through any host
        (the pause switch is in the store; this scheduler only knew its own)."""
        self._apply_pauses()

    def _apply_pauses(self) -> None:
        paused = self.ledger.paused()
        for job_id in self._defs:
            if job_id in paused:
                self.scheduler.pause(job_id)
            else:
                self.scheduler.resume(job_id)

    # -- lifecycle (serve process only) ------------------------------------------

    def recover(self, *, stale_before: dt.datetime | None = None) -> list[JobRun]:
        """At start, before anything queues: rows left queued or running by a dead
        process become interrupted; each is re-queued once (never a recovery of a
        recovery). ``stale_before`` (scale-out): only rows whose heartbeat is older,
        never this process's own rows nor another live host's (docs/scale-out.md)."""
        requeued = []
        for row in self.ledger.interrupt_unfinished(stale_before=stale_before,
                                                    keep=frozenset(self._local)):
            job = self._defs.get(row.job)
            if job is None:
                continue
            if row.trigger == Trigger.recovery:
                log.warning("job run %s of %s was interrupted again; not re-queued",
                            row.id, row.job)
                self.events.publish(JobFinished(row.job, job.kind,
                                                JobRunStatus.interrupted.value, None,
                                                error="interrupted twice by a restart"))
                continue
            requeued.append(self._enqueue(row.job, Trigger.recovery, like=row,
                                          attempt=row.attempt + 1, retry_of=row.id))
        return requeued

    def reconcile(self) -> list[JobRun]:
        """Queue the loop for every dataset version a new-data job has not handled yet
        (covers a crash between accepting a file and queuing its run)."""
        queued: list[JobRun] = []
        if self.collaborators is None:
            return queued
        datasets = self.collaborators.datasets
        for job in list(self._defs.values()):
            if not job.new_data:
                continue
            try:
                current = datasets.current_version(job.new_data)
            except NotFound:
                continue
            if current is not None:
                out = self.on_new_data(job.new_data, int(current), jobs=[job])
                queued.extend(out)
        return queued

    def adopt(self) -> list[JobRun]:
        """Scale-out, on the leader: run the queued rows no process here queued (queued
        through a follower by new data or by hand, or left by a deposed leader). Each is
        claimed queued -> running by one host only (``JobLedger.begin``)."""
        adopted = []
        for row in self.ledger.page(status=JobRunStatus.queued.value, limit=500).items:
            if row.id in self._local or row.job not in self._defs:
                continue
            self._local.add(row.id)
            self.scheduler.run_once(functools.partial(self._run_queued, row), name=row.job)
            adopted.append(row)
        return adopted

    def close(self) -> None:
        self._closing = True

    # -- triggers ----------------------------------------------------------------

    def on_new_data(self, dataset: str, version: int,
                    jobs: list[JobDef] | None = None) -> list[JobRun]:
        """A dataset version was accepted: queue each new-data job for it, once."""
        out = []
        paused = self.ledger.paused()
        for job in jobs if jobs is not None else list(self._defs.values()):
            if job.new_data != dataset:
                continue
            if job.id in paused:
                log.info("%s is paused: %s@%s is left for when it resumes", job.id, dataset,
                         version)
                continue
            key = f"{job.id}:{dataset}@{version}"
            if not self.leading():
                log.info("%s@%s: %s is queued by the leader host", dataset, version, job.id)
                continue
            if self._handled(job, key, dataset, version):
                continue
            self._supersede(job.id, dataset, version)
            out.append(self._enqueue(job.id, Trigger.new_data, key=key, dataset=dataset,
                                     dataset_version=version))
        return out

    def _supersede(self, job_id: str, dataset: str, version: int) -> None:
        """Newer data makes a loop still waiting for an older version pointless: the latest
        version is what gets trained when data arrives faster than training."""
        for old in self.ledger.queued_for_older_versions(job_id, dataset, version):
            self.ledger.finish(old.id, JobRunStatus.skipped, duration_ms=None,
                               error=f"superseded by {dataset}@{version}")

    def _handled(self, job: JobDef, key: str, dataset: str, version: int) -> bool:
        if self.ledger.keyed(key):
            return True  # queued, running, done or failed: never a second loop for it
        if self.collaborators is None:
            return False
        name = job.id.removeprefix("train.")
        runs = self.collaborators.training.runs_for(name, dataset, version)
        return any(r.status in ("queued", "running", "succeeded") for r in runs)

    def run_now(self, job_id: str, *, by: Principal) -> JobRun:
        job = self._job(job_id, by=by)
        with self.store.write() as s:
            self.auditor.record(s, by, "job.run", f"job:{job.id}",
                                after={"trigger": Trigger.manual.value})
        return self._enqueue(job.id, Trigger.manual)

    def run_here(self, job_id: str, *, by: Principal) -> JobRun:
        """Run a job in this process and wait for it (the CLI when no server is up)."""
        job = self._job(job_id, by=by)
        with self.store.write() as s:
            self.auditor.record(s, by, "job.run", f"job:{job.id}",
                                after={"trigger": Trigger.manual.value})
        row = self.ledger.queue(job.id, Trigger.manual.value)
        self._run_queued(row, here=True)
        return self.ledger.get(row.id)

    def pause(self, job_id: str, *, by: Principal) -> Job:
        return self._set_paused(job_id, True, by)

    def resume(self, job_id: str, *, by: Principal) -> Job:
        return self._set_paused(job_id, False, by)

    def _set_paused(self, job_id: str, paused: bool, by: Principal) -> Job:
        from appliance.store import jobs as q

        job = self._job(job_id, by=by)
        was = job.id in self.ledger.paused()
        with self.store.write() as s:
            q.set_paused(s, job.id, paused=paused, by=by.actor, at=self.ledger.clock())
            self.auditor.record(s, by, "job.pause" if paused else "job.resume", f"job:{job.id}",
                                before={"paused": was}, after={"paused": paused})
        if paused:
            self.scheduler.pause(job.id)
        else:
            self.scheduler.resume(job.id)
            if job.new_data:  # catch up on the newest data that arrived while paused
                self.reconcile()
        return self.job(job.id)

    # -- running -----------------------------------------------------------------

    def _tick(self, job_id: str) -> None:
        """A recurring fire: runs now, or is recorded skipped if the job is still going."""
        job = self._defs.get(job_id)
        if job is None or self._closing:
            return
        trigger = Trigger.cron if job.trigger and job.trigger.kind == "cron" else Trigger.interval
        slot = self.scheduler.slot(job.id)
        if not job.lock.acquire(blocking=False):
            self._skipped(job.id, "its previous run was still going", slot)
            return
        try:
            if not self.leading():
                return  # deposed: the scheduler is being stopped
            if job.id in self.ledger.paused():  # paused through another host (scale-out)
                self.scheduler.pause(job.id)
                return
            try:
                row = self.ledger.start(job.id, trigger.value, slot=slot)
            except Conflict:
                log.warning("scheduled job %s: the tick for %s is already recorded by "
                            "another host; not run here", job.id,
                            slot.isoformat() if slot else "now")
                return
            self._local.add(row.id)
            self._execute(job, row)
        finally:
            job.lock.release()

    def _skipped(self, job_id: str, why: str, slot: dt.datetime | None = None) -> None:
        job = self._defs.get(job_id)
        if job is None:
            return
        trigger = Trigger.cron if job.trigger and job.trigger.kind == "cron" else Trigger.interval
        try:
            self.ledger.skipped(job_id, trigger.value, why, slot=slot)
        except Conflict:  # another host has that slot: it ran or skipped it there
            log.info("scheduled job %s: slot %s already recorded by another host", job_id,
                     slot)

    def _enqueue(self, job_id: str, trigger: Trigger, *, key: str | None = None,
                 dataset: str | None = None, dataset_version: int | None = None,
                 like: JobRun | None = None, attempt: int = 1, retry_of: str | None = None,
                 delay_seconds: float = 0.0) -> JobRun:
        """Queue a run; ``like``: a retry or recovery of that run, with its key and data."""
        if like is not None:
            key, dataset, dataset_version = like.idempotency_key, like.dataset, \
                like.dataset_version
        row = self.ledger.queue(job_id, trigger.value, attempt=attempt, key=key,
                                retry_of=retry_of, dataset=dataset,
                                dataset_version=dataset_version)
        failpoint("jobs.after_queue")
        if not self.leading():
            return row  # a follower: the leader adopts it (JobService.adopt)
        self._local.add(row.id)
        self.scheduler.run_once(lambda: self._run_queued(row), delay_seconds=delay_seconds,
                                name=job_id)
        return row

    def _run_queued(self, row: JobRun, *, here: bool = False) -> None:
        """Run a queued row when its turn comes; ``here``: asked for in this process (the
        CLI without a server), leader or not."""
        job = self._defs.get(row.job)
        if self._closing:
            return  # stays queued: the next start re-queues it
        if job is None:
            self.ledger.finish(row.id, JobRunStatus.skipped, duration_ms=None,
                               error="the job no longer exists")
            return
        with job.lock:  # queued runs wait their turn
            if self._closing or not (here or self.leading()):
                return  # stays queued: the next start (or the next leader) takes it
            if self.ledger.get(row.id).status != JobRunStatus.queued:
                self._local.discard(row.id)
                return  # superseded by newer data while it waited
            if not self.ledger.begin(row.id):
                self._local.discard(row.id)
                return  # another host claimed it first
            self._execute(job, row)

    def _execute(self, job: JobDef, row: JobRun) -> None:
        started = time.perf_counter()
        ctx = RunContext(run_id=row.id, job_id=job.id, trigger=row.trigger.value,
                         attempt=row.attempt, key=row.idempotency_key,
                         dataset=row.dataset, dataset_version=row.dataset_version,
                         beat=lambda: None)
        status, error, result = JobRunStatus.succeeded, None, None
        with captured_logs() as logs, heartbeats(self.ledger, row.id, self.heartbeat_seconds):
            ctx.note = functools.partial(logs.note, f"appliance.jobs.{job.id}")
            try:
                failpoint("jobs.before_run")
                result = job.run(ctx)
                failpoint("jobs.after_run")
            except Exception as exc:  # a job never takes the scheduler down with it
                if self._closing:
                    return  # stays running: the next start marks it interrupted
                status = JobRunStatus.failed
                error = exc.message if isinstance(exc, ApplianceError) else \
                    f"{type(exc).__name__}: {exc}"
                log.warning("job %s failed: %s", job.id, error,
                            exc_info=not isinstance(exc, ApplianceError))
        duration = round((time.perf_counter() - started) * 1000, 1)
        self.ledger.finish(row.id, status, duration_ms=duration, error=error,
                           logs=logs.text(), result=jsonable(result))
        self._local.discard(row.id)
        failpoint("jobs.after_finish")
        retry = (status is not JobRunStatus.succeeded and row.attempt <= job.retries
                 and row.trigger != Trigger.recovery)
        failed = status is not JobRunStatus.succeeded
        self.events.publish(JobFinished(job.id, job.kind, status.value, duration / 1000,
                                        error=(error or "failed") if failed else None,
                                        run_id=row.id, final=not retry))
        if retry:
            delay = backoff_seconds(row.attempt)
            log.info("job %s: retry %d in %g s", job.id, row.attempt, delay)
            self._enqueue(job.id, Trigger.retry, like=row, attempt=row.attempt + 1,
                          retry_of=row.id, delay_seconds=delay)

    # -- the jobs themselves ----------------------------------------------------

    def _loop_collaborators(self) -> JobCollaborators:
        if self.collaborators is None:
            raise RuntimeError("no training, dataset or registry service is wired to the jobs")
        return self.collaborators

    def _train_loop(self, ctx: RunContext, spec: JobSpec) -> LoopResult:
        from appliance.jobs.loop import TrainingLoop

        return TrainingLoop(self._loop_collaborators(), timeout=self.train_timeout_seconds
                            ).run(ctx, spec)

    def _drift_check(self, ctx: RunContext, spec: JobSpec) -> DriftJobResult:
        from appliance.jobs.loop import scheduled_drift

        return scheduled_drift(self._loop_collaborators(), self.events, spec)

    def _canary_check(self, ctx: RunContext, spec: JobSpec) -> CanaryAction:
        return scheduled_canary(self._loop_collaborators(), spec, ctx)

    def canary_rule(self, model: str) -> Any:
        """The ``promote.canary`` rule of the job file named ``model`` (None: no rule)."""
        return rule_of(list(self._files.values()), model)

