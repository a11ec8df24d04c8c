"""The composition root: builds the whole appliance from one ``Settings``.

Nothing here runs at import time. ``build`` wires services together;
``Appliance.start`` starts the background parts that only the serve process
runs (inbox watcher, scheduler); ``close`` stops everything in reverse.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from appliance.artifacts import ArtifactStore
from appliance.audit import Auditor
from appliance.auth.login import LoginLimits
from appliance.auth.service import AuthService
from appliance.backup import BackupService
from appliance.config import Settings
from appliance.datasets.service import DatasetService
from appliance.domain.roles import Role
from appliance.ingest.service import IngestService
from appliance.ingest.watcher import InboxWatcher
from appliance.jobs.ledger import JobLedger
from appliance.jobs.scheduler import Scheduler, TriggerSpec
from appliance.jobs.service import JobService
from appliance.lineage.service import LineageService
from appliance.metrics import Metrics
from appliance.monitor.alerts import AlertService
from appliance.monitor.drift import DriftService
from appliance.monitor.traffic import TrafficService
from appliance.registry.service import RegistryService
from appliance.runs.service import RunService
from appliance.serve.log import PredictionLog
from appliance.serve.service import PredictionService
from appliance.serve.sessions import SessionCache
from appliance.store.db import Store
from appliance.train.service import TrainingService

log = logging.getLogger(__name__)


@dataclass
class Appliance:
    settings: Settings
    store: Store
    auditor: Auditor
    auth: AuthService
    datasets: DatasetService
    ingest: IngestService
    metrics: Metrics
    artifacts: ArtifactStore
    runs: RunService
    registry: RegistryService
    training: TrainingService
    serving: PredictionService
    alerts: AlertService
    drift: DriftService
    traffic: TrafficService
    lineage: LineageService
    scheduler: Scheduler
    jobs: JobService
    watcher: InboxWatcher
    backup: BackupService
    bootstrap_token: str | None = None
    started: bool = field(default=False)

    def start(self) -> None:
        """Mint a bootstrap token if nobody can log in, recover unfinished claims, then
        start the watcher and the scheduler. Only the serve process calls this."""
        if self.store.degraded:
            log.error("STORE DEGRADED: %s", self.store.degraded_reason)
        else:
            self.bootstrap_token = self.auth.mint_bootstrap_token()
            self.jobs.reload()
            self.jobs.recover()  # before anything queues: rows left by a dead process
            recovered = self.ingest.recover()
            self.training.recover()
            if recovered:
                log.info("finished %d claim(s) left by a previous run", len(recovered))
            self.jobs.reconcile()  # data accepted but never trained (a crash in between)
            self.watcher.start()
            self.serving.log.start()
            self.scheduler.start()
        self.started = True

    def close(self) -> None:
        self.jobs.close()
        if self.started:
            self.scheduler.stop()
            self.watcher.stop()
        self.training.close()
        self.serving.log.close()
        self.ingest.close()
        self.alerts.close()
        self.store.close()
        self.started = False


def build(settings: Settings) -> Appliance:
    """Open the store (taking the one-writer lock) and wire every service."""
    settings.ensure_dirs()
    store = Store(settings.db_path, lock_path=settings.lock_path).open()
    try:
        metrics = Metrics()
        auditor = Auditor(store, settings.home / "audit.head")
        # Before anything writes: deleting the newest events while the server was down
        # must not be papered over by the next event (it would chain onto what is left).
        anchor = auditor.check_anchor(repair=not store.degraded)
        if not anchor.ok:
            store.degrade(anchor.describe())
        metrics.store_degraded.set(1 if store.degraded else 0)
        artifacts = ArtifactStore(settings.artifacts_dir)
        runs = RunService(store, auditor, artifacts)
        registry = RegistryService(store, auditor, artifacts)
        alerts = AlertService(store, auditor, allowed_webhook_hosts=settings.webhook_allowlist,
                              allow_private=settings.webhook_allow_private,
                              log_path=settings.home / "logs" / "alerts.jsonl")
        sessions = SessionCache(registry)
        registry.on_alias_change.append(sessions.refresh)
        serving = PredictionService(store, sessions, PredictionLog(store), metrics, auditor)
        auth = AuthService(store, auditor, session_ttl_hours=settings.session_ttl_hours,
                           limits=LoginLimits(per_user=settings.login_failures_per_user,
                                              per_address=settings.login_failures_per_address,
                                              max_delay_seconds=settings.login_backoff_max_seconds))
        datasets = DatasetService(store, auditor, home=settings.home)
        ingest = IngestService(settings, store, auditor, on_outcome=metrics.ingest_outcome)
        ingest.on_labels = lambda model, records: serving.feedback(model, records, source="file")
        ingest.alerts = alerts
        drift = DriftService(store, registry, datasets, settings.home, flush=serving.log.flush)
        drift.alerts = alerts
        drift.metrics = metrics
        watcher = InboxWatcher(
            ingest,
            inbox_dir=settings.inbox_dir,
            claimed_dir=settings.claimed_dir,
            poll_seconds=settings.inbox_poll_seconds,
            min_age_seconds=settings.inbox_min_age_seconds,
        )
        training = TrainingService(settings, runs, registry, datasets, alerts=alerts,
                                   metrics=metrics)
        scheduler = Scheduler(misfire_grace_seconds=settings.job_misfire_grace_seconds)
        jobs = JobService(store, auditor, scheduler, JobLedger(store),
                          jobs_dir=settings.resolved_jobs_dir,
                          history=dt.timedelta(days=settings.job_history_days),
                          train_timeout_seconds=settings.train_timeout_seconds)
        jobs.services.update(training=training, drift=drift, datasets=datasets,
                             registry=registry, serving=serving, alerts=alerts, metrics=metrics)
        ingest.on_new_version = jobs.on_new_data
        backup = BackupService(store, settings, auditor)
        _builtin_jobs(settings, store, jobs, scheduler, watcher, backup)
        if not store.degraded:
            password = settings.admin_password.get_secret_value() if settings.admin_password else None
            auth.ensure_admin(password)
    except BaseException:
        store.close()
        raise
    return Appliance(
        settings=settings, store=store, auditor=auditor, auth=auth, datasets=datasets,
        ingest=ingest, metrics=metrics, artifacts=artifacts, runs=runs, registry=registry,
        training=training,
        serving=serving, alerts=alerts,
        drift=drift,
        traffic=TrafficService(store, registry, flush=serving.log.flush),
        lineage=LineageService(store),
        scheduler=scheduler, jobs=jobs, watcher=watcher,
        backup=backup,
    )


def _builtin_jobs(settings: Settings, store: Store, jobs: JobService, scheduler: Scheduler,
                  watcher: InboxWatcher, backup: BackupService) -> None:
    """The scheduler's built-in jobs, each a ledgered job like any job file's."""
    jobs.add_builtin("inbox.scan", watcher.guard, TriggerSpec.every(settings.inbox_scan_seconds),
                     description="restart a dead inbox watcher and force a full scan")
    jobs.add_builtin("housekeeping.checkpoint", store.checkpoint,
                     TriggerSpec.every(settings.checkpoint_minutes * 60),
                     description="CHECKPOINT: fold the WAL into the database file", retries=1)
    # Deleting history and taking (and pruning) backups are an admin's business, by hand
    # and in pausing them: POST /api/v1/backups needs admin too. The others are harmless.
    jobs.add_builtin("housekeeping.retention", jobs.prune, TriggerSpec.crontab("30 3 * * *"),
                     description=f"prune finished job runs older than "
                                 f"{settings.job_history_days:g} days", retries=1,
                     role=Role.admin)
    jobs.add_builtin("housekeeping.backup", backup.create_scheduled,
                     TriggerSpec.crontab("0 2 * * *"),
                     description=f"a backup into backups/, keeping the newest "
                                 f"{settings.backup_keep} scheduled ones", retries=1,
                     role=Role.admin)

    def reload() -> None:  # not ledgered: it runs every few seconds and is cheap
        if jobs.reload()["changed"]:
            jobs.reconcile()

    scheduler.add("jobs.reload", reload, TriggerSpec.every(settings.jobs_reload_seconds))
