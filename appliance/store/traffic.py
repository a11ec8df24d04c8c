"""Traffic and labelled metrics over time: the prediction log aggregated per time bucket.

Buckets are aligned to multiples of their width since the Unix epoch (a minute
bucket starts on the minute, a day bucket at 00:00 UTC), computed from
the epoch seconds of ``created_at`` so that no time-zone extension is needed. Rows are
grouped per bucket, model version and whether the row was a shadow score
(shadow rows repeat a served request: they are counted apart, never as
traffic). One logged row is one request id; a batch request logs a row per
record with the request's latency split evenly over its rows.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from sqlalchemy import text
from sqlmodel import Session

from appliance.store import dialect
from appliance.store.dialect import Duck
from appliance.store.predictions import labelled_metrics

_SHADOW = "coalesce(role, 'primary') = 'shadow'"


def _class_like(d: Duck) -> str:
    """A class label: a classifier's output (it has probabilities) or any non-float
    prediction."""
    return f"(probabilities IS NOT NULL OR {d.not_float('prediction')})"


class LatencyRow(NamedTuple):
    """Rows logged in one bucket by one version (shadow scores apart); times in ms."""

    bucket: float  # epoch seconds of the bucket's start; 0.0 for the whole window
    version: int
    shadow: bool
    requests: int
    canary: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float


class LabelledRow(NamedTuple):
    """Predictions made in one bucket by one version, and what their labels say."""

    bucket: float
    version: int
    shadow: bool
    predictions: int
    labelled: int
    accuracy: float | None
    rmse: float | None
    mean_label_delay_s: float | None
    classification: bool


def _bucket(d: Duck, bucket_seconds: float | None) -> str:
    return f"floor({d.epoch('created_at')} / :b) * :b" if bucket_seconds else "0.0"


def latency(s: Session, model: str, since: dt.datetime, until: dt.datetime,
            bucket_seconds: float | None) -> list[LatencyRow]:
    """Per bucket (epoch seconds of its start; 0 with no buckets), version and shadow flag:
    rows logged, rows routed to a canary, and latency percentiles in milliseconds."""
    d = dialect.of(s)
    rows = s.execute(text(f"""
        SELECT {_bucket(d, bucket_seconds)} AS bucket, version, {_SHADOW} AS shadow,
               count(*) AS requests,
               count(*) FILTER (WHERE role = 'canary') AS canary,
               {d.percentiles('latency_ms', (0.5, 0.95, 0.99))} AS q,
               avg(latency_ms) AS mean_ms,
               max(latency_ms) AS max_ms
        FROM predictions
        WHERE model = :m AND created_at >= :since AND created_at < :until
        GROUP BY 1, 2, 3 ORDER BY bucket, version, shadow
    """), {"m": model, "since": since, "until": until, "b": bucket_seconds}).fetchall()
    return [
        LatencyRow(float(b), int(v), bool(sh), int(n), int(c), float(q[0]), float(q[1]),
                   float(q[2]), float(mean), float(top))
        for b, v, sh, n, c, q, mean, top in rows
    ]


def class_counts(s: Session, model: str, since: dt.datetime, until: dt.datetime,
                 bucket_seconds: float, *, max_classes: int) -> list[tuple[float, int, bool, str, int]]:
    """(bucket, version, shadow, class, rows) for class-like predictions; a version with more
    than ``max_classes`` distinct values in the window is left out (it is no classifier)."""
    d = dialect.of(s)
    rows = s.execute(text(f"""
        WITH c AS (
            SELECT {_bucket(d, bucket_seconds)} AS bucket, version, {_SHADOW} AS shadow,
                   coalesce({d.json_scalar('prediction')}, 'null') AS cls,
                   count(*) AS n
            FROM predictions
            WHERE model = :m AND created_at >= :since AND created_at < :until
              AND {_class_like(d)}
            GROUP BY 1, 2, 3, 4
        ), k AS (
            SELECT version, count(DISTINCT cls) AS kinds FROM c GROUP BY version
        )
        SELECT c.bucket, c.version, c.shadow, c.cls, c.n
        FROM c JOIN k USING (version)
        WHERE k.kinds <= :k
        ORDER BY c.bucket, c.version, c.shadow, c.cls
    """), {"m": model, "since": since, "until": until, "b": bucket_seconds,
           "k": max_classes}).fetchall()
    return [(float(b), int(v), bool(sh), str(cls), int(n)) for b, v, sh, cls, n in rows]


def labelled(s: Session, model: str, since: dt.datetime, until: dt.datetime,
             bucket_seconds: float | None) -> list[LabelledRow]:
    """Per bucket of prediction time, version and shadow flag: predictions, how many have a
    label (the latest one per request id), accuracy and RMSE over those, the label delay,
    and whether the version predicts classes."""
    d = dialect.of(s)
    rows = s.execute(text(f"""
        WITH p AS (
            SELECT request_id, version, {_SHADOW} AS shadow, prediction, created_at,
                   {_class_like(d)} AS class_like, {_bucket(d, bucket_seconds)} AS bucket
            FROM predictions
            WHERE model = :m AND created_at >= :since AND created_at < :until
        ), l AS (
            SELECT request_id, {d.arg_max('label', 'received_at')} AS label,
                   max(received_at) AS received_at
            FROM labels
            WHERE model = :m AND request_id IN (SELECT request_id FROM p)
            GROUP BY request_id
        )
        SELECT p.bucket, p.version, p.shadow,
               count(*) AS predictions,
               count(l.request_id) AS labelled,
               {labelled_metrics(d)},
               avg({d.epoch('l.received_at')} - {d.epoch('p.created_at')}) AS delay,
               bool_or(p.class_like) AS classification
        FROM p LEFT JOIN l USING (request_id)
        GROUP BY 1, 2, 3 ORDER BY p.bucket, p.version, p.shadow
    """), {"m": model, "since": since, "until": until, "b": bucket_seconds}).fetchall()
    return [
        LabelledRow(float(b), int(v), bool(sh), int(n), int(k),
                    None if acc is None else float(acc), None if rmse is None else float(rmse),
                    None if delay is None else float(delay), bool(cls))
        for b, v, sh, n, k, acc, rmse, delay, cls in rows
    ]
