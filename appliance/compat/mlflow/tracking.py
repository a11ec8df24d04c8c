"""MLflow tracking calls onto our runs and experiments: an MLflow run is a tracked run
of ours (kind ``external``), an MLflow experiment one of our experiments; ids are ours.

Statuses: RUNNING = running, FINISHED = succeeded, FAILED = failed, KILLED = interrupted,
SCHEDULED = queued. Artifacts live at ``mlflow-artifacts:/<experiment id>/<run id>/artifacts``,
which the client resolves to our artifact proxy (``appliance.compat.mlflow.artifacts``).
"""

from __future__ import annotations

import re
import uuid

from appliance.compat.mlflow import search, wire
from appliance.compat.mlflow.wire import millis
from appliance.domain.experiments import (
    DEFAULT_EXPERIMENT,
    DEFAULT_EXPERIMENT_ID,
    Experiment,
    LifecycleStage,
)
from appliance.domain.principal import Principal
from appliance.domain.runs import RunRecord, RunStatus
from appliance.errors import Conflict, InvalidInput
from appliance.runs.buffer import LogBuffer
from appliance.runs.experiments import ExperimentService
from appliance.runs.service import RunService

RUN_NAME_TAG = "mlflow.runName"
_TO_MLFLOW = {RunStatus.queued: "SCHEDULED", RunStatus.running: "RUNNING",
              RunStatus.succeeded: "FINISHED", RunStatus.failed: "FAILED",
              RunStatus.interrupted: "KILLED"}
_FROM_MLFLOW = {v: k for k, v in _TO_MLFLOW.items()}
_VIEWS = {None: False, "ACTIVE_ONLY": False, "DELETED_ONLY": True, "ALL": None}


def artifact_root(experiment_id: str) -> str:
    return f"mlflow-artifacts:/{experiment_id}"


class MlflowTracking:
    def __init__(self, runs: RunService, experiments: ExperimentService,
                 buffer: LogBuffer) -> None:
        self.runs = runs
        self.experiments = experiments
        self.buffer = buffer  # the client logs one value a request: write-behind

    # -- experiments ------------------------------------------------------------------

    def create_experiment(self, body: wire.CreateExperiment, *, by: Principal) -> str:
        try:
            made = self.experiments.create(body.name, by=by,
                                           tags={t.key: t.value for t in body.tags})
        except Conflict as exc:
            raise Conflict(str(exc), detail={"error_code": wire.ErrorCode.already_exists}
                           ) from None
        return made.id

    def experiment(self, experiment_id: str) -> wire.Experiment:
        return experiment_wire(self.experiments.get(experiment_id))

    def experiment_by_name(self, name: str) -> wire.Experiment:
        return experiment_wire(self.experiments.by_name(_our_name(name)))

    def search_experiments(self, body: wire.SearchExperiments) -> wire.ExperimentPage:
        deleted = _view(body.view_type)
        stages = ((LifecycleStage.active, LifecycleStage.deleted) if deleted is None else
                  (LifecycleStage.deleted,) if deleted else (LifecycleStage.active,))
        found = [experiment_wire(e) for e in self.experiments.listed(stages)]
        clauses = search.parse_filter(body.filter)
        found = [e for e in found if all(search.matches(c, _experiment_value(e, c))
                                         for c in clauses)]
        found.sort(key=lambda e: (-(e.creation_time or 0), e.experiment_id))
        start = _offset(body.page_token)
        page = found[start:start + body.max_results]
        more = start + body.max_results < len(found)
        return wire.ExperimentPage(experiments=page, next_page_token=(
            str(start + body.max_results) if more else None))

    def set_experiment_tag(self, body: wire.ExperimentTag) -> None:
        self.experiments.set_tag(body.experiment_id, body.key, body.value)

    # -- runs ---------------------------------------------------------------------------

    def create_run(self, body: wire.CreateRun, *, by: Principal) -> wire.Run:
        exp = self.experiments.get(body.experiment_id or DEFAULT_EXPERIMENT_ID)
        if exp.lifecycle_stage is LifecycleStage.deleted:
            raise Conflict(f"experiment {exp.id} is deleted",
                           detail={"error_code": wire.ErrorCode.invalid_state})
        tags = {t.key: t.value for t in body.tags}
        name = body.run_name or tags.get(RUN_NAME_TAG) or f"run-{uuid.uuid4().hex[:8]}"
        tags[RUN_NAME_TAG] = name
        run = self.runs.start_external(name=name, experiment=exp.name, params=None,
                                       tags=tags, by=by)
        return run_wire(self.runs.record(run.id), exp.id)

    def run(self, run_id: str) -> wire.Run:
        self.buffer.flush()
        record = self.runs.record(run_id)
        return run_wire(record, self._experiment_id(record.experiment))

    def update_run(self, body: wire.UpdateRun, *, by: Principal) -> wire.RunInfo:
        self.buffer.forget(body.id)
        record = self.runs.record(body.id)
        if body.run_name and body.run_name != record.name:
            self.runs.rename(record.id, body.run_name)
            self.runs.log_batch(record.id, tags={RUN_NAME_TAG: body.run_name})
            self.buffer.forget(record.id)
        if body.status:
            target = _FROM_MLFLOW.get(body.status)
            if target is None:
                raise InvalidInput(f"invalid run status {body.status!r}",
                                   detail={"field": "status"})
            if target is not record.status:
                try:
                    self.runs.transition(record.id, target, by=by)
                except Conflict as exc:
                    raise Conflict(str(exc), detail={
                        "error_code": wire.ErrorCode.invalid_state}) from None
        return self.run(record.id).info

    def set_deleted(self, run_id: str, deleted: bool, *, by: Principal) -> None:
        self.buffer.forget(run_id)
        self.runs.set_deleted(run_id, deleted, by=by)

    def log_batch(self, body: wire.LogBatch) -> None:
        params = {p.key: p.value for p in body.params}
        if len(params) != len(body.params):
            raise InvalidInput("a batch names a param twice", detail={"field": "params"})
        self.buffer.log(
            body.id, params=params, tags={t.key: t.value for t in body.tags},
            metrics=[{"key": m.key, "value": m.value, "step": m.step, "ts": m.timestamp / 1000}
                     for m in body.metrics])

    def log_metric(self, body: wire.LogMetric) -> None:
        stamp = body.timestamp / 1000 if body.timestamp is not None else None
        self.buffer.log(body.id, metrics=[
            {"key": body.key, "value": body.value, "step": body.step, "ts": stamp}])

    def log_inputs(self, body: wire.LogInputs) -> None:
        """Datasets a run used: kept as ``mlflow.input.<name>`` tags (source type and
        digest); MLflow's dataset entities are not stored."""
        tags = {}
        for item in body.datasets:
            key = "mlflow.input." + re.sub(r"[^A-Za-z0-9_.\-/ ]", "_", item.dataset.name)[:200]
            tags[key] = f"{item.dataset.source_type}:{item.dataset.digest}"
        if tags:
            self.runs.log_batch(body.id, tags=tags)
        else:
            self.runs.record(body.id)  # an unknown run is still refused

    def delete_tag(self, body: wire.DeleteTag) -> None:
        self.buffer.flush()
        self.runs.delete_tag(body.id, body.key)

    def metric_history(self, run_id: str, key: str) -> list[wire.Metric]:
        if not key:
            raise InvalidInput("metric_key is required", detail={"field": "metric_key"})
        # MLflow keeps one copy of a point logged twice (same step, value and time: its
        # primary key); autolog does log some twice, and the client reads one
        self.buffer.flush()
        seen = dict.fromkeys((p.step, p.value, millis(p.ts) or 0)
                             for p in self.runs.metric_history(run_id, key))
        return [wire.Metric(key=key, value=value, step=step, timestamp=ts)
                for step, value, ts in seen]

    def search_runs(self, body: wire.SearchRuns) -> wire.RunPage:
        by_id = {e.id: e for e in self.experiments.listed(
            (LifecycleStage.active, LifecycleStage.deleted))}
        names = {}
        for exp_id in body.experiment_ids:
            exp = by_id.get(exp_id) or self.experiments.get(exp_id)  # NotFound if unknown
            names[exp.name] = exp.id
        self.buffer.flush()
        records = self.runs.records(list(names), deleted=_view(body.run_view_type))
        found = search.filter_runs([run_wire(r, names[r.experiment]) for r in records],
                                   body.filter)
        found = search.order_runs(found, body.order_by)
        start = _offset(body.page_token)
        more = start + body.max_results < len(found)
        return wire.RunPage(runs=found[start:start + body.max_results],
                            next_page_token=str(start + body.max_results) if more else None)

    def _experiment_id(self, name: str) -> str:
        return self.experiments.by_name(name).id


