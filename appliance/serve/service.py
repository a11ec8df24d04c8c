"""Predictions: a request checked against the model's signature, scored, logged.

The body is a list of records keyed by column (or one record). Every input
column must be there with the right type and nothing else may be (besides an
optional ``request_id``); the error names the field. Labels that arrive later
are joined to the log by request id for live metrics per model version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

from appliance.domain.registry import CHAMPION
from appliance.errors import InvalidInput, UnprocessableInput
from appliance.serve.log import PredictionLog
from appliance.serve.sessions import LoadedModel, SessionCache
from appliance.store import predictions as q
from appliance.store.db import Store

log = logging.getLogger(__name__)
MAX_ROWS = 10_000
MAX_LABELS = 10_000
MAX_AUC_ROWS = 200_000  # newest labelled predictions per version scored for AUC
REQUEST_ID = "request_id"


class PredictionService:
    def __init__(self, store: Store, sessions: SessionCache, plog: PredictionLog,
                 metrics: Any = None, auditor: Any = None) -> None:
        self.store = store
        self.sessions = sessions
        self.log = plog
        self.metrics = metrics
        self.auditor = auditor
        self._routing: dict[str, Routing | None] = {}
        self._random = random.Random()  # noqa: S311 - traffic splitting, not security

    def predict(self, model: str, records: Any, *, alias: str | None = None,
                version: int | None = None) -> dict[str, Any]:
        started = time.perf_counter()
        rows = _rows(records)
        self.log.room_for(len(rows))
        routing = self._routing_for(model) if version is None and alias in (None, CHAMPION) \
            else None
        role = "primary"
        if routing is not None and routing.canary is not None and \
                routing.takes_canary(rows[0], self._random):
            loaded, role = self.sessions.resolve(model, version=routing.canary), "canary"
        else:
            loaded = self.sessions.resolve(model, alias=alias, version=version)
        feeds, request_ids = _feeds(loaded, rows)
        predictions, probabilities = _decode(loaded, loaded.session.run(None, feeds))
        latency_ms = (time.perf_counter() - started) * 1000
        now = dt.datetime.now(dt.UTC)
        per_row = latency_ms / len(rows)
        entries = [
            (rid, model, loaded.version, row, pred, None if probabilities is None
             else probabilities[i], per_row, now, role)
            for i, (rid, row, pred) in enumerate(zip(request_ids, rows, predictions, strict=True))
        ]
        if routing is not None and routing.shadow is not None:
            entries += self._shadow(model, routing.shadow, rows, request_ids, now)
        self.log.offer(entries)
        if self.metrics is not None:
            self.metrics.prediction(model, loaded.version, latency_ms / 1000, predictions)
        return {"model": model, "version": loaded.version, "route": role,
                "predictions": predictions, "probabilities": probabilities,
                "request_ids": request_ids}

    def _shadow(self, model: str, version: int, rows: list[dict[str, Any]],
                request_ids: list[str], now: dt.datetime) -> list[Any]:
        """Score with the shadow version and log it; never part of the answer."""
        started = time.perf_counter()
        try:
            shadow = self.sessions.resolve(model, version=version)
            feeds, _ = _feeds(shadow, rows)
            preds, proba = _decode(shadow, shadow.session.run(None, feeds))
        except Exception:  # a broken shadow must never break the primary answer
            log.exception("shadow scoring with %s v%s failed", model, version)
            return []
        per_row = (time.perf_counter() - started) * 1000 / len(rows)
        return [(rid, model, shadow.version, row, p, None if proba is None else proba[i],
                 per_row, now, "shadow")
                for i, (rid, row, p) in enumerate(zip(request_ids, rows, preds, strict=True))]

    # -- routing -------------------------------------------------------------------

    def routing(self, model: str) -> dict[str, Any]:
        self.sessions.registry.show_model(model)  # NotFound for an unknown model
        with self.store.read() as s:
            config = q.current_routing(s, model)
            counts = q.role_counts(s, model)
        return {"model": model, "routing": config or {"canary": None, "shadow": None},
                "served": counts}

    def set_routing(self, model: str, config: Any, *, by: Any) -> dict[str, Any]:
        """Set canary and shadow for a model's champion traffic; audited."""
        routing = Routing.parse(config)
        for number in (routing.canary, routing.shadow):
            if number is not None:
                self.sessions.registry.version(model, number)  # exists?
                self.sessions.resolve(model, version=number)    # loaded before it serves
        with self.store.write() as s:
            before = q.current_routing(s, model)
            q.set_routing(s, model, routing.to_dict(), by.actor, dt.datetime.now(dt.UTC))
            if self.auditor is not None:
                self.auditor.record(s, by, "model.routing.set", f"model:{model}",
                                    before=before, after=routing.to_dict())
        self._routing[model] = routing if routing.active else None
        return self.routing(model)

    def _routing_for(self, model: str) -> Routing | None:
        if model not in self._routing:
            with self.store.read() as s:
                config = q.current_routing(s, model)
            routing = Routing.parse(config) if config else None
            self._routing[model] = routing if routing is not None and routing.active else None
        return self._routing[model]

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
            classes = q.label_classes(s, model, since)
            for v in versions:
                v["auc"] = None
                labels = sorted(classes.get(v["version"], []))
                if len(labels) == 2:  # binary: the larger label is the positive class
                    v["auc"] = roc_auc(q.positive_scores(s, model, since, v["version"],
                                                         labels[1], MAX_AUC_ROWS))
        if not versions:
            self.sessions.registry.show_model(model)  # NotFound for an unknown model
        if self.metrics is not None:
            for v in versions:
                if v["label_coverage"] is not None:
                    self.metrics.label_coverage.labels(model=model, version=str(v["version"])) \
                        .set(v["label_coverage"])
        return {"model": model, "window_hours": hours, "versions": versions}


