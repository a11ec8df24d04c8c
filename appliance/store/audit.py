"""Queries for the hash-chained audit log (append-only by convention and by hash)."""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import func
from sqlmodel import Session, col, select

from appliance.domain.audit import GENESIS, ChainEvent
from appliance.store import dialect
from appliance.store.tables import AuditEventRow

_COLUMNS = ("seq", "created_at", "actor", "action", "target", "before", "after",
            "prev_hash", "hash")


def last_event(s: Session) -> AuditEventRow | None:
    return s.exec(select(AuditEventRow).order_by(col(AuditEventRow.seq).desc()).limit(1)).first()


def chain_head(s: Session, cached: tuple[int, str] | None) -> tuple[int, str]:
    """(seq, hash) the next event links to.

    Embedded: ``cached`` (the last commit's head: this process is the only writer),
    else the table. PostgreSQL: other hosts append too, so the head is read from the
    table under the writers' advisory lock, held until this transaction ends: appends
    are serialised in the database and the chain stays one chain.
    """
    d = dialect.of(s)
    if d.shared:
        d.serialize_writers(s)
    elif cached is not None:
        return cached
    last = last_event(s)
    return (last.seq, last.hash) if last else (0, GENESIS)


def append_event(s: Session, row: AuditEventRow) -> AuditEventRow:
    s.add(row)
    s.flush()
    return row


def list_events(s: Session, *, limit: int = 100, offset: int = 0) -> list[AuditEventRow]:
    q = select(AuditEventRow).order_by(col(AuditEventRow.seq).desc()).offset(offset).limit(limit)
    return list(s.exec(q).all())


def iter_events(s: Session, *, from_seq: int | None = None,
                batch: int = 10_000) -> Iterator[ChainEvent]:
    """Events with ``seq >= from_seq`` (every event when None) in seq order, as plain tuples.

    Read in pages of ``batch`` consecutive seq numbers, columns only: a chain of
    a million events is checked without holding it in memory or building an ORM
    object per row; a range predicate lets DuckDB skip row groups by their seq
    bounds, and a row sharing its seq with another (a forged insert) is still seen.
    """
    seq = col(AuditEventRow.seq)
    cols = [getattr(AuditEventRow, c) for c in _COLUMNS]
    start = _first_seq(s, from_seq)
    while start is not None:
        rows = s.exec(select(*cols).where(seq >= start, seq < start + batch)  # type: ignore[call-overload]
                      .order_by(seq, col(AuditEventRow.id))).all()
        for r in rows:
            yield ChainEvent(*r)
        start = _first_seq(s, start + batch)  # jumps over a gap, however wide


def _first_seq(s: Session, at_least: int | None) -> int | None:
    q = select(func.min(AuditEventRow.seq))
    if at_least is not None:
        q = q.where(col(AuditEventRow.seq) >= at_least)
    first = s.exec(q).one()
    return None if first is None else int(first)
