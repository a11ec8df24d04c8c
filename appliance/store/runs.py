"""Queries for runs, their metric points and artifacts."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from appliance.store import dialect
from appliance.store.tables import RunArtifactRow, RunMetricRow, RunRow

_SORTS = {"created_at": RunRow.created_at, "name": RunRow.name, "status": RunRow.status}


def add_run(s: Session, row: RunRow) -> RunRow:
    s.add(row)
    s.flush()
    return row


def get_run(s: Session, run_id: uuid.UUID) -> RunRow | None:
    return s.get(RunRow, run_id)


def children(s: Session, run_id: uuid.UUID) -> list[RunRow]:
    q = select(RunRow).where(RunRow.parent_id == run_id).order_by(col(RunRow.created_at))
    return list(s.exec(q).all())


def runs_in_status(s: Session, statuses: list[str]) -> list[RunRow]:
    q = select(RunRow).where(col(RunRow.status).in_(statuses)).order_by(col(RunRow.created_at))
    return list(s.exec(q).all())


def list_runs(
    s: Session,
    *,
    status: str | None = None,
    kind: str | None = None,
    experiment: str | None = None,
    dataset: str | None = None,
    tag: tuple[str, str] | None = None,
    q: str | None = None,
    top_level: bool = False,
    sort: str = "-created_at",
    limit: int = 50,
    offset: int = 0,
) -> tuple[int, list[RunRow]]:
    """One filtered, sorted page and the total that matched, in two indexed-free scans."""
    where: list[Any] = [col(RunRow.deleted_at).is_(None)]  # MLflow's soft delete hides a run
    if status:
        where.append(RunRow.status == status)
    if kind:
        where.append(RunRow.kind == kind)
    if experiment:
        where.append(RunRow.experiment == experiment)
    if dataset:
        where.append(RunRow.dataset == dataset)
    if q:
        where.append(col(RunRow.name).contains(q))
    if top_level:  # not a search's trials: they are listed under their parent run
        where.append(col(RunRow.parent_id).is_(None))
    if tag:
        where.append(dialect.of(s).json_text(RunRow.tags, _json_key(tag[0])) == tag[1])
    total = s.exec(select(func.count()).select_from(RunRow).where(*where)).one()
    desc = sort.startswith("-")
    field = sort.lstrip("-")
    if field.startswith("metric:"):
        key = _json_key(field.removeprefix("metric:"))
        order: Any = dialect.of(s).json_double(RunRow.metrics, key)
        order = order.desc().nulls_last() if desc else order.asc().nulls_last()
    else:
        column = _SORTS.get(field, RunRow.created_at)
        order = col(column).desc() if desc else col(column).asc()
    rows = s.exec(select(RunRow).where(*where).order_by(order).offset(offset).limit(limit)).all()
    return int(total), list(rows)


def runs_of_experiments(s: Session, experiments: list[str], *,
                        deleted: bool | None) -> list[RunRow]:
    """The runs of the named experiments, newest first; ``deleted`` None: both kinds."""
    q = select(RunRow).where(col(RunRow.experiment).in_(experiments))
    if deleted is True:
        q = q.where(col(RunRow.deleted_at).is_not(None))
    elif deleted is False:
        q = q.where(col(RunRow.deleted_at).is_(None))
    return list(s.exec(q.order_by(col(RunRow.created_at).desc(), col(RunRow.id))).all())


def latest_points(
    s: Session, run_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[tuple[str, int, float, dt.datetime]]]:
    """The newest point (by step, then time) of each metric key of each run."""
    if not run_ids:
        return {}
    from sqlalchemy import select as sa_select  # a window column: core select, not SQLModel's

    ranked = sa_select(
        col(RunMetricRow.run_id), col(RunMetricRow.key), col(RunMetricRow.step),
        col(RunMetricRow.value), col(RunMetricRow.logged_at),
        func.row_number().over(
            partition_by=(col(RunMetricRow.run_id), col(RunMetricRow.key)),
            order_by=(col(RunMetricRow.step).desc(), col(RunMetricRow.logged_at).desc()),
        ).label("rank"),
    ).where(col(RunMetricRow.run_id).in_(run_ids)).subquery()
    q = sa_select(ranked.c.run_id, ranked.c.key, ranked.c.step, ranked.c.value,
                  ranked.c.logged_at).where(ranked.c.rank == 1).order_by(ranked.c.key)
    out: dict[uuid.UUID, list[tuple[str, int, float, dt.datetime]]] = {}
    for rid, key, step, value, ts in s.execute(q).all():
        out.setdefault(rid, []).append((key, int(step), float(value), ts))
    return out


def _json_key(key: str) -> str:
    """A metric or tag key without quotes (keys were checked against domain.runkeys.KEY)."""
    return key.replace('"', "")


def append_metrics(
    s: Session, run_id: uuid.UUID, points: list[tuple[str, int, float, dt.datetime]]
) -> None:
    """Append metric points in one statement: an Arrow table scanned by DuckDB (COPY on
    PostgreSQL).

    A few milliseconds for thousands of points, where executemany costs ~0.1 ms
    a row; this is the hot path of notebook logging.
    """
    if not points:
        return
    import pyarrow as pa

    keys, steps, values, stamps = zip(*points, strict=True)
    batch = pa.table({
        "key": pa.array(keys, pa.string()),
        "step": pa.array(steps, pa.int64()),
        "value": pa.array(values, pa.float64()),
        "logged_at": pa.array(stamps, pa.timestamp("us", tz="UTC")),
    })
    dialect.of(s).append(s, "run_metrics", batch,
                         constants={"run_id": (f"'{uuid.UUID(str(run_id))}'", "UUID")})


def metric_points(
    s: Session, run_id: uuid.UUID, key: str | None = None
) -> list[tuple[str, int, float, dt.datetime]]:
    """(key, step, value, logged_at) tuples: plain rows, no ORM objects (thousands per run)."""
    q = select(RunMetricRow.key, RunMetricRow.step, RunMetricRow.value,
               RunMetricRow.logged_at).where(RunMetricRow.run_id == run_id)
    if key:
        q = q.where(RunMetricRow.key == key)
    q = q.order_by(col(RunMetricRow.key), col(RunMetricRow.step), col(RunMetricRow.logged_at))
    return [(k, int(step), float(v), ts) for k, step, v, ts in s.exec(q).all()]


def count_metric_points(s: Session, run_id: uuid.UUID) -> int:
    q = select(func.count()).select_from(RunMetricRow).where(RunMetricRow.run_id == run_id)
    return int(s.exec(q).one())


def add_artifact(s: Session, row: RunArtifactRow) -> RunArtifactRow:
    s.add(row)
    s.flush()
    return row


def artifacts(s: Session, run_id: uuid.UUID) -> list[RunArtifactRow]:
    q = select(RunArtifactRow).where(RunArtifactRow.run_id == run_id)
    return list(s.exec(q.order_by(col(RunArtifactRow.created_at))).all())