@dataclass(frozen=True)
class Routing:
    """A model's champion traffic: ``percent`` of requests to ``canary``; every request
    also scored by ``shadow`` and logged, never answered. Sticky on ``key`` if given."""

    canary: int | None = None
    percent: float = 0.0
    key: str | None = None
    shadow: int | None = None

    @property
    def active(self) -> bool:
        return (self.canary is not None and self.percent > 0) or self.shadow is not None

    def takes_canary(self, row: dict[str, Any], rng: random.Random) -> bool:
        if self.key is not None and row.get(self.key) is not None:
            digest = hashlib.sha256(str(row[self.key]).encode()).digest()
            return int.from_bytes(digest[:8], "big") % 10_000 < self.percent * 100
        return rng.random() * 100 < self.percent

    def to_dict(self) -> dict[str, Any]:
        return {"canary": None if self.canary is None else
                {"version": self.canary, "percent": self.percent, "key": self.key},
                "shadow": None if self.shadow is None else {"version": self.shadow}}

    @classmethod
    def parse(cls, config: Any) -> Routing:
        if not isinstance(config, dict) or set(config) - {"canary", "shadow"}:
            raise UnprocessableInput("routing is {\"canary\": {version, percent, key?}|null, "
                                     "\"shadow\": {version}|null}")
        canary, shadow = config.get("canary"), config.get("shadow")
        out: dict[str, Any] = {}
        if canary is not None:
            if not isinstance(canary, dict) or not isinstance(canary.get("version"), int):
                raise UnprocessableInput("canary needs an integer version",
                                         detail={"field": "canary.version"})
            percent = canary.get("percent")
            if isinstance(percent, bool) or not isinstance(percent, int | float) \
                    or not 0 <= percent <= 100:
                raise UnprocessableInput("canary.percent is a number from 0 to 100",
                                         detail={"field": "canary.percent"})
            key = canary.get("key")
            if key is not None and not isinstance(key, str):
                raise UnprocessableInput("canary.key names a column", detail={"field": "canary.key"})
            out.update(canary=canary["version"], percent=float(percent), key=key)
        if shadow is not None:
            if not isinstance(shadow, dict) or not isinstance(shadow.get("version"), int):
                raise UnprocessableInput("shadow needs an integer version",
                                         detail={"field": "shadow.version"})
            out["shadow"] = shadow["version"]
        return cls(**out)


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


_NUMBER_TYPES = frozenset({int, float, type(None)})
_TEXT_TYPES = frozenset({str, type(None)})
_INTS = {int}
_INT_TYPES = frozenset({int, type(None)})  # a float in an int64 input is checked slowly


