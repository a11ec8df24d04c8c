"""Queries for datasets, their versions and their contracts."""

from __future__ import annotations

import uuid

from sqlalchemy import func
from sqlmodel import Session, col, select

from appliance.store.tables import ContractRow, DatasetRow, DatasetVersionRow


def get_dataset(s: Session, name: str) -> DatasetRow | None:
    return s.exec(select(DatasetRow).where(DatasetRow.name == name)).first()


def get_or_create_dataset(s: Session, name: str) -> DatasetRow:
    row = get_dataset(s, name)
    if row is None:
        row = DatasetRow(name=name)
        s.add(row)
        s.flush()
    return row


def list_datasets(s: Session) -> list[DatasetRow]:
    return list(s.exec(select(DatasetRow).order_by(col(DatasetRow.name))).all())


def next_version_number(s: Session, dataset_id: uuid.UUID) -> int:
    q = select(func.max(DatasetVersionRow.number)).where(DatasetVersionRow.dataset_id == dataset_id)
    current = s.exec(q).one()
    return int(current or 0) + 1


def find_version_by_sha(s: Session, dataset_id: uuid.UUID, sha256: str) -> DatasetVersionRow | None:
    q = select(DatasetVersionRow).where(
        DatasetVersionRow.dataset_id == dataset_id, DatasetVersionRow.sha256 == sha256
    )
    return s.exec(q).first()


def get_version(s: Session, dataset_id: uuid.UUID, number: int) -> DatasetVersionRow | None:
    q = select(DatasetVersionRow).where(
        DatasetVersionRow.dataset_id == dataset_id, DatasetVersionRow.number == number
    )
    return s.exec(q).first()


def list_versions(s: Session, dataset_id: uuid.UUID) -> list[DatasetVersionRow]:
    q = (
        select(DatasetVersionRow)
        .where(DatasetVersionRow.dataset_id == dataset_id)
        .order_by(col(DatasetVersionRow.number).desc())
    )
    return list(s.exec(q).all())


def versions_without_summary(s: Session) -> list[DatasetVersionRow]:
    q = select(DatasetVersionRow).where(col(DatasetVersionRow.summary).is_(None))
    return list(s.exec(q.order_by(col(DatasetVersionRow.created_at))).all())


def version_stats(s: Session) -> dict[uuid.UUID, dict[str, int | None]]:
    """Per dataset: version count, newest number, newest accepted number and its rows."""
    out: dict[uuid.UUID, dict[str, int | None]] = {}
    for v in s.exec(select(DatasetVersionRow).order_by(col(DatasetVersionRow.number))).all():
        st = out.setdefault(
            v.dataset_id, {"versions": 0, "latest": None, "current": None, "rows": None}
        )
        st["versions"] = int(st["versions"] or 0) + 1
        st["latest"] = v.number
        if v.status == "accepted":
            st["current"] = v.number
            st["rows"] = v.rows
    return out


def count_versions_by_status(s: Session) -> dict[str, int]:
    q = select(DatasetVersionRow.status, func.count()).group_by(DatasetVersionRow.status)
    return {status: int(n) for status, n in s.exec(q).all()}


def current_contract(s: Session, dataset_id: uuid.UUID) -> ContractRow | None:
    q = (
        select(ContractRow)
        .where(ContractRow.dataset_id == dataset_id)
        .order_by(col(ContractRow.version).desc())
    )
    return s.exec(q).first()


def get_contract(s: Session, dataset_id: uuid.UUID, version: int) -> ContractRow | None:
    q = select(ContractRow).where(
        ContractRow.dataset_id == dataset_id, ContractRow.version == version
    )
    return s.exec(q).first()


def list_contracts(s: Session, dataset_id: uuid.UUID) -> list[ContractRow]:
    q = (
        select(ContractRow)
        .where(ContractRow.dataset_id == dataset_id)
        .order_by(col(ContractRow.version).desc())
    )
    return list(s.exec(q).all())


def add_contract(
    s: Session, dataset_id: uuid.UUID, *, yaml: str, inferred: bool, created_by: str
) -> ContractRow:
    latest = current_contract(s, dataset_id)
    row = ContractRow(
        dataset_id=dataset_id,
        version=(latest.version + 1) if latest else 1,
        yaml=yaml,
        inferred=inferred,
        created_by=created_by,
    )
    s.add(row)
    s.flush()
    return row
