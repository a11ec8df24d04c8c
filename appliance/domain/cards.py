"""The model card as a typed result: what the registry knows about one version."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.domain.explain import GlobalImportances
from appliance.domain.privacy import ErasureNote
from appliance.domain.registry import AliasEvent
from appliance.domain.results import Timestamp


class CardEdge(BaseModel):
    """One lineage edge of the version's own chain (data -> run -> model)."""

    model_config = ConfigDict(frozen=True)

    src: str
    dst: str
    relation: str


class TrainingData(BaseModel):
    """The dataset version the model was trained on, its contract and its chain."""

    model_config = ConfigDict(frozen=True)

    dataset: str | None
    version: int | None
    contract_version: int | None
    lineage: list[CardEdge]


class SearchSummary(BaseModel):
    """The hyperparameter search behind the training run."""

    model_config = ConfigDict(frozen=True)

    trials: int


class ModelCard(BaseModel):
    """A model card, generated from stored facts only (version row, run, alias events)."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: int
    purpose: str
    task: str | None
    flavor: str | None
    estimator: str | None
    training_data: TrainingData
    metrics: dict[str, Any]
    search: SearchSummary | None
    parity: dict[str, Any] | None
    fairness: dict[str, Any] | None
    training_warnings: list[str]
    signature: dict[str, Any] | None
    onnx_sha256: str | None
    run_id: uuid.UUID | None
    known_limitations: list[str]
    promotions: list[AliasEvent] = Field(description="this version's alias moves, oldest first")
    created_by: str | None
    created_at: Timestamp | None
    erased_data: list[ErasureNote] = Field(
        default_factory=list,
        description="erasures that since removed rows from the training data version")
    importances: GlobalImportances | None = Field(
        None, description="global importances computed at training (null for older versions "
                          "and uploaded ONNX files)")
