"""Experiments: a named group of runs with an id (migration 0012). Pure."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_EXPERIMENT_ID = "0"      # as MLflow's Default experiment
DEFAULT_EXPERIMENT = "default"   # the name runs get when they name none


class LifecycleStage(StrEnum):
    active = "active"
    deleted = "deleted"


class Experiment(BaseModel):
    """An experiment: runs name it in their ``experiment`` field."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    artifact_location: str | None = Field(
        description="Where an MLflow client puts the runs' artifacts (mlflow-artifacts:/<id>).")
    lifecycle_stage: LifecycleStage
    tags: dict[str, str]
    created_by: str
    created_at: str
    updated_at: str


class ExperimentSummary(Experiment):
    """An experiment and how many (not deleted) runs it holds."""

    runs: int
