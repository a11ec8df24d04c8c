"""The composition root: builds the whole appliance from one ``Settings``.

Nothing here runs at import time. ``build`` wires services together: each
gets its collaborators by constructor, and the reactions that cross services
(alerts, metrics, the serving sessions, the training loop) subscribe here, in
``_subscribe``, to the events the services publish on the one ``EventBus``
(see ``appliance.domain.events``). ``Appliance.start`` starts the background
parts that only the serve process runs (inbox watcher, scheduler); ``close``
stops everything in reverse.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from appliance.artifacts import ArtifactStore
from appliance.audit import Auditor
from appliance.audit_anchor import SharedAnchor
from appliance.auth.login import LoginLimits
from appliance.auth.service import AuthService
from appliance.backup import BackupService
from appliance.changes import ChangeFeed, LocalFeed, feed_for
from appliance.compat.mlflow.services import MlflowServices, build_mlflow
from appliance.config import Settings
from appliance.datasets.service import DatasetService
from appliance.domain.changes import Topic
from appliance.domain.events import (
    AliasMoved,
    DriftChecked,
    FileQuarantined,
    IngestFinished,
    JobFinished,
    LiveMetricChecked,
    VersionAccepted,
)
from appliance.domain.ingest import IngestOutcome, Reason
from appliance.domain.roles import Role
from appliance.events import EventBus
from appliance.ingest.service import IngestService
from appliance.ingest.watcher import InboxWatcher
from appliance.jobs.ledger import JobLedger
from appliance.jobs.ports import JobCollaborators
from appliance.jobs.scheduler import Scheduler, TriggerSpec
from appliance.jobs.service import JobService
from appliance.lease import Lease, SoleLease, lease_for
from appliance.lineage.service import LineageService
from appliance.metrics import Metrics
from appliance.monitor.alerts import AlertService
from appliance.monitor.canary import CanaryService
from appliance.monitor.drift import DriftService
from appliance.monitor.outliers import OutlierService
from appliance.monitor.traffic import TrafficService
from appliance.objects import open_object_store
from appliance.privacy.erasure import ErasureService
from appliance.privacy.retention import RetentionService
from appliance.registry.service import RegistryService
from appliance.runs.experiments import ExperimentService
from appliance.runs.service import RunService
from appliance.serve.explain import ExplainService
from appliance.serve.invocations import InvocationService
from appliance.serve.log import PredictionLog
from appliance.serve.service import PredictionService
from appliance.serve.sessions import SessionCache
from appliance.serve.v2 import V2Service
from appliance.store import predictions as pq
from appliance.store.db import Store
from appliance.store.parts import PartsLog
from appliance.train.service import TrainingService

log = logging.getLogger(__name__)


@dataclass
class Appliance:
    settings: Settings
    store: Store
    events: EventBus
    auditor: Auditor
    auth: AuthService
    datasets: DatasetService
    ingest: IngestService
    metrics: Metrics
    artifacts: ArtifactStore
    runs: RunService
    experiments: ExperimentService
    registry: RegistryService
    training: TrainingService
    serving: PredictionService
    explain: ExplainService
    v2: V2Service
    invocations: InvocationService
    alerts: AlertService
    drift: DriftService
    traffic: TrafficService
    canary: CanaryService
    outliers: OutlierService
    lineage: LineageService
    scheduler: Scheduler
    jobs: JobService
    watcher: InboxWatcher
    backup: BackupService
    erasure: ErasureService
    mlflow: MlflowServices
    lease: Lease = field(default_factory=SoleLease)
    feed: ChangeFeed = field(default_factory=LocalFeed)
    bootstrap_token: str | None = None
    started: bool = field(default=False)

    def start(self) -> None:
        """Mint a bootstrap token if nobody can log in; in scale-out, finish the claims a
        kill left in this home; then, on the leader (always, on the embedded store),
        recover unfinished work and start the watcher and the scheduler. Only the serve
        process calls this."""
        if self.store.degraded:
            log.error("STORE DEGRADED: %s", self.store.degraded_reason)
        else:
            self.bootstrap_token = self.auth.mint_bootstrap_token()
            self.erasure.forget_cached()  # scale-out: erased objects' bytes leave this cache
            self.jobs.reload()
            self.serving.log.start()
            self.feed.start()  # scale-out: other hosts' changes reach this one's caches
            if self.lease.shared:  # leader or not, the claims a kill left in this home
                recovered = self.ingest.recover_claims()
                if recovered:
                    log.info("finished %d claim(s) left in this home by a previous run",
                             len(recovered))
            self.lease.start(self._lead, self._follow)
        self.started = True

    def _stale_before(self) -> dt.datetime | None:
        """Scale-out: runs with an older heartbeat are a dead host's. Embedded: all are."""
        if not self.lease.shared:
            return None
        return dt.datetime.now(dt.UTC) - dt.timedelta(
            seconds=self.settings.job_heartbeat_expiry_seconds)

    def _lead(self) -> None:
        """This host took the lease: recover, then run the watcher and the scheduler. In
        scale-out they start even when a recovery step failed: a leader that runs nothing
        would hold the lease with the inbox unwatched and no job scheduled (the sweep
        retries the runs' recovery every few seconds)."""
        try:
            self._recover()
        except Exception:
            if not self.lease.shared:
                raise  # embedded: the server does not start, as before
            log.exception("recovering the leader's work failed; the inbox watcher and the "
                          "scheduler start anyway")
        self.watcher.start()
        self.scheduler.start()

    def _recover(self) -> None:
        stale = self._stale_before()
        self.jobs.recover(stale_before=stale)  # before anything queues: a dead process's rows
        if self.lease.shared:
            # this host's claims were finished at its start (``start``); a follower that
            # takes the lease later is serving uploads whose files are in staging/ and
            # claimed/ right now: never take those for a crash's leftovers
            self.ingest.recover_summaries()
        else:
            recovered = self.ingest.recover()
            if recovered:
                log.info("finished %d claim(s) left by a previous run", len(recovered))
        self.erasure.recover()  # file deletions an erasure's crash left undone
        self.training.recover(stale_before=stale)
        self.jobs.reconcile()  # data accepted but never trained (a crash in between)
        self.jobs.sync_pauses()  # paused or resumed through another host meanwhile

    def _follow(self) -> None:
        """The lease is lost: stop the leader's work (runs under way finish; a tick of a
        deposed leader is refused by the ledger's slot constraint)."""
        self.scheduler.stop()
        self.watcher.stop()

    def sweep(self) -> None:
        """Scale-out, on the leader, every few seconds: follow pauses made through other
        hosts, run what followers queued, and recover runs whose heartbeat expired (a dead
        host's)."""
        if self.lease.shared and self.lease.leader:
            self.jobs.sync_pauses()
            self.jobs.adopt()
            self.feed.prune()  # the change feed keeps an hour (at most once a minute)
            stale = self._stale_before()
            self.jobs.recover(stale_before=stale)
            self.training.recover(stale_before=stale)

    def close(self) -> None:
        self.jobs.close()
        self.feed.stop()
        if self.started:
            self.lease.stop()
            self.scheduler.stop()
            self.watcher.stop()
        self.training.close()
        self.serving.log.close()
        self.ingest.close()
        self.alerts.close()
        self.mlflow.close()
        if self.auditor.shared is not None:
            self.auditor.shared.close()  # the last head reaches the bucket
        self.store.close()
        self.started = False


