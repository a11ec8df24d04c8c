"""Experiments: create, find by id or name, tag, list. Runs name their experiment;
a run naming an unknown one creates it (``store.experiments.ensure``)."""

from __future__ import annotations

import datetime as dt
import uuid

from appliance.audit import Auditor
from appliance.domain import runkeys as rules
from appliance.domain.experiments import (
    DEFAULT_EXPERIMENT,
    DEFAULT_EXPERIMENT_ID,
    Experiment,
    ExperimentSummary,
    LifecycleStage,
)
from appliance.domain.principal import Principal
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.store import experiments as q
from appliance.store.db import Store
from appliance.store.tables import ExperimentRow


class ExperimentService:
    def __init__(self, store: Store, auditor: Auditor) -> None:
        self.store = store
        self.auditor = auditor

    def create(self, name: str, *, by: Principal, tags: dict[str, str] | None = None,
               artifact_location: str | None = None) -> Experiment:
        check_experiment_name(name)
        clean = {rules.check_key("tag", k): rules.check_param_value(k, v)
                 for k, v in (tags or {}).items()}
        with self.store.write() as s:
            if q.by_name(s, name) is not None:
                raise Conflict(f"experiment {name!r} already exists",
                               detail={"reason": "exists", "name": name})
            row = q.add(s, ExperimentRow(id=uuid.uuid4().hex, name=name, tags=clean,
                                         artifact_location=artifact_location,
                                         created_by=by.actor))
            self.auditor.record(s, by, "experiment.create", f"experiment:{row.id}",
                                after={"name": name})
        return experiment_of(row)

    def get(self, experiment_id: str) -> Experiment:
        if experiment_id == DEFAULT_EXPERIMENT_ID:  # made on first use, like a run's
            with self.store.read() as s:
                found = q.get(s, experiment_id)
            if found is None:
                with self.store.write() as s:
                    found = q.ensure(s, DEFAULT_EXPERIMENT, by="system")
            return experiment_of(found)
        with self.store.read() as s:
            return experiment_of(self._get(s, experiment_id))

    def by_name(self, name: str) -> Experiment:
        with self.store.read() as s:
            row = q.by_name(s, name) if isinstance(name, str) else None
        if row is None:
            raise NotFound(f"experiment {name!r} does not exist")
        return experiment_of(row)

    def listed(self, stages: tuple[LifecycleStage, ...] = (LifecycleStage.active,)
               ) -> list[ExperimentSummary]:
        """Experiments (oldest first) with their run counts."""
        with self.store.read() as s:
            rows = q.listed(s, [st.value for st in stages])
            counts = q.run_counts(s)
        return [ExperimentSummary(**dict(experiment_of(r)), runs=counts.get(r.name, 0))
                for r in rows]

    def set_tag(self, experiment_id: str, key: str, value: str) -> Experiment:
        key = rules.check_key("tag", key)
        text = rules.check_param_value(key, value)
        with self.store.write() as s:
            row = self._get(s, experiment_id)
            row.tags = {**(row.tags or {}), key: text}
            row.updated_at = dt.datetime.now(dt.UTC)
            s.add(row)
        return experiment_of(row)

    @staticmethod
    def _get(s: object, experiment_id: str) -> ExperimentRow:
        row = q.get(s, experiment_id) if isinstance(experiment_id, str) else None  # type: ignore[arg-type]
        if row is None:
            raise NotFound(f"experiment {experiment_id!r} does not exist")
        return row


def check_experiment_name(name: object) -> str:
    if not isinstance(name, str) or not rules.KEY.fullmatch(name):
        raise InvalidInput(f"invalid experiment name {name!r}: 1-250 of letters, digits, "
                           "'_', '-', '.', '/', ' '", detail={"field": "name"})
    return name


def experiment_of(r: ExperimentRow) -> Experiment:
    return Experiment(
        id=r.id, name=r.name, artifact_location=r.artifact_location,
        lifecycle_stage=LifecycleStage(r.lifecycle_stage), tags=r.tags or {},
        created_by=r.created_by, created_at=r.created_at.isoformat(),
        updated_at=r.updated_at.isoformat(),
    )
