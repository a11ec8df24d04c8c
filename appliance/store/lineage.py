"""Queries for lineage edges: ``src -> dst`` with a relation name."""

from __future__ import annotations

from collections.abc import Collection

from sqlmodel import Session, col, or_, select

from appliance.store.tables import LineageEdgeRow


def add_edge(s: Session, *, src: str, dst: str, relation: str) -> LineageEdgeRow:
    row = LineageEdgeRow(src=src, dst=dst, relation=relation)
    s.add(row)
    s.flush()
    return row


def edges_touching(s: Session, node: str) -> list[LineageEdgeRow]:
    q = (
        select(LineageEdgeRow)
        .where(or_(LineageEdgeRow.src == node, LineageEdgeRow.dst == node))
        .order_by(col(LineageEdgeRow.created_at))
    )
    return list(s.exec(q).all())


def edges_from(s: Session, nodes: Collection[str], *, limit: int) -> list[LineageEdgeRow]:
    """Edges leaving any of ``nodes`` (one hop downstream), oldest first, at most ``limit``."""
    if not nodes:
        return []
    q = (
        select(LineageEdgeRow)
        .where(col(LineageEdgeRow.src).in_(list(nodes)))
        .order_by(col(LineageEdgeRow.created_at), col(LineageEdgeRow.dst))
        .limit(limit)
    )
    return list(s.exec(q).all())


def edges_into(s: Session, nodes: Collection[str], *, limit: int) -> list[LineageEdgeRow]:
    """Edges arriving at any of ``nodes`` (one hop upstream), oldest first, at most ``limit``."""
    if not nodes:
        return []
    q = (
        select(LineageEdgeRow)
        .where(col(LineageEdgeRow.dst).in_(list(nodes)))
        .order_by(col(LineageEdgeRow.created_at), col(LineageEdgeRow.src))
        .limit(limit)
    )
    return list(s.exec(q).all())


def edges_between(s: Session, nodes: Collection[str], *, limit: int) -> list[LineageEdgeRow]:
    """Edges whose both ends are among ``nodes``, oldest first, at most ``limit``."""
    if not nodes:
        return []
    q = (
        select(LineageEdgeRow)
        .where(col(LineageEdgeRow.src).in_(list(nodes)), col(LineageEdgeRow.dst).in_(list(nodes)))
        .order_by(col(LineageEdgeRow.created_at), col(LineageEdgeRow.src), col(LineageEdgeRow.dst))
        .limit(limit)
    )
    return list(s.exec(q).all())
