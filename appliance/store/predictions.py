"""The prediction log and delayed labels: bulk appends and the label join."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlmodel import Session

from appliance.store import dialect
from appliance.store.db import Store
from appliance.store.dialect import PARTS_LOCK, Duck
from appliance.store.partsread import CompactionPass

# request_id, model, version, inputs, prediction, probabilities, latency_ms, at, role, and
# for a version with an outlier detector: outlier (bool), outlier_score (float)
PredictionEntry = (tuple[str, str, int, Any, Any, Any, float, dt.datetime, str]
                   | tuple[str, str, int, Any, Any, Any, float, dt.datetime, str, Any, Any])


def log_predictions(store: Store, entries: list[PredictionEntry]) -> None:
    """Append log entries where this store keeps them: its ``predictions`` table, or
    (scale-out) this host's Parquet parts (``appliance.store.parts``)."""
    if not entries:
        return
    if store.parts is not None:
        store.parts.add("predictions", prediction_batch(entries))
        return
    with store.write() as s:
        append_predictions(s, entries)


def log_labels(store: Store, model: str, labels: list[tuple[str, Any]], source: str,
               at: dt.datetime) -> None:
    """Append labels to the ``labels`` table, or (scale-out) this host's parts."""
    if not labels:
        return
    if store.parts is not None:
        store.parts.add("labels", label_batch(model, labels, source, at))
        return
    with store.write() as s:
        append_labels(s, model, labels, source, at)


def compact_parts(store: Store) -> CompactionPass:
    """Scale-out, the leader's schedule: merge each closed day's log parts, never beside
    a rewrite (``PARTS_LOCK``)."""
    if store.parts_reader is None:
        return CompactionPass(merged_parts=0, written_parts=0, rows=0)
    with store.exclusive(PARTS_LOCK):
        return store.parts_reader.compact()


def append_predictions(s: Session, entries: list[PredictionEntry]) -> None:
    """Append log entries in one statement (an Arrow table scanned by DuckDB; COPY on
    PostgreSQL)."""
    if entries:
        dialect.of(s).append(s, "predictions", prediction_batch(entries))


def prediction_batch(entries: list[PredictionEntry]) -> Any:
    """Log entries as an Arrow table with the ``predictions`` columns."""
    import pyarrow as pa

    rid, model, version, inputs, pred, proba, latency, at, role = zip(
        *(e[:9] for e in entries), strict=True)
    checks: list[tuple[Any, ...]] = [e[9:11] for e in entries]   # () without a detector
    flags = [None if not c or c[0] is None else bool(c[0]) for c in checks]
    scores = [None if len(c) < 2 or c[1] is None else float(c[1]) for c in checks]
    batch = pa.table({
        "request_id": pa.array(rid, pa.string()),
        "model": pa.array(model, pa.string()),
        "version": pa.array(version, pa.int32()),
        # a row given as columns (V2 tensors) becomes its record here, in the log's
        # writer thread, rather than on the request path
        "inputs": pa.array([json.dumps(x.to_record() if hasattr(x, "to_record") else x,
                                       default=str) for x in inputs], pa.string()),
        "prediction": pa.array([json.dumps(x, default=str) for x in pred], pa.string()),
        "probabilities": pa.array([None if x is None else json.dumps(x) for x in proba],
                                  pa.string()),
        "latency_ms": pa.array(latency, pa.float64()),
        "created_at": pa.array(at, pa.timestamp("us", tz="UTC")),
        "role": pa.array(role, pa.string()),
        "outlier": pa.array(flags, pa.bool_()),
        "outlier_score": pa.array(scores, pa.float64()),
    })
    return batch


def append_labels(s: Session, model: str, labels: list[tuple[str, Any]], source: str,
                  at: dt.datetime) -> None:
    if labels:
        dialect.of(s).append(s, "labels", label_batch(model, labels, source, at))


def label_batch(model: str, labels: list[tuple[str, Any]], source: str, at: dt.datetime) -> Any:
    """Labels as an Arrow table with the ``labels`` columns."""
    import pyarrow as pa

    return pa.table({
        "request_id": pa.array([r for r, _ in labels], pa.string()),
        "model": pa.array([model] * len(labels), pa.string()),
        "label": pa.array([json.dumps(v) for _, v in labels], pa.string()),
        "source": pa.array([source] * len(labels), pa.string()),
        "received_at": pa.array([at] * len(labels), pa.timestamp("us", tz="UTC")),
    })


def current_routing(s: Session, model: str) -> dict[str, Any] | None:
    row = s.execute(text("SELECT config FROM model_routing WHERE model = :m "
                         "ORDER BY updated_at DESC LIMIT 1"), {"m": model}).fetchone()
    if row is None:
        return None
    config = row[0]
    return json.loads(config) if isinstance(config, str) else config


def set_routing(s: Session, model: str, config: dict[str, Any], by: str,
                at: dt.datetime) -> None:
    s.execute(text("INSERT INTO model_routing VALUES (:id, :m, :c, :by, :at)"),
              {"id": str(uuid.uuid4()), "m": model, "c": json.dumps(config), "by": by, "at": at})


def role_counts(s: Session, model: str) -> dict[str, int]:
    rows = s.execute(text("SELECT coalesce(role, 'primary'), count(*) FROM predictions "
                          "WHERE model = :m GROUP BY 1"), {"m": model}).fetchall()
    return {r: int(n) for r, n in rows}


def known_request_ids(s: Session, model: str, request_ids: list[str]) -> set[str]:
    rows = s.execute(
        text("SELECT request_id FROM predictions WHERE model = :m "
             f"AND {dialect.of(s).in_list('request_id', 'ids')}"),
        {"m": model, "ids": request_ids},
    ).fetchall()
    return {r[0] for r in rows}


