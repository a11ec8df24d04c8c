"""Outliers in the prediction log: rows checked and flagged per version and time bucket,
and the most outlying flagged rows. Shadow scores are left out (they repeat served
requests); a row logged without a detector has ``outlier`` NULL and is not checked."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlmodel import Session

from appliance.store import dialect

_SERVED = "model = :m AND created_at >= :since AND coalesce(role, 'primary') != 'shadow'"


class OutlierCount(NamedTuple):
    bucket: float  # epoch seconds of the bucket's start; 0.0 for the whole window
    version: int
    rows: int
    checked: int
    outliers: int


class FlaggedRow(NamedTuple):
    request_id: str
    version: int
    at: dt.datetime
    score: float | None
    inputs: Any


def counts(s: Session, model: str, since: dt.datetime,
           bucket_seconds: float | None) -> list[OutlierCount]:
    """Per bucket (or, without ``bucket_seconds``, the whole window) and version."""
    epoch = dialect.of(s).epoch("created_at")
    bucket = f"floor({epoch} / :b) * :b" if bucket_seconds else "0.0"
    rows = s.execute(text(f"""
        SELECT {bucket} AS bucket, version, count(*),
               count(outlier), count(*) FILTER (WHERE outlier)
        FROM predictions WHERE {_SERVED}
        GROUP BY 1, 2 ORDER BY 1, 2
    """), {"m": model, "since": since, "b": bucket_seconds}).fetchall()
    return [OutlierCount(float(b), int(v), int(n), int(c), int(o)) for b, v, n, c, o in rows]


def flagged(s: Session, model: str, since: dt.datetime, limit: int) -> list[FlaggedRow]:
    """The ``limit`` flagged rows with the lowest scores, newest first among equals."""
    rows = s.execute(text(f"""
        SELECT request_id, version, created_at, outlier_score, inputs
        FROM predictions WHERE {_SERVED} AND outlier
        ORDER BY outlier_score ASC NULLS LAST, created_at DESC LIMIT :n
    """), {"m": model, "since": since, "n": limit}).fetchall()
    return [FlaggedRow(str(r), int(v), at, None if sc is None else float(sc),
                       json.loads(i) if isinstance(i, str) else i)
            for r, v, at, sc, i in rows]
