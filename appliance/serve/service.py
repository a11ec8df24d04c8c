"""Predictions: a request checked against the model's signature, scored, logged.

The body is a list of records keyed by column (or one record). Every input
column must be there with the right type and nothing else may be (besides an
optional ``request_id``); the error names the field. Labels that arrive later
are joined to the log by request id for live metrics per model version.
"""

from __future__ import annotations

import datetime as dt
import math
import time
import uuid
from typing import Any

from appliance.errors import InvalidInput, UnprocessableInput
from appliance.serve.log import PredictionLog
from appliance.serve.sessions import LoadedModel, SessionCache
from appliance.store import predictions as q
from appliance.store.db import Store

MAX_ROWS = 10_000
MAX_LABELS = 10_000
REQUEST_ID = "request_id"


class PredictionService:
    def __init__(self, store: Store, sessions: SessionCache, plog: PredictionLog,
                 metrics: Any = None) -> None:
        self.store = store
        self.sessions = sessions
        self.log = plog
        self.metrics = metrics

    def predict(self, model: str, records: Any, *, alias: str | None = None,
                version: int | None = None) -> dict[str, Any]:
        started = time.perf_counter()
        rows = _rows(records)
        self.log.room_for(len(rows))
        loaded = self.sessions.resolve(model, alias=alias, version=version)
        feeds, request_ids = _feeds(loaded, rows)
        outputs = loaded.session.run(None, feeds)
        predictions, probabilities = _decode(loaded, outputs)
        latency_ms = (time.perf_counter() - started) * 1000
        now = dt.datetime.now(dt.UTC)
        per_row = latency_ms / len(rows)
        self.log.offer([
            (rid, model, loaded.version, row, pred, None if probabilities is None
             else probabilities[i], per_row, now)
            for i, (rid, row, pred) in enumerate(zip(request_ids, rows, predictions, strict=True))
        ])
        if self.metrics is not None:
            self.metrics.prediction(model, loaded.version, latency_ms / 1000, predictions)
        return {"model": model, "version": loaded.version, "predictions": predictions,
                "probabilities": probabilities, "request_ids": request_ids}

    def feedback(self, model: str, labels: Any, *, source: str = "api") -> dict[str, Any]:
        """Store delayed ground truth ``[{request_id, label}]`` for a model's predictions."""
        if not isinstance(labels, list) or not labels:
            raise UnprocessableInput("send a JSON array of {\"request_id\", \"label\"}")
        if len(labels) > MAX_LABELS:
            raise InvalidInput(f"at most {MAX_LABELS} labels a request",
                               detail={"reason": "too_big"})
        pairs: list[tuple[str, Any]] = []
        for i, item in enumerate(labels):
            if not isinstance(item, dict) or set(item) != {REQUEST_ID, "label"}:
                raise UnprocessableInput(f"label {i}: expected exactly request_id and label",
                                         detail={"index": i})
            rid, label = item[REQUEST_ID], item["label"]
            if not isinstance(rid, str) or not 0 < len(rid) <= 100:
                raise UnprocessableInput(f"label {i}: request_id must be a string",
                                         detail={"index": i, "field": REQUEST_ID})
            if not isinstance(label, str | int | float | bool) or (
                    isinstance(label, float) and not math.isfinite(label)):
                raise UnprocessableInput(f"label {i}: label must be a finite number or text",
                                         detail={"index": i, "field": "label"})
            pairs.append((rid, label))
        self.log.flush()  # labels for predictions still queued must find them
        with self.store.write() as s:
            known = q.known_request_ids(s, model, [r for r, _ in pairs])
            q.append_labels(s, model, pairs, source, dt.datetime.now(dt.UTC))
        return {"received": len(pairs), "matched": len(known),
                "unknown_request_ids": sorted({r for r, _ in pairs} - known)[:20]}

    def performance(self, model: str, *, hours: float = 24.0) -> dict[str, Any]:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
        self.log.flush()
        with self.store.read() as s:
            versions = q.performance(s, model, since)
        if not versions:
            self.sessions.registry.show_model(model)  # NotFound for an unknown model
        return {"model": model, "window_hours": hours, "versions": versions}


def _rows(records: Any) -> list[dict[str, Any]]:
    rows = [records] if isinstance(records, dict) else records
    if not isinstance(rows, list) or not rows:
        raise UnprocessableInput("send a JSON object, or an array of objects keyed by column")
    if len(rows) > MAX_ROWS:
        raise InvalidInput(f"at most {MAX_ROWS} rows a request; score bigger files with "
                           "`appliance predict`", detail={"reason": "too_big", "rows": len(rows)})
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise UnprocessableInput(f"row {i} is not an object", detail={"row": i})
    return rows


def _feeds(loaded: LoadedModel, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    import numpy as np

    expected = loaded.columns
    request_ids: list[str] = []
    for i, row in enumerate(rows):
        extra = set(row) - expected - {REQUEST_ID}
        if extra:
            name = sorted(extra)[0]
            raise UnprocessableInput(f"row {i}: unknown field {name!r}",
                                     detail={"row": i, "field": name})
        missing = expected - set(row)
        if missing:
            name = sorted(missing)[0]
            raise UnprocessableInput(f"row {i}: missing field {name!r}",
                                     detail={"row": i, "field": name})
        rid = row.get(REQUEST_ID)
        if rid is not None and (not isinstance(rid, str) or not 0 < len(rid) <= 100):
            raise UnprocessableInput(f"row {i}: request_id must be a string of 1-100 characters",
                                     detail={"row": i, "field": REQUEST_ID})
        request_ids.append(rid or uuid.uuid4().hex)
    feeds: dict[str, Any] = {}
    for inp in loaded.inputs:
        values = [row[inp.column] for row in rows]
        if inp.kind == "string":
            for i, v in enumerate(values):
                if v is not None and not isinstance(v, str):
                    raise UnprocessableInput(
                        f"row {i}: field {inp.column!r} must be text, got {type(v).__name__}",
                        detail={"row": i, "field": inp.column})
            feeds[inp.name] = np.array([v if v is not None else "" for v in values],
                                       dtype=object).reshape(-1, 1)
            continue
        for i, v in enumerate(values):
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise UnprocessableInput(
                    f"row {i}: field {inp.column!r} must be a number, got {type(v).__name__}",
                    detail={"row": i, "field": inp.column})
            if not math.isfinite(v):
                raise UnprocessableInput(f"row {i}: field {inp.column!r} is not finite ({v})",
                                         detail={"row": i, "field": inp.column})
        dtype = {"double": np.float64, "int64": np.int64}.get(inp.kind, np.float32)
        filled = [math.nan if v is None else v for v in values] if dtype is not np.int64 \
            else [0 if v is None else v for v in values]
        feeds[inp.name] = np.asarray(filled, dtype=dtype).reshape(-1, 1)
    return feeds, request_ids


def _decode(loaded: LoadedModel, outputs: list[Any]) -> tuple[list[Any], list[dict[str, float]] | None]:
    first = outputs[0]
    if loaded.classes is not None or len(outputs) > 1:
        labels = [int(x) for x in first.reshape(-1)]
        classes = loaded.classes
        predictions = [classes[i] if classes is not None and 0 <= i < len(classes) else i
                       for i in labels]
        probabilities = None
        if len(outputs) > 1:
            proba = outputs[1]
            names = [str(c) for c in classes] if classes is not None else \
                [str(i) for i in range(proba.shape[1])]
            probabilities = [{n: float(p) for n, p in zip(names, row, strict=True)}
                             for row in proba.tolist()]
        return predictions, probabilities
    return [float(x) for x in first.reshape(-1)], None
