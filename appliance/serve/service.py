"""Predictions: a request checked against the model's signature, scored, logged.

The body is a list of records keyed by column (or one record), or a CSV body
typed by the signature (``appliance.serve.csvbody``). Every input column must
be there with the right type and nothing else may be (besides an optional
``request_id``); the error names the field and the row (``appliance.serve.feeds``).
Labels that arrive later are joined to the log by request id for live metrics
per model version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

from appliance.domain.changes import Topic
from appliance.domain.principal import Principal
from appliance.domain.registry import CHAMPION
from appliance.domain.serving import (
    Feedback,
    LivePerformance,
    ModelRouting,
    Prediction,
    RoutingConfig,
    VersionPerformance,
)
from appliance.errors import TooLarge, UnprocessableInput
from appliance.serve.columns import ColumnRecords, ColumnRow
from appliance.serve.csvbody import CsvRecords
from appliance.serve.feeds import MAX_ROWS, REQUEST_ID, ROWS, feeds_for, rows_of
from appliance.serve.log import PredictionLog
from appliance.serve.outliercheck import PendingCheck
from appliance.serve.outputs import Probabilities, decode
from appliance.serve.sessions import LoadedModel, SessionCache
from appliance.store import changes
from appliance.store import predictions as q
from appliance.store.db import Store

log = logging.getLogger(__name__)
MAX_LABELS = 10_000
MAX_AUC_ROWS = 200_000  # newest labelled predictions per version scored for AUC
_UNREAD = object()  # a model whose routing this host has not read yet
__all__ = ["MAX_ROWS", "REQUEST_ID", "PredictionService", "Routing", "roc_auc"]


class PredictionService:
    def __init__(self, store: Store, sessions: SessionCache, plog: PredictionLog,
                 metrics: Any = None, auditor: Any = None) -> None:
        self.store = store
        self.sessions = sessions
        self.log = plog
        self.metrics = metrics
        self.auditor = auditor
        self._routing: dict[str, Routing | None] = {}
        self._routing_lock = threading.Lock()  # fills and reloads of _routing, one at a time
        self._random = random.Random()  # noqa: S311 - traffic splitting, not security

    def predict(self, model: str, records: Any, *, alias: str | None = None,
                version: int | None = None) -> Prediction:
        """Score ``records``: a JSON record or array of them, a parsed CSV body, or named
        columns (``ColumnRecords``)."""
        started = time.perf_counter()
        rows = records.raw() if isinstance(records, CsvRecords | ColumnRecords) \
            else rows_of(records)
        self.log.room_for(len(rows))
        routing = self._routing_for(model) if version is None and alias in (None, CHAMPION) \
            else None
        role = "primary"
        if routing is not None and routing.canary is not None and \
                routing.takes_canary(rows[0], self._random):
            loaded, role = self.sessions.resolve(model, version=routing.canary), "canary"
        else:
            loaded = self.sessions.resolve(model, alias=alias, version=version)
        predictions, probabilities, request_ids, rows, checks = _score(loaded, records, rows)
        latency_ms = (time.perf_counter() - started) * 1000
        now = dt.datetime.now(dt.UTC)
        per_row = latency_ms / len(rows)
        entries = _entries(model, loaded.version, request_ids, rows, predictions, probabilities,
                           checks, per_row, now, role)
        if routing is not None and routing.shadow is not None:
            entries += self._shadow(model, routing.shadow, records, rows, request_ids, now)
        self.log.offer(entries)
        if self.metrics is not None:
            self.metrics.prediction(model, loaded.version, latency_ms / 1000, predictions)
        answer: Prediction = {"model": model, "version": loaded.version, "route": role,
                              "predictions": predictions, "probabilities": probabilities,
                              "request_ids": request_ids}
        return answer

    def _shadow(self, model: str, version: int, records: Any, rows: list[Any],
                request_ids: list[str], now: dt.datetime) -> list[Any]:
        """Score with the shadow version and log it; never part of the answer."""
        started = time.perf_counter()
        try:
            shadow = self.sessions.resolve(model, version=version)
            preds, proba, _, rows, checks = _score(shadow, records, rows)
        except Exception:  # a broken shadow must never break the primary answer
            log.exception("shadow scoring with %s v%s failed", model, version)
            return []
        per_row = (time.perf_counter() - started) * 1000 / len(rows)
        return _entries(model, shadow.version, request_ids, rows, preds, proba, checks, per_row,
                        now, "shadow")

    # -- routing -------------------------------------------------------------------

    def routing(self, model: str) -> ModelRouting:
        self.sessions.registry.model(model)  # NotFound for an unknown model
        with self.store.read() as s:
            config = q.current_routing(s, model)
        with self.store.analytics() as s:
            counts = q.role_counts(s, model)
        return ModelRouting(model=model, routing=RoutingConfig.model_validate(config or {}),
                            served=counts)

    def set_routing(self, model: str, config: Any, *, by: Principal) -> ModelRouting:
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
            changes.note(s, Topic.routing, model)  # the other hosts re-read it
        with self._routing_lock:
            self._routing[model] = routing if routing.active else None
        return self.routing(model)

    def _routing_for(self, model: str) -> Routing | None:
        hit = self._routing.get(model, _UNREAD)
        if hit is not _UNREAD:
            return hit  # type: ignore[return-value]
        with self._routing_lock:
            if model not in self._routing:
                self._routing[model] = self._read_routing(model)
            return self._routing[model]

    def _read_routing(self, model: str) -> Routing | None:
        with self.store.read() as s:
            config = q.current_routing(s, model)
        routing = Routing.parse(config) if config else None
        return routing if routing is not None and routing.active else None

    def reload_routing(self, model: str) -> None:
        """Another host changed ``model``'s routing (the change feed): re-read it if this
        host has it, loading a new canary's or shadow's session before it takes traffic."""
        with self._routing_lock:
            if model not in self._routing:
                return  # never read here: the first request reads the current one
            try:
                routing = self._read_routing(model)
            except Exception:
                log.exception("re-reading the routing of %s failed; dropped", model)
                self._routing.pop(model, None)
                return
            for number in (routing.canary, routing.shadow) if routing is not None else ():
                if number is not None:
                    try:
                        self.sessions.resolve(model, version=number)
                    except Exception:  # the request that needs it will say why
                        log.exception("loading %s v%s for its routing failed", model, number)
            self._routing[model] = routing

    def forget_routing(self) -> None:
        """Drop every model's routing (the change feed lost track): re-read on next use."""
        with self._routing_lock:
            self._routing = {}

    def feedback(self, model: str, labels: Any, *, source: str = "api") -> Feedback:
        """Store delayed ground truth ``[{request_id, label}]`` for a model's predictions."""
        if not isinstance(labels, list) or not labels:
            raise UnprocessableInput("send a JSON array of {\"request_id\", \"label\"}")
        if len(labels) > MAX_LABELS:
            raise TooLarge(f"at most {MAX_LABELS} labels a request")
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
        if self.store.parts is None:
            with self.store.write() as s:
                known = q.known_request_ids(s, model, [r for r, _ in pairs])
                q.append_labels(s, model, pairs, source, dt.datetime.now(dt.UTC))
        else:  # scale-out: matched against the parts and this host's spool
            with self.store.analytics() as s:
                known = q.known_request_ids(s, model, [r for r, _ in pairs])
            q.log_labels(self.store, model, pairs, source, dt.datetime.now(dt.UTC))
        return Feedback(received=len(pairs), matched=len(known),
                        unknown_request_ids=sorted({r for r, _ in pairs} - known)[:20])

    def performance(self, model: str, *, hours: float = 24.0) -> LivePerformance:
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
        self.log.flush()
        versions: list[VersionPerformance] = []
        with self.store.analytics() as s:
            classes = q.label_classes(s, model, since)
            for v in q.performance(s, model, since):
                auc = None
                labels = sorted(classes.get(v.version, []))
                if len(labels) == 2:  # binary: the larger label is the positive class
                    auc = roc_auc(q.positive_scores(s, model, since, v.version, labels[1],
                                                    MAX_AUC_ROWS))
                versions.append(VersionPerformance(
                    **v._asdict(), auc=auc,
                    label_coverage=v.labelled / v.predictions if v.predictions else None))
        if not versions:
            self.sessions.registry.model(model)  # NotFound for an unknown model
        if self.metrics is not None:
            for p in versions:
                if p.label_coverage is not None:
                    self.metrics.label_coverage.labels(model=model, version=str(p.version)) \
                        .set(p.label_coverage)
        return LivePerformance(model=model, window_hours=hours, versions=versions)


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

    def takes_canary(self, row: Any, rng: random.Random) -> bool:
        value = row.get(self.key) if self.key is not None and \
            isinstance(row, dict | ColumnRow) else None
        if value is not None:
            digest = hashlib.sha256(str(value).encode()).digest()
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