def build(settings: Settings) -> Appliance:
    """Open the store (taking the one-writer lock) and wire every service."""
    settings.ensure_dirs()
    store = Store(settings.db_path, lock_path=settings.lock_path, url=settings.store_url).open()
    try:
        events = EventBus()
        metrics = Metrics()
        metrics.ingest_outcomes(o.value for o in IngestOutcome)
        objects = open_object_store(settings)  # the home, or S3 in scale-out (docs/scale-out.md)
        auditor = Auditor(store, settings.home / "audit.head",
                          shared=SharedAnchor(objects) if settings.object_store else None)
        # Before anything writes: deleting the newest events while the server was down
        # must not be papered over by the next event (it would chain onto what is left).
        anchor = auditor.check_anchor(repair=not store.degraded)
        if not anchor.ok:
            store.degrade(anchor.describe())
        metrics.store_degraded.set(1 if store.degraded else 0)
        if store.postgres:  # scale-out: the prediction log and labels as Parquet parts
            store.use_parts(PartsLog(objects, settings.home / "spool" / "parts"))
        artifacts = ArtifactStore(settings.artifacts_dir, objects=objects)
        runs = RunService(store, auditor, artifacts)
        experiments = ExperimentService(store, auditor)
        registry = RegistryService(store, auditor, artifacts, events=events)
        alerts = AlertService(store, auditor, allowed_webhook_hosts=settings.webhook_allowlist,
                              allow_private=settings.webhook_allow_private,
                              log_path=settings.home / "logs" / "alerts.jsonl")
        sessions = SessionCache(registry)
        plog = PredictionLog(store, on_outliers=metrics.outliers_checked)
        serving = PredictionService(store, sessions, plog, metrics, auditor)
        feed = feed_for(settings.store_url, poll_seconds=settings.change_poll_seconds,
                        bound_seconds=settings.change_bound_seconds)
        auth = AuthService(store, auditor, session_ttl_hours=settings.session_ttl_hours,
                           limits=LoginLimits(per_user=settings.login_failures_per_user,
                                              per_address=settings.login_failures_per_address,
                                              max_delay_seconds=settings.login_backoff_max_seconds),
                           fresh=feed.fresh if feed.shared else None)
        datasets = DatasetService(store, auditor, home=settings.home,
                                  read_memory_mb=settings.read_memory_mb, objects=objects)
        ingest = IngestService(settings, store, auditor, events=events, labels=serving,
                               objects=objects)
        drift = DriftService(store, registry, datasets, settings.home, events=events,
                             flush=serving.log.flush)
        watcher = InboxWatcher(
            ingest,
            inbox_dir=settings.inbox_dir,
            claimed_dir=settings.claimed_dir,
            poll_seconds=settings.inbox_poll_seconds,
            min_age_seconds=settings.inbox_min_age_seconds,
        )
        training = TrainingService(settings, runs, registry, datasets, events=events)
        canary = CanaryService(store, registry, serving, auditor=auditor, alerts=alerts,
                               flush=serving.log.flush)
        scheduler = Scheduler(misfire_grace_seconds=settings.job_misfire_grace_seconds)
        lease = lease_for(settings.store_url, retry_seconds=settings.leader_retry_seconds,
                          on_change=lambda leader: metrics.leader.set(1 if leader else 0))
        metrics.leader.set(1 if lease.leader else 0)
        jobs = JobService(store, auditor, scheduler, JobLedger(store),
                          jobs_dir=settings.resolved_jobs_dir, events=events,
                          collaborators=JobCollaborators(
                              training=training, datasets=datasets, registry=registry,
                              drift=drift, serving=serving, canary=canary),
                          train_timeout_seconds=settings.train_timeout_seconds,
                          leading=lambda: lease.leader)
        canary.rules = jobs.canary_rule  # the verdict's settings default to the job file's
        _subscribe(events, alerts=alerts, metrics=metrics, sessions=sessions, jobs=jobs)
        explain = ExplainService(store, sessions, runs, flush=serving.log.flush)
        _follow_feed(feed, sessions=sessions, serving=serving, auth=auth, explain=explain)
        backup = BackupService(store, settings, auditor, objects=objects)
        retention = RetentionService(store, auditor,
                                     predictions_days=settings.retention_predictions_days,
                                     labels_days=settings.retention_labels_days,
                                     job_runs_days=settings.job_history_days)
        _builtin_jobs(settings, store, jobs, scheduler, watcher, backup, retention,
                      sweep=lease.shared)
        if not store.degraded:
            password = settings.admin_password.get_secret_value() if settings.admin_password else None
            auth.ensure_admin(password)
    except BaseException:
        store.close()
        raise
    app = Appliance(
        settings=settings, store=store, events=events, auditor=auditor, auth=auth, datasets=datasets,
        ingest=ingest, metrics=metrics, artifacts=artifacts, runs=runs, registry=registry,
        training=training,
        serving=serving, v2=V2Service(serving, alias=settings.compat_alias),
        explain=explain,
        invocations=InvocationService(serving, alias=settings.compat_alias), alerts=alerts,
        drift=drift,
        traffic=TrafficService(store, registry, flush=serving.log.flush),
        canary=canary,
        outliers=OutlierService(store, registry, flush=serving.log.flush),
        lineage=LineageService(store),
        scheduler=scheduler, jobs=jobs, watcher=watcher,
        backup=backup,
        erasure=ErasureService(store, auditor, artifacts, home=settings.home,
                               flush=serving.log.flush, erased=explain.forget,
                               objects=objects),
        experiments=experiments,
        mlflow=build_mlflow(store, runs, experiments, registry,
                            log_delay_ms=settings.mlflow_log_delay_ms),
        lease=lease, feed=feed,
    )
    if lease.shared:  # the leader's scheduler runs it; not ledgered, like jobs.reload
        scheduler.add("leader.sweep", app.sweep, TriggerSpec.every(settings.jobs_reload_seconds))
    return app


