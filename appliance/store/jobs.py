"""Queries for the scheduler's run ledger (``job_runs``) and pause switches (``job_state``)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

_COLUMNS = (
    "id, job, trigger, status, attempt, idempotency_key, scheduled_for, created_at, "
    "started_at, finished_at, heartbeat_at, duration_ms, error, logs, result, retry_of, "
    "dataset, dataset_version"
)
_LIST_COLUMNS = _COLUMNS.replace("logs, ", "NULL AS logs, ")


def _run(row: Any) -> dict[str, Any]:
    (id_, job, trigger, status, attempt, key, scheduled_for, created_at, started_at,
     finished_at, heartbeat_at, duration_ms, error, logs, result, retry_of, dataset,
     dataset_version) = row
    return {
        "id": str(id_), "job": job, "trigger": trigger, "status": status,
        "attempt": int(attempt), "idempotency_key": key, "scheduled_for": scheduled_for,
        "created_at": created_at, "started_at": started_at, "finished_at": finished_at,
        "heartbeat_at": heartbeat_at, "duration_ms": duration_ms, "error": error,
        "logs": logs,
        "result": json.loads(result) if isinstance(result, str) else result,
        "retry_of": str(retry_of) if retry_of else None,
        "dataset": dataset,
        "dataset_version": int(dataset_version) if dataset_version is not None else None,
    }


def insert_run(s: Session, *, job: str, trigger: str, status: str, attempt: int,
               idempotency_key: str | None, scheduled_for: dt.datetime | None,
               at: dt.datetime, retry_of: str | None = None, error: str | None = None,
               dataset: str | None = None,
               dataset_version: int | None = None) -> dict[str, Any]:
    """A new ledger row; ``running`` rows start at ``at``, ``skipped`` rows end there.
    ``dataset``/``dataset_version``: the data a new-data run (and its retries) trains."""
    row = {"id": str(uuid.uuid4()), "job": job, "trigger": trigger, "status": status,
           "attempt": attempt, "idempotency_key": idempotency_key,
           "scheduled_for": scheduled_for, "created_at": at,
           "started_at": at if status == "running" else None,
           "finished_at": at if status == "skipped" else None,
           "heartbeat_at": at if status == "running" else None, "duration_ms": None,
           "error": error, "logs": None, "result": None, "retry_of": retry_of,
           "dataset": dataset, "dataset_version": dataset_version}
    s.execute(
        text("INSERT INTO job_runs (id, job, trigger, status, attempt, idempotency_key, "
             "scheduled_for, created_at, started_at, finished_at, heartbeat_at, error, "
             "retry_of, dataset, dataset_version) VALUES (:id, :job, :trigger, :status, "
             ":attempt, :idempotency_key, :scheduled_for, :created_at, :started_at, "
             ":finished_at, :heartbeat_at, :error, :retry_of, :dataset, :dataset_version)"),
        {k: v for k, v in row.items() if k not in ("duration_ms", "logs", "result")},
    )
    return row


def get_run(s: Session, run_id: str) -> dict[str, Any] | None:
    row = s.execute(text(f"SELECT {_COLUMNS} FROM job_runs WHERE id = :id"),
                    {"id": run_id}).fetchone()
    return _run(row) if row else None


def mark_running(s: Session, run_id: str, at: dt.datetime) -> bool:
    """Queued -> running, only from queued: False when another host (or a supersede) got
    there first."""
    done = s.execute(text("UPDATE job_runs SET status = 'running', started_at = :at, "
                          "heartbeat_at = :at WHERE id = :id AND status = 'queued'"),
                     {"id": run_id, "at": at})
    return bool(getattr(done, "rowcount", 1))


def heartbeat(s: Session, run_id: str, at: dt.datetime) -> None:
    s.execute(text("UPDATE job_runs SET heartbeat_at = :at WHERE id = :id AND status = 'running'"),
              {"id": run_id, "at": at})


def finish(s: Session, run_id: str, *, status: str, at: dt.datetime, duration_ms: float | None,
           error: str | None, logs: str | None, result: Any) -> None:
    s.execute(
        text("UPDATE job_runs SET status = :status, finished_at = :at, duration_ms = :ms, "
             "error = :error, logs = :logs, result = :result WHERE id = :id"),
        {"id": run_id, "status": status, "at": at, "ms": duration_ms, "error": error,
         "logs": logs, "result": json.dumps(result, default=str) if result is not None else None},
    )


def runs_in(s: Session, statuses: tuple[str, ...]) -> list[dict[str, Any]]:
    marks = ", ".join(f":s{i}" for i in range(len(statuses)))
    rows = s.execute(
        text(f"SELECT {_COLUMNS} FROM job_runs WHERE status IN ({marks}) ORDER BY created_at"),
        {f"s{i}": v for i, v in enumerate(statuses)},
    ).fetchall()
    return [_run(r) for r in rows]


def _filter(job: str | None, status: str | None) -> tuple[str, dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    if job is not None:
        where.append("job = :job")
        params["job"] = job
    if status is not None:
        where.append("status = :status")
        params["status"] = status
    return ("WHERE " + " AND ".join(where)) if where else "", params


def list_runs(s: Session, *, job: str | None = None, status: str | None = None,
              limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    clause, params = _filter(job, status)
    rows = s.execute(
        text(f"SELECT {_LIST_COLUMNS} FROM job_runs {clause} "
             "ORDER BY created_at DESC, id LIMIT :n OFFSET :o"),
        {**params, "n": limit, "o": offset},
    ).fetchall()
    return [_run(r) for r in rows]


def count_runs(s: Session, *, job: str | None = None, status: str | None = None) -> int:
    clause, params = _filter(job, status)
    return int(s.execute(text(f"SELECT count(*) FROM job_runs {clause}"), params).scalar_one())


def last_runs(s: Session) -> dict[str, dict[str, Any]]:
    """The newest run of each job (without logs)."""
    rows = s.execute(text(
        f"SELECT {_LIST_COLUMNS} FROM (SELECT *, row_number() OVER "
        "(PARTITION BY job ORDER BY created_at DESC) AS newest FROM job_runs) AS r "
        "WHERE newest = 1")).fetchall()
    return {r[1]: _run(r) for r in rows}


def queued_for_older_versions(s: Session, job: str, dataset: str,
                               version: int) -> list[dict[str, Any]]:
    """Queued runs of ``job`` for versions of ``dataset`` older than ``version``."""
    rows = s.execute(text(
        f"SELECT {_LIST_COLUMNS} FROM job_runs WHERE job = :j AND status = 'queued' "
        "AND dataset = :d AND dataset_version < :v ORDER BY created_at"),
        {"j": job, "d": dataset, "v": version}).fetchall()
    return [_run(r) for r in rows]


def keyed_runs(s: Session, key: str) -> list[dict[str, Any]]:
    rows = s.execute(text(f"SELECT {_LIST_COLUMNS} FROM job_runs WHERE idempotency_key = :k "
                          "ORDER BY created_at"), {"k": key}).fetchall()
    return [_run(r) for r in rows]


def delete_finished_before(s: Session, cutoff: dt.datetime) -> int:
    n = int(s.execute(text("SELECT count(*) FROM job_runs WHERE finished_at < :c"),
                      {"c": cutoff}).scalar_one())
    if n:
        s.execute(text("DELETE FROM job_runs WHERE finished_at < :c"), {"c": cutoff})
    return n


# -- pause switches --------------------------------------------------------------


def paused_jobs(s: Session) -> set[str]:
    rows = s.execute(text("SELECT job FROM job_state WHERE paused")).fetchall()
    return {r[0] for r in rows}


def set_paused(s: Session, job: str, *, paused: bool, by: str, at: dt.datetime) -> None:
    s.execute(text("INSERT INTO job_state VALUES (:job, :paused, :by, :at) ON CONFLICT (job) "
                   "DO UPDATE SET paused = excluded.paused, updated_by = excluded.updated_by, "
                   "updated_at = excluded.updated_at"),
              {"job": job, "paused": paused, "by": by, "at": at})
