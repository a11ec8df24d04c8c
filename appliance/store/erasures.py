"""Queries for erasure by key and retention: the erasure records, deleting matching
prediction-log and label rows, and deleting rows past a retention window.

The matching conditions come in as (JSON path, text) pairs bound as parameters:
no value and no column name is ever spliced into the SQL text.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlmodel import Session

from appliance.store import dialect
from appliance.store.db import Store
from appliance.store.dialect import DUCK, PARTS_LOCK, Duck

# (the field's name in predictions.inputs, the value as text, compare as numbers)
InputMatch = list[tuple[str, str, bool]]


def _where_inputs(d: Duck, match: InputMatch, params: dict[str, Any]) -> str:
    parts = []
    for i, (key, value, numeric) in enumerate(match):
        params[f"p{i}"], params[f"v{i}"] = d.json_path_value(key), value
        field = d.json_path("inputs", f"p{i}")
        parts.append(f"{d.try_double(field)} = CAST(:v{i} AS DOUBLE PRECISION)" if numeric
                     else f"{field} = :v{i}")
    return " AND ".join(parts)


def count_matching_predictions(s: Session, match: InputMatch) -> tuple[int, int]:
    """(prediction rows, label rows) whose request matches ``match``."""
    params: dict[str, Any] = {}
    where = _where_inputs(dialect.of(s), match, params)
    n = s.execute(text(f"SELECT count(*) FROM predictions WHERE {where}"), params).scalar_one()
    k = s.execute(text(f"""SELECT count(*) FROM labels l WHERE EXISTS (
        SELECT 1 FROM predictions p WHERE p.request_id = l.request_id AND p.model = l.model
        AND {where.replace('inputs', 'p.inputs')})"""), params).scalar_one()
    return int(n), int(k)


def delete_matching_predictions(s: Session, match: InputMatch) -> tuple[int, int]:
    """Delete the matching predictions and the labels of their requests (labels first:
    they are found through the predictions)."""
    n, k = count_matching_predictions(s, match)
    params: dict[str, Any] = {}
    where = _where_inputs(dialect.of(s), match, params)
    if k:
        s.execute(text(f"""DELETE FROM labels WHERE EXISTS (
            SELECT 1 FROM predictions p WHERE p.request_id = labels.request_id
            AND p.model = labels.model AND {where.replace('inputs', 'p.inputs')})"""), params)
    if n:
        s.execute(text(f"DELETE FROM predictions WHERE {where}"), params)
    return n, k


def add_erasure(s: Session, *, erasure_id: uuid.UUID, actor: str, columns: list[str],
                dataset: str | None, counts: dict[str, Any], pending_files: list[str],
                at: dt.datetime) -> None:
    s.execute(text("INSERT INTO erasures (id, actor, columns, dataset, status, counts, "
                   "pending_files, created_at) VALUES (:id, :a, :c, :d, :st, :n, :f, :at)"),
              {"id": str(erasure_id), "a": actor, "c": json.dumps(columns), "d": dataset,
               "st": "cleaning" if pending_files else "done", "n": json.dumps(counts),
               "f": json.dumps(pending_files), "at": at})


def add_erased_version(s: Session, *, erasure_id: uuid.UUID, dataset: str, old: int, new: int,
                       rows_removed: int, at: dt.datetime) -> None:
    s.execute(text("INSERT INTO erasure_versions VALUES (:id, :e, :d, :o, :n, :r, :at)"),
              {"id": str(uuid.uuid4()), "e": str(erasure_id), "d": dataset, "o": old, "n": new,
               "r": rows_removed, "at": at})


class ErasureRecord(NamedTuple):
    id: str
    actor: str
    columns: list[str]
    dataset: str | None
    status: str
    counts: dict[str, Any]
    pending_files: list[str]
    created_at: dt.datetime


def _loads(value: Any, default: Any) -> Any:
    if value is None:
        return default
    return json.loads(value) if isinstance(value, str) else value


def list_erasures(s: Session, *, limit: int, status: str | None = None) -> list[ErasureRecord]:
    where = "WHERE status = :st" if status else ""
    rows = s.execute(text(f"SELECT id, actor, columns, dataset, status, counts, pending_files, "
                          f"created_at FROM erasures {where} ORDER BY created_at DESC LIMIT :n"),
                     {"n": limit, "st": status}).fetchall()
    return [ErasureRecord(str(r[0]), r[1], _loads(r[2], []), r[3], r[4], _loads(r[5], {}),
                          _loads(r[6], []), r[7]) for r in rows]


def finish_cleanup(s: Session, erasure_id: str) -> None:
    s.execute(text("UPDATE erasures SET status = 'done', pending_files = '[]' WHERE id = :id"),
              {"id": erasure_id})


class ErasedVersionRecord(NamedTuple):
    erasure_id: str
    dataset: str
    old_version: int
    new_version: int
    rows_removed: int
    created_at: dt.datetime


def erasures_of_version(s: Session, dataset: str, version: int) -> list[ErasedVersionRecord]:
    """The erasures that rewrote ``dataset`` version ``version``, oldest first."""
    rows = s.execute(text("SELECT erasure_id, dataset, old_version, new_version, rows_removed, "
                          "created_at FROM erasure_versions WHERE dataset = :d AND "
                          "old_version = :v ORDER BY created_at"),
                     {"d": dataset, "v": version}).fetchall()
    return [ErasedVersionRecord(str(r[0]), r[1], int(r[2]), int(r[3]), int(r[4]), r[5])
            for r in rows]


def models_trained_on(s: Session, dataset: str, version: int) -> list[tuple[str, int]]:
    rows = s.execute(text("SELECT m.name, v.number FROM model_versions v "
                          "JOIN registered_models m ON m.id = v.model_id "
                          "WHERE v.dataset = :d AND v.dataset_version = :n ORDER BY 1, 2"),
                     {"d": dataset, "n": version}).fetchall()
    return [(str(name), int(n)) for name, n in rows]


def parquet_artifacts(s: Session) -> list[str]:
    """The sha256 of every run artifact named ``*.parquet`` (a training holdout, a logged
    table): content-addressed files with no suffix, which a scan by name would miss."""
    rows = s.execute(text("SELECT DISTINCT sha256 FROM run_artifacts "
                          "WHERE lower(name) LIKE '%.parquet' ORDER BY 1")).fetchall()
    return [str(r[0]) for r in rows]


def replace_artifact(s: Session, old_sha: str, new_sha: str, size: int) -> int:
    """Point every run artifact stored as ``old_sha`` at ``new_sha``; how many were."""
    n = int(s.execute(text("SELECT count(*) FROM run_artifacts WHERE sha256 = :o"),
                      {"o": old_sha}).scalar_one())
    if n:
        s.execute(text("UPDATE run_artifacts SET sha256 = :n, size_bytes = :z WHERE sha256 = :o"),
                  {"n": new_sha, "z": size, "o": old_sha})
    return n


# -- scale-out: the log parts are rewritten without the rows ------------------------------


def erase_matching_in_parts(store: Store, match: InputMatch, salt: str) -> tuple[int, int]:
    """Rewrite the prediction-log and label parts without the matching predictions and
    the labels of their requests (labels first: they are found through the predictions).
    Rows still in another host's spool (at most its roll interval old) are not reached."""
    reader = store.parts_reader
    assert reader is not None
    params: dict[str, Any] = {}
    where = _where_inputs(DUCK, match, params)
    labelled = f"""EXISTS (SELECT 1 FROM predictions p WHERE p.request_id = t.request_id
        AND p.model = t.model AND {where.replace('inputs', 'p.inputs')})"""
    with store.exclusive(PARTS_LOCK):  # never beside a compaction of the same parts
        k = reader.rewrite("labels", labelled, params, salt)
        n = reader.rewrite("predictions", where, params, salt)
    return n, k