def _subscribe(events: EventBus, *, alerts: AlertService, metrics: Metrics,
               sessions: SessionCache, jobs: JobService) -> None:
    """Who reacts to what (the table in ``appliance.domain.events``), in one place."""
    # the serving sessions follow the aliases, before the move's caller gets its answer
    events.subscribe(AliasMoved, lambda e: sessions.refresh(e.model))
    # the continuous-training loop: each accepted version queues the new-data jobs
    events.subscribe(VersionAccepted, lambda e: jobs.on_new_data(e.dataset, e.version))

    # alerts: one per breach, resolved when the condition clears
    events.subscribe(VersionAccepted, lambda e: alerts.validation_accepted(e.dataset))
    events.subscribe(FileQuarantined, lambda e: _file_alert(alerts, e))
    events.subscribe(JobFinished, lambda e: _job_alert(alerts, e))
    events.subscribe(DriftChecked, lambda e: alerts.check_drift(
        e.model, list(e.drifted), {"report_id": e.report_id, "current": e.current}))
    events.subscribe(LiveMetricChecked, lambda e: alerts.check_metric(
        e.model, e.version, e.metric, e.value, e.threshold, higher_is_better=e.higher_is_better))

    # metrics on /metrics
    events.subscribe(IngestFinished, lambda e: metrics.ingest_outcome(e.outcome, e.seconds))
    events.subscribe(FileQuarantined, lambda e: metrics.file_refused(e.dataset, e.reason))
    events.subscribe(VersionAccepted, lambda e: metrics.version_accepted(e.dataset))
    events.subscribe(AliasMoved, lambda e: metrics.alias_moved(e.model, e.alias, e.action))
    events.subscribe(JobFinished, lambda e: metrics.job_finished(
        e.job, e.kind, e.status, e.seconds, succeeded=e.succeeded, final=e.final))
    events.subscribe(DriftChecked, lambda e: metrics.drift_report(
        e.model, e.p_values, e.drift, e.distances, e.multivariate_auc))
    events.subscribe(LiveMetricChecked, lambda e: metrics.live_metric_checked(
        e.model, e.version, e.metric, e.value))


