"""Queries for lineage edges: ``src -> dst`` with a relation name."""

from __future__ import annotations

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
