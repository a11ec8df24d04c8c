"""Runs: an explicit status state machine and the run as the runs service answers it
(the rules for logged values are ``appliance.domain.runkeys``)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass

from appliance.domain.runkeys import (
    KEY as KEY,
)
from appliance.domain.runkeys import (
    MAX_BATCH as MAX_BATCH,
)
from appliance.domain.runkeys import (
    MAX_PARAM_VALUE as MAX_PARAM_VALUE,
)
from appliance.domain.runkeys import (
    check_key as check_key,
)
from appliance.domain.runkeys import (
    check_metric_value as check_metric_value,
)
from appliance.domain.runkeys import (
    check_param_value as check_param_value,
)
from appliance.errors import Conflict


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    interrupted = "interrupted"  # the process died under it; re-queued once at start

    @property
    def finished(self) -> bool:
        return self in (RunStatus.succeeded, RunStatus.failed, RunStatus.interrupted)


class RunKind(StrEnum):
    train = "train"        # a job file run by the appliance
    trial = "trial"        # one candidate of a job's search (a child run)
    external = "external"  # logged by a notebook or script through the client


_ALLOWED: dict[RunStatus, set[RunStatus]] = {
    RunStatus.queued: {RunStatus.running, RunStatus.failed, RunStatus.interrupted},
    RunStatus.running: {RunStatus.succeeded, RunStatus.failed, RunStatus.interrupted},
    RunStatus.interrupted: {RunStatus.queued},
    RunStatus.succeeded: set(),
    RunStatus.failed: set(),
}


def check_transition(old: RunStatus | str, new: RunStatus | str) -> RunStatus:
    old, new = RunStatus(old), RunStatus(new)
    if new not in _ALLOWED[old]:
        raise Conflict(
            f"a run cannot go from {old.value} to {new.value}",
            detail={"from": old.value, "to": new.value,
                    "allowed": sorted(s.value for s in _ALLOWED[old])},
        )
    return new


# -- what the runs service answers ------------------------------------------------------


class RunProgress(BaseModel):
    """How far a training run is: its stage and, when known, the fraction done."""

    model_config = ConfigDict(frozen=True)

    stage: str
    fraction: float | None


class Run(BaseModel):
    """A tracked run: a training job, one trial of its search, or an external run."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    kind: RunKind
    status: RunStatus
    parent_id: str | None = Field(description="The run a trial belongs to.")
    experiment: str
    dataset: str | None
    dataset_version: int | None
    metrics: dict[str, float] = Field(description="The latest value of each metric key.")
    tags: dict[str, str]
    progress: RunProgress | None
    warnings: list[str] = Field(description="What training warned about (rows left out, a "
                                            "constant column, a rare class).")
    created_by: str
    created_at: str | None
    started_at: str | None
    ended_at: str | None
    duration_s: float | None
    error: str | None

    @property
    def finished(self) -> bool:
        return self.status.finished


class ArtifactRef(BaseModel):
    """A file stored with a run, content-addressed."""

    model_config = ConfigDict(frozen=True)

    name: str
    sha256: str
    size_bytes: int


class RunModelVersion(BaseModel):
    """The model version a run registered."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: int


class RunDetail(Run):
    """A run with its params, environment, job file, logs, artifacts and child runs."""

    params: dict[str, str]
    environment: dict[str, Any]
    seed: int | None
    spec: str | None = Field(description="The job file's YAML, for a training run.")
    logs: str | None
    artifacts: list[ArtifactRef]
    children: list[Run]
    model_version: RunModelVersion | None = Field(
        default=None, description="The model version this run registered, if any.")

    def with_model_version(self, registered: Any) -> RunDetail:
        """This run with the model version it registered (``{"model", "version"}`` or an
        object with those attributes, from the registry), or None."""
        found = (RunModelVersion.model_validate(registered, from_attributes=True)
                 if registered is not None else None)
        return self.model_copy(update={"model_version": found})


class LatestMetric(BaseModel):
    """The newest point of one metric key: its value, step and time."""

    model_config = ConfigDict(frozen=True)

    key: str
    step: int
    value: float
    ts: str


class RunRecord(Run):
    """A run with its params and the newest point of each metric (what an MLflow client
    reads), and when it was deleted, if it was (MLflow's soft delete)."""

    params: dict[str, str]
    deleted_at: str | None
    latest: list[LatestMetric]


class RunPage(BaseModel):
    """One page of a filtered, sorted run list, and how many runs matched in all."""

    model_config = ConfigDict(frozen=True)

    total: int
    items: list[Run]


class LoggedBatch(BaseModel):
    """What one logged batch stored: the number of params, metric points and tags."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    params: int
    metrics: int
    tags: int


# A pydantic dataclass with slots, not a model: a run's history is tens of thousands of
# points, and one object each (no __dict__) takes half the time of a model to build, most
# of the difference being garbage-collector passes (measured on 20k points).
@pydantic_dataclass(frozen=True, slots=True)
class MetricPoint:
    """One logged value of a metric key at a step."""

    key: str
    step: int
    value: float
    ts: str