def _follow_feed(feed: ChangeFeed, *, sessions: SessionCache, serving: PredictionService,
                 auth: AuthService, explain: ExplainService) -> None:
    """Scale-out: what this host drops or reloads when another host's change arrives on the
    change feed (the table in ``appliance.domain.changes``; nothing on the embedded store)."""
    feed.on(Topic.alias, sessions.invalidate)
    feed.on(Topic.routing, serving.reload_routing)
    feed.on(Topic.auth, auth.forget)
    feed.on(Topic.erasure, explain.forget)
    feed.on_reset(sessions.invalidate_all)
    feed.on_reset(serving.forget_routing)
    feed.on_reset(auth.forget)
    feed.on_reset(explain.forget)


def _file_alert(alerts: AlertService, e: FileQuarantined) -> None:
    if e.reason == Reason.duplicate.value:
        return  # the same bytes again: nothing is wrong with the data
    detail: dict[str, object] = {"reason": e.reason, "file": e.file}
    if e.version is not None:
        detail["version"] = e.version
    alerts.validation_rejected(e.dataset, e.message, detail)


def _job_alert(alerts: AlertService, e: JobFinished) -> None:
    if e.succeeded:
        alerts.job_succeeded(e.job)
    elif e.final:
        alerts.job_failed(e.job, (e.error or "failed")[:2000],
                          {"run_id": e.run_id} if e.run_id is not None else None)


def _builtin_jobs(settings: Settings, store: Store, jobs: JobService, scheduler: Scheduler,
                  watcher: InboxWatcher, backup: BackupService,
                  retention: RetentionService, *, sweep: bool) -> None:
    """The scheduler's built-in jobs, each a ledgered job like any job file's."""
    jobs.add_builtin("inbox.scan", watcher.guard, TriggerSpec.every(settings.inbox_scan_seconds),
                     description="restart a dead inbox watcher and force a full scan")
    jobs.add_builtin("housekeeping.checkpoint", store.checkpoint,
                     TriggerSpec.every(settings.checkpoint_minutes * 60),
                     description="CHECKPOINT: fold the WAL into the database file", retries=1)
    # Deleting history and taking (and pruning) backups are an admin's business, by hand
    # and in pausing them: POST /api/v1/backups needs admin too. The others are harmless.
    jobs.add_builtin("housekeeping.retention", retention.enforce,
                     TriggerSpec.crontab("30 3 * * *"),
                     description=retention.describe() + " (audited)", retries=1,
                     role=Role.admin)
    if not store.postgres:  # on PostgreSQL a backup is pg_dump plus the bucket (scale-out.md)
        jobs.add_builtin("housekeeping.backup", backup.create_scheduled,
                         TriggerSpec.crontab("0 2 * * *"),
                         description=f"a backup into backups/, keeping the newest "
                                     f"{settings.backup_keep} scheduled ones", retries=1,
                         role=Role.admin)

    if store.parts is not None:  # scale-out: merge each closed day's log parts
        jobs.add_builtin("housekeeping.compact_parts", lambda: pq.compact_parts(store),
                         TriggerSpec.every(3600),
                         description="merge the small prediction-log and label parts of "
                                     "each closed day into one", retries=1)

    def reload() -> None:  # not ledgered: it runs every few seconds and is cheap
        # scale-out: followers leave new data to the leader, which catches up here
        if jobs.reload().changed or sweep:
            jobs.reconcile()

    scheduler.add("jobs.reload", reload, TriggerSpec.every(settings.jobs_reload_seconds))
