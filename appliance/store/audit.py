"""Queries for the hash-chained audit log (append-only by convention and by hash)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from appliance.store.tables import AuditEventRow


def last_event(s: Session) -> AuditEventRow | None:
    return s.exec(select(AuditEventRow).order_by(col(AuditEventRow.seq).desc()).limit(1)).first()


def append_event(s: Session, row: AuditEventRow) -> AuditEventRow:
    s.add(row)
    s.flush()
    return row


def list_events(s: Session, *, limit: int = 100, offset: int = 0) -> list[AuditEventRow]:
    q = select(AuditEventRow).order_by(col(AuditEventRow.seq).desc()).offset(offset).limit(limit)
    return list(s.exec(q).all())


def all_events(s: Session) -> list[AuditEventRow]:
    return list(s.exec(select(AuditEventRow).order_by(col(AuditEventRow.seq))).all())