def delete_in_parts_before(store: Store, table: str, cutoff: dt.datetime, salt: str) -> int:
    """Retention on the parts: rewrite (or drop) the parts holding rows older than
    ``cutoff``; the rows removed."""
    reader = store.parts_reader
    assert reader is not None
    column = {"predictions": "created_at", "labels": "received_at"}[table]
    with store.exclusive(PARTS_LOCK):
        return reader.rewrite(table, f"{column} < :c", {"c": cutoff}, salt)


# -- retention ---------------------------------------------------------------------------


def delete_predictions_before(s: Session, cutoff: dt.datetime) -> int:
    n = int(s.execute(text("SELECT count(*) FROM predictions WHERE created_at < :c"),
                      {"c": cutoff}).scalar_one())
    if n:
        s.execute(text("DELETE FROM predictions WHERE created_at < :c"), {"c": cutoff})
    return n


def delete_labels_before(s: Session, cutoff: dt.datetime) -> int:
    n = int(s.execute(text("SELECT count(*) FROM labels WHERE received_at < :c"),
                      {"c": cutoff}).scalar_one())
    if n:
        s.execute(text("DELETE FROM labels WHERE received_at < :c"), {"c": cutoff})
    return n


def erased_snapshot_keys(s: Session) -> list[str]:
    """The object keys erasures deleted: each erased version's own snapshot key
    (``datasets/<dataset>/<sha256>.parquet``, its sha256 being what named it), unless a
    version still reads that key."""
    rows = s.execute(text(
        "SELECT d.name, v.sha256, v.parquet_path, v.status FROM dataset_versions v "
        "JOIN datasets d ON d.id = v.dataset_id")).all()
    live = {str(p) for _n, _s, p, status in rows}
    return sorted({f"datasets/{n}/{sha}.parquet" for n, sha, _p, status in rows
                   if status == "erased"} - live)