def _score(loaded: LoadedModel, records: Any, rows: list[Any]
           ) -> tuple[list[Any], Probabilities, list[str], list[dict[str, Any]],
                      PendingCheck | None]:
    """(predictions, probabilities, request ids, the rows as logged, the outlier check the log
    resolves) from one model; no check for a version without an outlier detector.

    A CSV body is typed by this model's own signature; an onnxruntime failure on
    input that passed the checks (a model that cannot score it) is a 422 naming
    the model, never a 500.
    Named columns (``ColumnRecords``, the V2 protocol) are fed as they are.
    """
    places = ROWS
    if isinstance(records, ColumnRecords):
        feeds, request_ids = records.feeds(loaded), records.request_ids
    else:
        if isinstance(records, CsvRecords):
            rows, places = records.typed(loaded), records.places
        feeds, request_ids, rows = feeds_for(loaded, rows, places)
    try:
        outputs = loaded.session.run(None, feeds)
    except Exception as exc:  # onnxruntime raises its own types
        raise UnprocessableInput(
            f"{loaded.model} v{loaded.version} could not score this input: "
            f"{str(exc)[:300]}", detail={"model": loaded.model,
                                         "version": loaded.version}) from exc
    predictions, probabilities = decode(loaded, outputs, len(rows))
    return predictions, probabilities, request_ids, rows, _outliers(loaded, feeds)


def _outliers(loaded: LoadedModel, feeds: dict[str, Any]) -> PendingCheck | None:
    """The version's outlier detector on the tensors the model was fed, run by the prediction
    log's writer (``appliance.serve.outliercheck``), never on the request path."""
    if loaded.detector is None:
        return None
    return PendingCheck(loaded.model, loaded.version, loaded.detector, feeds)


def _entries(model: str, version: int, request_ids: list[str], rows: list[Any],
             predictions: list[Any], probabilities: Probabilities, check: PendingCheck | None,
             per_row: float, now: dt.datetime, role: str) -> list[Any]:
    """The prediction log's entries for one scored request (with the check and the row's
    index in it, for a version with an outlier detector)."""
    if check is None:
        return [(rid, model, version, row, pred, None if probabilities is None
                 else probabilities[i], per_row, now, role)
                for i, (rid, row, pred) in enumerate(zip(request_ids, rows, predictions,
                                                         strict=True))]
    return [(rid, model, version, row, pred, None if probabilities is None
             else probabilities[i], per_row, now, role, check, i)
            for i, (rid, row, pred) in enumerate(zip(request_ids, rows, predictions,
                                                     strict=True))]


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
