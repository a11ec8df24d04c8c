"""MLflow's JSON shapes (mlflow/protos/service.proto, model_registry.proto), as typed
models: what the translation services return and the routes serialise, and the request
bodies they accept. Times are milliseconds since the epoch; params and tags are strings."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ErrorCode(StrEnum):
    """The ``error_code`` values an MLflow client reads (databricks.proto's ErrorCode)."""

    internal = "INTERNAL_ERROR"
    invalid_parameter = "INVALID_PARAMETER_VALUE"
    not_found = "RESOURCE_DOES_NOT_EXIST"
    already_exists = "RESOURCE_ALREADY_EXISTS"
    invalid_state = "INVALID_STATE"
    permission_denied = "PERMISSION_DENIED"
    unauthenticated = "UNAUTHENTICATED"
    endpoint_not_found = "ENDPOINT_NOT_FOUND"
    limit_exceeded = "REQUEST_LIMIT_EXCEEDED"
    exhausted = "RESOURCE_EXHAUSTED"
    unavailable = "TEMPORARILY_UNAVAILABLE"


def millis(iso: str | dt.datetime | None) -> int | None:
    if iso is None:
        return None
    stamp = dt.datetime.fromisoformat(iso) if isinstance(iso, str) else iso
    return int(stamp.timestamp() * 1000)


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True)


class KeyValue(_Wire):
    key: str
    value: str


class Metric(_Wire):
    key: str
    value: float
    timestamp: int
    step: int = 0


class Experiment(_Wire):
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    last_update_time: int | None
    creation_time: int | None
    tags: list[KeyValue]


class ExperimentPage(_Wire):
    experiments: list[Experiment]
    next_page_token: str | None = None


class RunInfo(_Wire):
    run_id: str
    run_uuid: str
    run_name: str
    experiment_id: str
    user_id: str
    status: str
    start_time: int | None
    end_time: int | None
    artifact_uri: str
    lifecycle_stage: str


class RunData(_Wire):
    metrics: list[Metric]
    params: list[KeyValue]
    tags: list[KeyValue]


class Run(_Wire):
    info: RunInfo
    data: RunData


class RunPage(_Wire):
    runs: list[Run]
    next_page_token: str | None = None


class FileInfo(_Wire):
    path: str
    is_dir: bool
    file_size: int | None = None


class RegisteredModelAlias(_Wire):
    alias: str
    version: str


class ModelVersion(_Wire):
    name: str
    version: str
    creation_timestamp: int | None
    last_updated_timestamp: int | None
    current_stage: str = "None"
    description: str = ""
    source: str
    run_id: str = ""
    status: str = "READY"
    tags: list[KeyValue] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)


class RegisteredModel(_Wire):
    name: str
    creation_timestamp: int | None
    last_updated_timestamp: int | None
    description: str = ""
    latest_versions: list[ModelVersion] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)
    aliases: list[RegisteredModelAlias] = Field(default_factory=list)


# -- request bodies (unknown fields are ignored, as MLflow's server does) -------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateExperiment(_Body):
    name: str
    artifact_location: str | None = None
    tags: list[KeyValue] = Field(default_factory=list)


class SearchExperiments(_Body):
    max_results: int = Field(1000, ge=1, le=50_000)
    page_token: str | None = None
    filter: str | None = None
    order_by: list[str] = Field(default_factory=list)
    view_type: str | None = None


class ExperimentTag(_Body):
    experiment_id: str
    key: str
    value: str


class CreateRun(_Body):
    experiment_id: str = "0"
    user_id: str | None = None
    run_name: str | None = None
    start_time: int | None = None
    tags: list[KeyValue] = Field(default_factory=list)


class RunRef(_Body):
    run_id: str | None = None
    run_uuid: str | None = None

    @property
    def id(self) -> str:
        return self.run_id or self.run_uuid or ""


class UpdateRun(RunRef):
    status: str | None = None
    end_time: int | None = None
    run_name: str | None = None


class LogParam(RunRef):
    key: str
    value: str


class LogMetric(RunRef):
    key: str
    value: float
    timestamp: int | None = None
    step: int = 0


class SetTag(RunRef):
    key: str
    value: str


class DeleteTag(RunRef):
    key: str


class LogBatch(RunRef):
    metrics: list[Metric] = Field(default_factory=list)
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class SearchRuns(_Body):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str | None = None
    run_view_type: str | None = None
    max_results: int = Field(1000, ge=1, le=50_000)
    order_by: list[str] = Field(default_factory=list)
    page_token: str | None = None


class LoggedModelInfo(_Wire):
    model_id: str
    experiment_id: str
    name: str
    creation_timestamp_ms: int | None
    last_updated_timestamp_ms: int | None
    artifact_uri: str
    status: str
    model_type: str | None = None
    source_run_id: str
    tags: list[KeyValue]


class LoggedModelData(_Wire):
    params: list[KeyValue]
    metrics: list[Metric] = Field(default_factory=list)


class LoggedModel(_Wire):
    info: LoggedModelInfo
    data: LoggedModelData


class CreateLoggedModel(_Body):
    experiment_id: str
    name: str | None = None
    model_type: str | None = None
    source_run_id: str | None = None
    params: list[KeyValue] = Field(default_factory=list)
    tags: list[KeyValue] = Field(default_factory=list)


class FinalizeLoggedModel(_Body):
    status: str


class LoggedModelTags(_Body):
    tags: list[KeyValue] = Field(default_factory=list)


class LoggedModelParams(_Body):
    params: list[KeyValue] = Field(default_factory=list)


class SearchLoggedModels(_Body):
    experiment_ids: list[str] = Field(default_factory=list)
    filter: str | None = None
    max_results: int = Field(100, ge=1, le=10_000)
    page_token: str | None = None


class ModelOutput(_Body):
    model_id: str
    step: int = 0


class LogOutputs(RunRef):
    models: list[ModelOutput] = Field(default_factory=list)


class Dataset(_Body):
    name: str
    digest: str = ""
    source_type: str = ""


class DatasetInput(_Body):
    dataset: Dataset


class LogInputs(RunRef):
    datasets: list[DatasetInput] = Field(default_factory=list)