def labelled_metrics(d: Duck) -> str:
    """Accuracy (labels equal to predictions) and RMSE over the labelled rows of a
    prediction-log join ``p LEFT JOIN l``; shared with the per-bucket series."""
    pred, label = d.json_scalar("p.prediction"), d.json_scalar("l.label")
    return f"""avg(CASE WHEN l.request_id IS NULL THEN NULL
                        WHEN {pred}
                             = {label} THEN 1.0
                        ELSE 0.0 END) AS accuracy,
               sqrt(avg(CASE WHEN l.request_id IS NULL THEN NULL ELSE
                    power({d.try_double(pred)}
                          - {d.try_double(label)}, 2) END)) AS rmse"""


def _labelled(d: Duck) -> str:
    return f"""
        WITH p AS (
            SELECT request_id, version, prediction, probabilities FROM predictions
            WHERE model = :m AND created_at >= :since AND coalesce(role, 'primary') != 'shadow'
        ), l AS (
            SELECT request_id, {d.arg_max('label', 'received_at')} AS label FROM labels
            WHERE model = :m GROUP BY request_id
        )"""


def label_classes(s: Session, model: str, since: dt.datetime) -> dict[int, list[str]]:
    """Per version: the distinct labels of its labelled predictions that carry probabilities
    (at most three are returned: enough to tell a binary task)."""
    d = dialect.of(s)
    rows = s.execute(text(_labelled(d) + f"""
        SELECT p.version, {d.first_distinct(d.json_scalar('l.label'), 3)}
        FROM p JOIN l USING (request_id)
        WHERE p.probabilities IS NOT NULL GROUP BY p.version
    """), {"m": model, "since": since}).fetchall()
    return {int(v): [str(c) for c in classes if c is not None] for v, classes in rows}


def positive_scores(s: Session, model: str, since: dt.datetime, version: int, positive: str,
                    limit: int) -> list[tuple[float, bool]]:
    """(probability of ``positive``, label is ``positive``) for a version's newest labelled
    predictions; rows whose probability is missing are left out."""
    d = dialect.of(s)
    rows = s.execute(text(_labelled(d) + f"""
        SELECT {d.try_double(d.json_key('p.probabilities', 'CAST(:pos AS TEXT)'))},
               {d.json_scalar('l.label')} = :pos
        FROM p JOIN l USING (request_id)
        WHERE p.version = :v AND p.probabilities IS NOT NULL
        LIMIT :n
    """), {"m": model, "since": since, "v": version, "pos": positive, "n": limit}).fetchall()
    return [(float(score), bool(y)) for score, y in rows if score is not None]


class VersionStats(NamedTuple):
    """One version's labelled predictions over a window (shadow scores left out)."""

    version: int
    predictions: int
    labelled: int
    accuracy: float | None
    rmse: float | None
    mean_label_delay_s: float | None


def performance(s: Session, model: str, since: dt.datetime) -> list[VersionStats]:
    """Per version: predictions, labelled predictions, accuracy / RMSE, label delay."""
    d = dialect.of(s)
    rows = s.execute(text(f"""
        WITH p AS (
            SELECT request_id, version, prediction, created_at FROM predictions
            WHERE model = :m AND created_at >= :since AND coalesce(role, 'primary') != 'shadow'
        ), l AS (
            SELECT request_id, {d.arg_max('label', 'received_at')} AS label,
                   max(received_at) AS received_at
            FROM labels WHERE model = :m GROUP BY request_id
        )
        SELECT p.version,
               count(*) AS predictions,
               count(l.request_id) AS labelled,
               {labelled_metrics(d)},
               avg({d.epoch('l.received_at')} - {d.epoch('p.created_at')}) AS mean_label_delay_s
        FROM p LEFT JOIN l USING (request_id)
        GROUP BY p.version ORDER BY p.version
    """), {"m": model, "since": since}).fetchall()
    return [
        VersionStats(int(v), int(n), int(k), None if acc is None else float(acc),
                     None if rmse is None else float(rmse),
                     None if delay is None else float(delay))
        for v, n, k, acc, rmse, delay in rows
    ]


class LoggedPrediction(NamedTuple):
    """One logged answer: what was scored, and by which version."""

    request_id: str
    model: str
    version: int
    inputs: Any


def logged_prediction(s: Session, request_id: str, model: str | None) -> LoggedPrediction | None:
    """The newest answer logged under ``request_id`` (of ``model`` if given); shadow scores,
    which were never answered, are left out."""
    row = s.execute(text("""
        SELECT request_id, model, version, CAST(inputs AS VARCHAR) FROM predictions
        WHERE request_id = :r AND (CAST(:m AS VARCHAR) IS NULL OR model = :m)
          AND coalesce(role, 'primary') != 'shadow'
        ORDER BY created_at DESC LIMIT 1
    """), {"r": request_id, "m": model}).fetchone()
    if row is None:
        return None
    rid, name, version, inputs = row
    return LoggedPrediction(str(rid), str(name), int(version), json.loads(inputs))


def recent_predictions(s: Session, model: str, limit: int
                       ) -> list[tuple[str, int, dt.datetime, Any]]:
    """(request_id, version, created_at, prediction) of a model's newest answered requests."""
    rows = s.execute(text("""
        SELECT request_id, version, created_at, CAST(prediction AS VARCHAR) FROM predictions
        WHERE model = :m AND coalesce(role, 'primary') != 'shadow'
        ORDER BY created_at DESC LIMIT :n
    """), {"m": model, "n": limit}).fetchall()
    return [(rid, int(v), at, json.loads(p)) for rid, v, at, p in rows]
