"""Queries for registered models, their versions and the alias event log."""

from __future__ import annotations

import uuid

from sqlalchemy import func
from sqlmodel import Session, col, select

from appliance.store import dialect
from appliance.store.tables import AliasEventRow, ModelVersionRow, RegisteredModelRow


def get_model(s: Session, name: str) -> RegisteredModelRow | None:
    return s.exec(select(RegisteredModelRow).where(RegisteredModelRow.name == name)).first()


def get_or_create_model(s: Session, name: str, description: str | None = None) -> RegisteredModelRow:
    dialect.of(s).serialize_writers(s)  # another host may be creating it (PostgreSQL)
    row = get_model(s, name)
    if row is None:
        row = RegisteredModelRow(name=name, description=description)
        s.add(row)
        s.flush()
    return row


def list_models(s: Session) -> list[RegisteredModelRow]:
    return list(s.exec(select(RegisteredModelRow).order_by(col(RegisteredModelRow.name))).all())


def next_version_number(s: Session, model_id: uuid.UUID) -> int:
    """max + 1 under the writers' lock on PostgreSQL; UNIQUE(model_id, number) fences."""
    dialect.of(s).serialize_writers(s)
    q = select(func.max(ModelVersionRow.number)).where(ModelVersionRow.model_id == model_id)
    return int(s.exec(q).one() or 0) + 1


def add_version(s: Session, row: ModelVersionRow) -> ModelVersionRow:
    s.add(row)
    s.flush()
    return row


def get_version(s: Session, model_id: uuid.UUID, number: int) -> ModelVersionRow | None:
    q = select(ModelVersionRow).where(ModelVersionRow.model_id == model_id,
                                      ModelVersionRow.number == number)
    return s.exec(q).first()


def list_versions(s: Session, model_id: uuid.UUID) -> list[ModelVersionRow]:
    q = (select(ModelVersionRow).where(ModelVersionRow.model_id == model_id)
         .order_by(col(ModelVersionRow.number).desc()))
    return list(s.exec(q).all())


def version_by_run(s: Session, run_id: uuid.UUID) -> tuple[str, int] | None:
    q = (select(RegisteredModelRow.name, ModelVersionRow.number)
         .join(RegisteredModelRow, col(RegisteredModelRow.id) == col(ModelVersionRow.model_id))
         .where(ModelVersionRow.run_id == run_id))
    hit = s.exec(q).first()
    return (hit[0], int(hit[1])) if hit else None


def add_alias_event(s: Session, row: AliasEventRow) -> AliasEventRow:
    s.add(row)
    s.flush()
    return row


def alias_events(s: Session, model_id: uuid.UUID, alias: str | None = None) -> list[AliasEventRow]:
    """Oldest first: replaying them gives every alias's current version."""
    q = select(AliasEventRow).where(AliasEventRow.model_id == model_id)
    if alias is not None:
        q = q.where(AliasEventRow.alias == alias)
    return list(s.exec(q.order_by(col(AliasEventRow.created_at))).all())
