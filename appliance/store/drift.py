"""Drift reports (raw SQL, no ORM class) and the prediction-log reads drift needs."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from appliance.domain.drift import DriftReport
from appliance.store import dialect

_COLUMNS = ("id", "model", "version", "reference", "current", "drift", "p_val", "correction",
            "features", "prediction", "multivariate", "rows_reference", "rows_current", "duration_ms",
            "created_at", "created_by")


def add_report(s: Session, report: DriftReport) -> None:
    fields = report.model_dump()
    params = {c: fields[c] for c in _COLUMNS}
    params["id"] = str(params["id"])
    params["features"] = json.dumps(params["features"])
    params["prediction"] = json.dumps(params["prediction"])
    if params["multivariate"] is not None:
        params["multivariate"] = json.dumps(params["multivariate"])
    s.execute(text(f"INSERT INTO drift_reports ({', '.join(_COLUMNS)}) "
                   f"VALUES ({', '.join(':' + c for c in _COLUMNS)})"), params)


def reports(s: Session, model: str, *, limit: int) -> list[DriftReport]:
    rows = s.execute(text(
        f"SELECT {', '.join(_COLUMNS)} FROM drift_reports WHERE model = :m "
        "ORDER BY created_at DESC, id LIMIT :n"), {"m": model, "n": limit}).fetchall()
    return [_public(r) for r in rows]


def _public(row: Any) -> DriftReport:
    out = dict(zip(_COLUMNS, row, strict=True))
    out["id"] = uuid.UUID(str(out["id"]))
    for key in ("features", "prediction", "multivariate"):
        if isinstance(out[key], str):
            out[key] = json.loads(out[key])
    if isinstance(out["created_at"], dt.datetime):
        out["created_at"] = out["created_at"].astimezone(dt.UTC)
    return DriftReport(**out)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


def logged_rows(s: Session, model: str, since: dt.datetime) -> int:
    row = s.execute(text("SELECT count(DISTINCT request_id) FROM predictions "
                         "WHERE model = :m AND created_at >= :since"),
                    {"m": model, "since": since}).fetchone()
    return int(row[0]) if row else 0


def logged_inputs(s: Session, model: str, since: dt.datetime, columns: dict[str, bool],
                  *, limit: int) -> Any:
    """The window's inputs as an Arrow table, one row per request id (a shadow or a canary
    logging the same request twice counts once); ``columns`` maps column -> is numeric.
    Over ``limit`` rows, a deterministic subset (ordered by a hash of the request id)."""
    d = dialect.of(s)
    select = []
    params: dict[str, Any] = {"m": model, "since": since, "n": limit}
    for i, (col, numeric) in enumerate(columns.items()):
        params[f"p{i}"] = d.json_path_value(col)
        expr = d.json_path("inputs", f"p{i}")
        select.append(f"{d.try_double(expr)} AS c{i}" if numeric else f"{expr} AS c{i}")
    sql = (f"SELECT {', '.join(select)} FROM ("
           "  SELECT request_id, any_value(inputs) AS inputs FROM predictions"
           "  WHERE model = :m AND created_at >= :since GROUP BY request_id"
           f") AS w ORDER BY {d.hash('request_id')}, request_id LIMIT :n")
    return _arrow(s, sql, params, list(columns))


def logged_predictions(s: Session, model: str, version: int, since: dt.datetime,
                       *, limit: int) -> list[str]:
    """The window's predictions by one version, as JSON text (deterministic subset)."""
    d = dialect.of(s)
    rows = s.execute(text(
        f"SELECT {d.json_scalar('prediction')} FROM predictions "
        "WHERE model = :m AND version = :v AND created_at >= :since "
        f"ORDER BY {d.hash('request_id')}, request_id LIMIT :n"),
        {"m": model, "v": version, "since": since, "n": limit}).fetchall()
    return [r[0] for r in rows]


def _arrow(s: Session, sql: str, params: dict[str, Any], names: list[str]) -> Any:
    import pyarrow as pa

    res = s.execute(text(sql), params)
    rows = res.fetchall()
    return pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)})
