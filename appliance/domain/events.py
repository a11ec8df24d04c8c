"""What happened, told to whoever cares: the typed events of the in-process bus. Pure.

A service publishes an event after the change it describes has committed;
the subscribers are wired in one place, ``appliance.runtime.build``, on the
one :class:`appliance.events.EventBus`. A publisher never knows who listens,
and a failing subscriber never undoes or breaks what was published.

==================  ==================================  ====================================
event               published by                        subscribed by (runtime.py)
==================  ==================================  ====================================
VersionAccepted     ingest.service (a version passed    alerts: resolve ``validation_rejected``
                    its contract, file archived)        jobs: queue each new-data loop
                                                        metrics: versions accepted by dataset
FileQuarantined     ingest.service (a claim refused,    alerts: raise ``validation_rejected``
                    a hostile inbox entry, a contract   (not for a duplicate)
                    failure)                            metrics: refusals by dataset, reason
IngestFinished      ingest.service (every file taken)   metrics: ingest files and seconds
AliasMoved          registry.service (set, rollback,    serve.sessions: load and swap the
                    approve; after commit)              model's sessions
                                                        metrics: alias moves
JobFinished         jobs.service (every ledgered job    alerts: raise ``job_failed`` when no
                    run; a run interrupted twice),      retry is left, resolve on success
                    train.service (every training run)  metrics: runs, seconds, failing flag,
                                                        last success
DriftChecked        monitor.drift (every stored         metrics: p-values, drift flag, checks
                    report)                             alerts: raise/resolve ``drift``
LiveMetricChecked   jobs.loop (the scheduled drift      alerts: raise/resolve
                    job's live-metric thresholds)       ``metric_below_threshold``
                                                        metrics: the live metric's value
==================  ==================================  ====================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class VersionAccepted:
    """A dataset version passed its contract and is recorded; its file is archived."""

    dataset: str
    version: int


@dataclass(frozen=True)
class FileQuarantined:
    """A file went to quarantine: refused as it was (``reason`` a ``domain.ingest.Reason``
    code), or recorded as a rejected ``version`` that failed its contract."""

    dataset: str
    file: str
    reason: str
    message: str
    version: int | None = None


@dataclass(frozen=True)
class IngestFinished:
    """One file was taken, whatever became of it (``outcome``: a ``domain.ingest.IngestOutcome``)."""

    outcome: str
    seconds: float


@dataclass(frozen=True)
class AliasMoved:
    """An alias of ``model`` was set, rolled back or approved (committed)."""

    model: str
    alias: str
    version: int | None
    previous_version: int | None
    action: str


@dataclass(frozen=True)
class JobFinished:
    """A job run or a training run ended.

    ``job`` names what alerts are keyed by (a job id such as ``train.churn``; a training
    run's job name, ``churn``); ``kind`` is the job kind (``builtin``, ``train``,
    ``drift``). ``final`` is false for a failure that will be retried. ``seconds`` is None
    when the run never ran here (interrupted by a restart).
    """

    job: str
    kind: str
    status: str
    seconds: float | None
    error: str | None = None
    run_id: str | None = None
    final: bool = True

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class DriftChecked:
    """A drift report was stored. ``p_values`` per feature column tested with a p-value
    test, ``distances`` per column tested with a distance; ``drifted`` the columns that
    drifted, with ``<predictions>`` for prediction drift and ``<multivariate>`` when the
    classifier-based detector found it; ``multivariate_auc`` its domain classifier's AUC."""

    model: str
    version: int
    report_id: str
    current: str
    drift: bool
    p_values: Mapping[str, float] = field(default_factory=dict)
    drifted: tuple[str, ...] = ()
    distances: Mapping[str, float] = field(default_factory=dict)
    multivariate_auc: float | None = None


@dataclass(frozen=True)
class LiveMetricChecked:
    """A live metric (from delayed labels) of one model version against its threshold."""

    model: str
    version: int
    metric: str
    value: float
    threshold: float
    higher_is_better: bool
