"""MLflow 3's logged models: what ``mlflow.<flavor>.log_model`` (and autolog) records
before it uploads a model's files. A logged model belongs to the run that logged it;
its files are that run's artifacts under ``models/<model id>/`` (the client writes them
to ``mlflow-artifacts:/<experiment>/models/<model id>/artifacts``). Registering one into
the registry stays refused (``appliance.compat.mlflow.registry``)."""

from __future__ import annotations

import datetime as dt
import uuid

from appliance.compat.mlflow import search, wire
from appliance.compat.mlflow.tracking import MlflowTracking, artifact_root
from appliance.compat.mlflow.wire import millis
from appliance.domain import runkeys as rules
from appliance.domain.principal import Principal
from appliance.errors import InvalidInput, NotFound
from appliance.store import logged_models as q
from appliance.store.db import Store
from appliance.store.tables import LoggedModelRow

STATUSES = ("LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED")
_FILTER_KEYS = {"name", "source_run_id", "model_id", "status", "model_type"}


class MlflowLoggedModels:
    def __init__(self, store: Store, tracking: MlflowTracking) -> None:
        self.store = store
        self.tracking = tracking

    def create(self, body: wire.CreateLoggedModel, *, by: Principal) -> wire.LoggedModel:
        if not body.source_run_id:
            raise InvalidInput("log a model inside a run: the appliance keeps a logged "
                               "model's files with its run", detail={"field": "source_run_id"})
        run = self.tracking.run(body.source_run_id)
        if run.info.experiment_id != body.experiment_id:
            raise InvalidInput(f"run {run.info.run_id} is not in experiment "
                               f"{body.experiment_id!r}", detail={"field": "experiment_id"})
        name = body.name or "model"
        rules.check_key("model name", name)
        row = LoggedModelRow(
            id=f"m-{uuid.uuid4().hex}", experiment_id=body.experiment_id,
            run_id=uuid.UUID(run.info.run_id), name=name, model_type=body.model_type,
            status=STATUSES[0], params=_pairs("param", body.params),
            tags=_pairs("tag", body.tags), created_by=by.actor)
        with self.store.write() as s:
            q.add(s, row)
        return logged_wire(row)

    def get(self, model_id: str) -> wire.LoggedModel:
        with self.store.read() as s:
            return logged_wire(_get(s, model_id))

    def finalize(self, model_id: str, status: str) -> wire.LoggedModel:
        if status not in STATUSES:
            raise InvalidInput(f"invalid logged model status {status!r}",
                               detail={"field": "status"})
        return self._update(model_id, status=status)

    def set_tags(self, model_id: str, tags: list[wire.KeyValue]) -> wire.LoggedModel:
        return self._update(model_id, tags=_pairs("tag", tags))

    def log_params(self, model_id: str, params: list[wire.KeyValue]) -> wire.LoggedModel:
        return self._update(model_id, params=_pairs("param", params))

    def search(self, body: wire.SearchLoggedModels) -> tuple[list[wire.LoggedModel], str | None]:
        clauses = search.parse_filter(body.filter)
        if any(c.key not in _FILTER_KEYS for c in clauses):
            raise InvalidInput(f"logged models are searched by {', '.join(sorted(_FILTER_KEYS))}",
                               detail={"field": "filter"})
        with self.store.read() as s:
            rows = q.of_experiments(s, body.experiment_ids)
        found = [m for m in (logged_wire(r) for r in rows)
                 if all(search.matches(c, _value(m, c.key)) for c in clauses)]
        start = int(body.page_token) if body.page_token and body.page_token.isdigit() else 0
        more = start + body.max_results < len(found)
        return found[start:start + body.max_results], (
            str(start + body.max_results) if more else None)

    def check_outputs(self, body: wire.LogOutputs) -> None:
        """A run's model outputs: each must be a model this run logged (the link kept)."""
        run = self.tracking.run(body.id)
        with self.store.read() as s:
            for out in body.models:
                if str(_get(s, out.model_id).run_id) != run.info.run_id:
                    raise InvalidInput(f"model {out.model_id} was logged by another run",
                                       detail={"field": "models"})

    def run_of(self, model_id: str) -> str:
        with self.store.read() as s:
            return str(_get(s, model_id).run_id)

    def _update(self, model_id: str, *, status: str | None = None,
                tags: dict[str, str] | None = None,
                params: dict[str, str] | None = None) -> wire.LoggedModel:
        with self.store.write() as s:
            row = _get(s, model_id)
            if status:
                row.status = status
            if tags:
                row.tags = {**(row.tags or {}), **tags}
            if params:
                row.params = {**(row.params or {}), **params}
            row.updated_at = dt.datetime.now(dt.UTC)
            s.add(row)
        return logged_wire(row)


def _get(s: object, model_id: str) -> LoggedModelRow:
    row = q.get(s, model_id) if isinstance(model_id, str) else None  # type: ignore[arg-type]
    if row is None:
        raise NotFound(f"logged model {str(model_id)[:100]!r} does not exist")
    return row


def _pairs(kind: str, pairs: list[wire.KeyValue]) -> dict[str, str]:
    return {rules.check_key(kind, p.key): rules.check_param_value(p.key, p.value)
            for p in pairs}


def _value(m: wire.LoggedModel, key: str) -> str | None:
    return {"name": m.info.name, "source_run_id": m.info.source_run_id,
            "model_id": m.info.model_id, "status": m.info.status,
            "model_type": m.info.model_type}.get(key)


def logged_wire(r: LoggedModelRow) -> wire.LoggedModel:
    return wire.LoggedModel(
        info=wire.LoggedModelInfo(
            model_id=r.id, experiment_id=r.experiment_id, name=r.name,
            creation_timestamp_ms=millis(r.created_at),
            last_updated_timestamp_ms=millis(r.updated_at),
            artifact_uri=f"{artifact_root(r.experiment_id)}/models/{r.id}/artifacts",
            status=r.status, model_type=r.model_type,
            source_run_id=str(r.run_id),
            tags=[wire.KeyValue(key=k, value=v) for k, v in sorted((r.tags or {}).items())]),
        data=wire.LoggedModelData(
            params=[wire.KeyValue(key=k, value=v)
                    for k, v in sorted((r.params or {}).items())]),
    )
