"""The MLflow translation services, built together by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.compat.mlflow.artifacts import MlflowArtifacts
from appliance.compat.mlflow.logged import MlflowLoggedModels
from appliance.compat.mlflow.registry import MlflowRegistry
from appliance.compat.mlflow.tracking import MlflowTracking
from appliance.registry.service import RegistryService
from appliance.runs.buffer import LogBuffer
from appliance.runs.experiments import ExperimentService
from appliance.runs.service import RunService
from appliance.store.db import Store


@dataclass(frozen=True)
class MlflowServices:
    tracking: MlflowTracking
    registry: MlflowRegistry
    logged: MlflowLoggedModels
    artifacts: MlflowArtifacts

    def close(self) -> None:
        """Commit what the MLflow routes queued (``appliance.runs.buffer``)."""
        self.tracking.buffer.close()


def build_mlflow(store: Store, runs: RunService, experiments: ExperimentService,
                 registry: RegistryService, *, log_delay_ms: int = 0) -> MlflowServices:
    tracking = MlflowTracking(runs, experiments,
                              LogBuffer(runs, max_delay=log_delay_ms / 1000))
    reads = MlflowRegistry(registry)
    logged = MlflowLoggedModels(store, tracking)
    return MlflowServices(tracking, reads, logged, MlflowArtifacts(tracking, reads, logged))
