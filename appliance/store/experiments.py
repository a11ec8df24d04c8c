"""Queries for experiments (migration 0012)."""

from __future__ import annotations

import uuid

from sqlalchemy import func
from sqlmodel import Session, col, select

from appliance.domain.experiments import DEFAULT_EXPERIMENT, DEFAULT_EXPERIMENT_ID
from appliance.store import dialect
from appliance.store.tables import ExperimentRow, RunRow


def get(s: Session, experiment_id: str) -> ExperimentRow | None:
    return s.get(ExperimentRow, experiment_id)


def by_name(s: Session, name: str) -> ExperimentRow | None:
    return s.exec(select(ExperimentRow).where(ExperimentRow.name == name)).first()


def add(s: Session, row: ExperimentRow) -> ExperimentRow:
    s.add(row)
    s.flush()
    return row


def ensure(s: Session, name: str, *, by: str) -> ExperimentRow:
    """The experiment called ``name``, created on first use (runs name their experiment)."""
    dialect.of(s).serialize_writers(s)  # another host may be creating it (PostgreSQL)
    found = by_name(s, name)
    if found is not None:
        return found
    made_id = DEFAULT_EXPERIMENT_ID if name == DEFAULT_EXPERIMENT else uuid.uuid4().hex
    return add(s, ExperimentRow(id=made_id, name=name, created_by=by))


def listed(s: Session, stages: list[str]) -> list[ExperimentRow]:
    q = select(ExperimentRow).where(col(ExperimentRow.lifecycle_stage).in_(stages))
    return list(s.exec(q.order_by(col(ExperimentRow.created_at), col(ExperimentRow.id))).all())


def run_counts(s: Session) -> dict[str, int]:
    """Runs per experiment name, deleted runs left out."""
    q = (select(RunRow.experiment, func.count()).where(col(RunRow.deleted_at).is_(None))
         .group_by(RunRow.experiment))
    return {str(name): int(n) for name, n in s.exec(q).all()}
