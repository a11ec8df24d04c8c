"""A canary's test data: when its routing began, and each arm's labelled outcomes in order.

Outcomes are per labelled request: 1.0/0.0 for a correct/wrong class, or the
squared error of a number. They come in the order their labels arrived (then
prediction time, then request id), so a new label only ever extends the
sequence the sequential test walks (``appliance.monitor.sequential``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from appliance.store import dialect
from appliance.store.traffic import _class_like

_CORRECT = """CASE WHEN json_extract_string(p.prediction, '$')
                       = json_extract_string(l.label, '$') THEN 1.0 ELSE 0.0 END"""
_SQUARED = """power(TRY_CAST(json_extract_string(p.prediction, '$') AS DOUBLE)
                    - TRY_CAST(json_extract_string(l.label, '$') AS DOUBLE), 2)"""


def canary_since(s: Session, model: str, canary: int) -> dt.datetime | None:
    """When ``canary`` began taking traffic: the oldest routing row of the newest unbroken
    run of rows that route a share to that version (a changed share keeps the test going)."""
    rows = s.execute(text("SELECT config, updated_at FROM model_routing WHERE model = :m "
                          "ORDER BY updated_at DESC"), {"m": model}).fetchall()
    since = None
    for config, at in rows:
        cfg = json.loads(config) if isinstance(config, str) else config
        route = (cfg or {}).get("canary") or {}
        if route.get("version") != canary or not route.get("percent"):
            break
        since = at
    return since


def is_classifier(s: Session, model: str, version: int) -> bool:
    """Whether a version's logged predictions look like classes (probabilities or text)."""
    row = s.execute(text(f"""
        SELECT bool_or({_class_like(dialect.of(s))}) FROM (
            SELECT probabilities, prediction FROM predictions
            WHERE model = :m AND version = :v LIMIT 1000)
    """), {"m": model, "v": version}).fetchone()
    return bool(row and row[0])


def outcomes(s: Session, model: str, *, primary: int, canary: int, since: dt.datetime,
             classification: bool, limit: int) -> tuple[Any, Any]:
    """(from the canary?, outcome) as two numpy arrays, one entry per labelled request served
    since ``since`` by the primary version (role primary) or the canary version (role
    canary), in label order; shadow scores are never part of it. At most ``limit``, the
    oldest first. Fetched as columns (DuckDB's ``fetchnumpy``): a row at a time through
    SQLAlchemy took 10x longer on 100k labels."""
    import numpy as np

    value = _CORRECT if classification else _SQUARED
    conn: Any = s.connection().connection.driver_connection
    out = conn.execute(f"""
        WITH p AS (
            SELECT request_id, coalesce(role, 'primary') = 'canary' AS is_canary, prediction,
                   created_at
            FROM predictions
            WHERE model = $m AND created_at >= $since
              AND ((coalesce(role, 'primary') = 'primary' AND version = $pv)
                   OR (role = 'canary' AND version = $cv))
        ), l AS (
            SELECT request_id, arg_max(label, received_at) AS label,
                   max(received_at) AS received_at
            FROM labels
            WHERE model = $m AND request_id IN (SELECT request_id FROM p)
            GROUP BY request_id
        ), o AS (
            SELECT p.is_canary, {value} AS y, l.received_at, p.created_at, p.request_id
            FROM p JOIN l USING (request_id)
        )
        SELECT is_canary, y FROM o WHERE y IS NOT NULL
        ORDER BY received_at, created_at, request_id
        LIMIT $n
    """, {"m": model, "since": since, "pv": primary, "cv": canary, "n": limit}).fetchnumpy()
    return (np.asarray(out["is_canary"], dtype=bool),
            np.asarray(out["y"], dtype=np.float64))
