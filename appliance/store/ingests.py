"""Queries for the ingest ledger: one row per file taken, whatever its fate."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, col, select

from appliance.store.tables import IngestRow


def add_ingest(s: Session, row: IngestRow) -> IngestRow:
    s.add(row)
    s.flush()
    return row


def list_ingests(s: Session, *, dataset: str | None = None, limit: int = 50) -> list[IngestRow]:
    q = select(IngestRow)
    if dataset is not None:
        q = q.where(IngestRow.dataset == dataset)
    q = q.order_by(col(IngestRow.created_at).desc()).limit(limit)
    return list(s.exec(q).all())


def count_by_outcome(s: Session) -> dict[str, int]:
    q = select(IngestRow.outcome, func.count()).group_by(IngestRow.outcome)
    return {outcome: int(n) for outcome, n in s.exec(q).all()}