def _feeds(loaded: LoadedModel, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[str]]:
    """The ONNX feeds and request ids for ``rows``, or 422 naming the first bad field.

    The float inputs are checked and converted together: one pass collects the
    Python types present, numpy converts the whole table at once and finds any
    NaN/inf. Only when something is wrong is the table walked value by value
    (``_refuse``), to name the first bad field the way a reader would look.
    """
    import numpy as np

    expected = loaded.columns
    with_id = expected | {REQUEST_ID}
    request_ids: list[str] = []
    for i, row in enumerate(rows):
        keys = row.keys()
        if keys == expected:  # the common case: exactly the signature, no request id
            request_ids.append(uuid.uuid4().hex)
            continue
        if keys != with_id:
            extra = keys - with_id
            if extra:
                name = sorted(extra)[0]
                raise UnprocessableInput(f"row {i}: unknown field {name!r}",
                                         detail={"row": i, "field": name})
            missing = expected - keys
            if missing:
                name = sorted(missing)[0]
                raise UnprocessableInput(f"row {i}: missing field {name!r}",
                                         detail={"row": i, "field": name})
        rid = row.get(REQUEST_ID)
        if rid is not None and (not isinstance(rid, str) or not 0 < len(rid) <= 100):
            raise UnprocessableInput(f"row {i}: request_id must be a string of 1-100 characters",
                                     detail={"row": i, "field": REQUEST_ID})
        request_ids.append(rid or uuid.uuid4().hex)

    floats = [inp for inp in loaded.inputs if inp.kind not in ("string", "int64")]
    columns = [inp.column for inp in floats]
    table = [[row[c] for c in columns] for row in rows]
    number_types: set[type] = set()
    for values in table:
        number_types.update(map(type, values))
    texts = {inp.column: [row[inp.column] for row in rows]
             for inp in loaded.inputs if inp.kind == "string"}
    ints = {inp.column: [row[inp.column] for row in rows]
            for inp in loaded.inputs if inp.kind == "int64"}
    if not number_types <= _NUMBER_TYPES \
            or any(not set(map(type, v)) <= _TEXT_TYPES for v in texts.values()) \
            or any(not set(map(type, v)) <= _INT_TYPES for v in ints.values()):
        _refuse(loaded, rows)  # raises, naming the first bad field
    try:
        matrix = np.array(table, dtype=np.float64).reshape(len(rows), len(floats))  # None: nan
    except OverflowError:  # an integer too big for a float
        _refuse(loaded, rows)
        raise
    if number_types != _INTS and not np.isfinite(matrix).all():
        bad = ~np.isfinite(matrix)
        for i, j in zip(*np.nonzero(bad.T)[::-1], strict=True):  # column by column, as read
            if table[i][j] is not None:
                raise UnprocessableInput(
                    f"row {i}: field {columns[j]!r} is not finite ({table[i][j]})",
                    detail={"row": int(i), "field": columns[j]})

    feeds: dict[str, Any] = {}
    single = matrix.T.astype(np.float32, order="C")  # one contiguous row per input
    double = np.ascontiguousarray(matrix.T) if any(i.kind == "double" for i in floats) \
        else None
    for j, inp in enumerate(floats):
        source = double if inp.kind == "double" and double is not None else single
        feeds[inp.name] = source[j].reshape(-1, 1)
    for inp in loaded.inputs:
        if inp.kind == "string":
            values = texts[inp.column]
            feeds[inp.name] = np.array([v if v is not None else "" for v in values],
                                       dtype=object).reshape(-1, 1)
        elif inp.kind == "int64":
            feeds[inp.name] = np.asarray([0 if v is None else v for v in ints[inp.column]],
                                         dtype=np.int64).reshape(-1, 1)
    return feeds, request_ids


def _refuse(loaded: LoadedModel, rows: list[dict[str, Any]]) -> None:
    """Raise 422 for the first bad value, input by input and row by row."""
    for inp in loaded.inputs:
        column = inp.column
        for i, row in enumerate(rows):
            v = row[column]
            if v is None:
                continue
            if inp.kind == "string":
                if not isinstance(v, str):
                    raise UnprocessableInput(
                        f"row {i}: field {column!r} must be text, got {type(v).__name__}",
                        detail={"row": i, "field": column})
                continue
            if isinstance(v, bool) or not isinstance(v, int | float):
                raise UnprocessableInput(
                    f"row {i}: field {column!r} must be a number, got {type(v).__name__}",
                    detail={"row": i, "field": column})
            try:
                finite = math.isfinite(v)
            except OverflowError:  # an integer too big for a float
                finite = False
            if not finite:
                raise UnprocessableInput(f"row {i}: field {column!r} is not finite ({v})"[:300],
                                         detail={"row": i, "field": column})


def roc_auc(pairs: list[tuple[float, bool]]) -> float | None:
    """Area under the ROC curve from (score, is positive) pairs, ties counted half
    (the Mann-Whitney statistic); None unless both classes are present."""
    if not pairs:
        return None
    import numpy as np
    from scipy.stats import rankdata

    scores = np.fromiter((p[0] for p in pairs), dtype=float, count=len(pairs))
    positive = np.fromiter((p[1] for p in pairs), dtype=bool, count=len(pairs))
    n_pos = int(positive.sum())
    n_neg = len(pairs) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _decode(loaded: LoadedModel, outputs: list[Any]) -> tuple[list[Any], list[dict[str, float]] | None]:
    first = outputs[0]
    if loaded.classes is not None or len(outputs) > 1:
        labels = [int(x) for x in first.reshape(-1).tolist()]
        classes = loaded.classes
        predictions = [classes[i] if classes is not None and 0 <= i < len(classes) else i
                       for i in labels]
        probabilities = None
        if len(outputs) > 1:
            proba = outputs[1]
            names = [str(c) for c in classes] if classes is not None else \
                [str(i) for i in range(proba.shape[1])]
            probabilities = [dict(zip(names, row, strict=True))  # tolist() gives floats
                             for row in proba.tolist()]
        return predictions, probabilities
    return [float(x) for x in first.reshape(-1).tolist()], None
