"""Queries for datasets, their versions and their contracts."""

from __future__ import annotations

import uuid
from typing import NamedTuple

from sqlalchemy import func
from sqlmodel import Session, col, select

from appliance.store import dialect
from appliance.store.tables import ContractRow, DatasetRow, DatasetVersionRow


def get_dataset(s: Session, name: str) -> DatasetRow | None:
    return s.exec(select(DatasetRow).where(DatasetRow.name == name)).first()


def get_or_create_dataset(s: Session, name: str) -> DatasetRow:
    dialect.of(s).serialize_writers(s)  # another host may be creating it (PostgreSQL)
    row = get_dataset(s, name)
    if row is None:
        row = DatasetRow(name=name)
        s.add(row)
        s.flush()
    return row


def list_datasets(s: Session) -> list[DatasetRow]:
    return list(s.exec(select(DatasetRow).order_by(col(DatasetRow.name))).all())


def next_version_number(s: Session, dataset_id: uuid.UUID) -> int:
    """max + 1, taken under the writers' lock on PostgreSQL (held to the commit), so two
    hosts never draw the same number; UNIQUE(dataset_id, number) is the fence."""
    dialect.of(s).serialize_writers(s)
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


def erased_versions_reading(s: Session, dataset_id: uuid.UUID,
                            parquet_path: str) -> list[DatasetVersionRow]:
    """Versions an earlier erasure pointed at ``parquet_path`` (status ``erased``)."""
    q = select(DatasetVersionRow).where(DatasetVersionRow.dataset_id == dataset_id,
                                        DatasetVersionRow.parquet_path == parquet_path,
                                        DatasetVersionRow.status == "erased")
    return list(s.exec(q).all())


def versions_without_summary(s: Session) -> list[DatasetVersionRow]:
    q = select(DatasetVersionRow).where(col(DatasetVersionRow.summary).is_(None))
    return list(s.exec(q.order_by(col(DatasetVersionRow.created_at))).all())


class VersionStats(NamedTuple):
    """One dataset's versions in numbers."""

    versions: int = 0
    latest: int | None = None   # the newest version's number
    current: int | None = None  # the newest accepted version's number
    rows: int | None = None     # the rows of that version


def version_stats(s: Session, dataset_id: uuid.UUID | None = None) -> dict[uuid.UUID, VersionStats]:
    """Per dataset (or only ``dataset_id``): version count, newest number, newest accepted
    number and its rows."""
    q = select(DatasetVersionRow.dataset_id, DatasetVersionRow.number, DatasetVersionRow.status,
               DatasetVersionRow.rows)
    if dataset_id is not None:
        q = q.where(DatasetVersionRow.dataset_id == dataset_id)
    out: dict[uuid.UUID, VersionStats] = {}
    for ds_id, number, status, rows in s.exec(q.order_by(col(DatasetVersionRow.number))).all():
        st = out.get(ds_id, VersionStats())
        accepted = status == "accepted"
        out[ds_id] = VersionStats(versions=st.versions + 1, latest=number,
                                  current=number if accepted else st.current,
                                  rows=rows if accepted else st.rows)
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
    dialect.of(s).serialize_writers(s)
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