def experiment_wire(e: Experiment) -> wire.Experiment:
    return wire.Experiment(
        experiment_id=e.id, name="Default" if e.id == DEFAULT_EXPERIMENT_ID else e.name,
        artifact_location=e.artifact_location or artifact_root(e.id),
        lifecycle_stage=e.lifecycle_stage.value, last_update_time=millis(e.updated_at),
        creation_time=millis(e.created_at),
        tags=[wire.KeyValue(key=k, value=v) for k, v in sorted(e.tags.items())],
    )


def run_wire(r: RunRecord, experiment_id: str) -> wire.Run:
    return wire.Run(
        info=wire.RunInfo(
            run_id=r.id, run_uuid=r.id, run_name=r.name, experiment_id=experiment_id,
            user_id=r.created_by, status=_TO_MLFLOW[r.status],
            start_time=millis(r.started_at or r.created_at), end_time=millis(r.ended_at),
            artifact_uri=f"{artifact_root(experiment_id)}/{r.id}/artifacts",
            lifecycle_stage="deleted" if r.deleted_at else "active",
        ),
        data=wire.RunData(
            metrics=[wire.Metric(key=m.key, value=m.value, step=m.step,
                                 timestamp=millis(m.ts) or 0) for m in r.latest],
            params=[wire.KeyValue(key=k, value=v) for k, v in sorted(r.params.items())],
            tags=[wire.KeyValue(key=k, value=v) for k, v in sorted(r.tags.items())],
        ),
    )


def _our_name(name: str) -> str:
    """MLflow calls the default experiment "Default"; ours is "default"."""
    return DEFAULT_EXPERIMENT if name == "Default" else name


def _experiment_value(e: wire.Experiment, c: search.Comparison) -> str | float | None:
    if c.entity == "tags":
        return next((t.value for t in e.tags if t.key == c.key), None)
    if c.key in ("creation_time", "last_update_time"):
        stamp = getattr(e, c.key)
        return float(stamp) if stamp is not None else None
    return e.name if c.key == "name" else getattr(e, c.key, None)


def _view(view: str | None) -> bool | None:
    if view not in _VIEWS:
        raise InvalidInput(f"invalid view type {view!r}", detail={"field": "view_type"})
    return _VIEWS[view]


def _offset(token: str | None) -> int:
    if not token:
        return 0
    if not token.isdigit() or len(token) > 9:
        raise InvalidInput("invalid page_token", detail={"field": "page_token"})
    return int(token)
