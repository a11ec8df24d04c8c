"""What the scheduled jobs need from the services below them, declared here as Protocols.

``appliance.runtime`` passes the real services in (``JobCollaborators``); the
jobs package imports none of them, so its edges in the import graph are the
ones it declares: training, datasets, the registry, drift, serving and canary are used
through these narrow views only. Reactions that jobs cause elsewhere (alerts,
metrics) are events (``appliance.domain.events``), not calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from appliance.domain.canary import CanaryAction
from appliance.domain.datasets import Dataset, VersionDetail
from appliance.domain.drift import DriftOptions, DriftReport
from appliance.domain.principal import Principal
from appliance.domain.registry import ModelDetail, ModelVersion
from appliance.domain.runs import Run, RunDetail
from appliance.domain.serving import LivePerformance
from appliance.train.spec import JobSpec


class Trainer(Protocol):
    """Queue a training run of a parsed job, wait for it, find runs on a dataset version
    (``appliance.train.service.TrainingService``)."""

    def submit(self, job: JobSpec | str, *, by: Principal | str,
               dataset_version: int | None = None) -> Run: ...

    def wait(self, run_id: str, *, timeout: float, poll: float = ...,
             beat: Callable[[], None] | None = ...) -> RunDetail: ...

    def runs_for(self, job: str, dataset: str, dataset_version: int) -> list[Run]: ...


class DatasetCatalog(Protocol):
    """A dataset and its versions (``appliance.datasets.service.DatasetService``)."""

    def show(self, name: str) -> Dataset: ...

    def current_version(self, name: str) -> int | None: ...

    def version(self, name: str, number: int) -> VersionDetail: ...


class ModelCatalog(Protocol):
    """Registered models, their versions and aliases (``appliance.registry.service``)."""

    def aliases(self, name: str) -> dict[str, int]: ...

    def version(self, name: str, number: int) -> ModelVersion: ...

    def version_for_run(self, run_id: Any) -> ModelVersion | None: ...

    def show_model(self, name: str) -> ModelDetail: ...


class DriftChecker(Protocol):
    """One stored drift check (``appliance.monitor.drift.DriftService``)."""

    def check(self, model: str, *, window_hours: float = ..., dataset_version: int | None = ...,
              p_val: float = ..., options: DriftOptions | None = ...,
              by: Principal | str = ...) -> DriftReport: ...


class PerformanceSource(Protocol):
    """Live metrics from delayed labels (``appliance.serve.service.PredictionService``)."""

    def performance(self, model: str, *, hours: float = ...) -> LivePerformance: ...


class CanaryJudge(Protocol):
    """A canary's verdict and the job file's rule on it (``appliance.monitor.canary``)."""

    def act(self, model: str, rule: Any, *, require_approval: bool = ...,
            by: Principal = ...) -> CanaryAction: ...


@dataclass(frozen=True)
class JobCollaborators:
    """The services behind job-file jobs; without them only built-in jobs can run."""

    training: Trainer
    datasets: DatasetCatalog
    registry: ModelCatalog
    drift: DriftChecker | None = None
    serving: PerformanceSource | None = None
    canary: CanaryJudge | None = None
