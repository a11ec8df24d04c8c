"""Queries for MLflow logged models (migration 0012)."""

from __future__ import annotations

import uuid

from sqlmodel import Session, col, select

from appliance.store.tables import LoggedModelRow


def get(s: Session, model_id: str) -> LoggedModelRow | None:
    return s.get(LoggedModelRow, model_id)


def add(s: Session, row: LoggedModelRow) -> LoggedModelRow:
    s.add(row)
    s.flush()
    return row


def of_experiments(s: Session, experiment_ids: list[str]) -> list[LoggedModelRow]:
    q = select(LoggedModelRow).where(col(LoggedModelRow.experiment_id).in_(experiment_ids))
    return list(s.exec(q.order_by(col(LoggedModelRow.created_at).desc())).all())


def of_run(s: Session, run_id: uuid.UUID) -> list[LoggedModelRow]:
    q = select(LoggedModelRow).where(LoggedModelRow.run_id == run_id)
    return list(s.exec(q.order_by(col(LoggedModelRow.created_at))).all())
