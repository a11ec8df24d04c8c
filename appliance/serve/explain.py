"""Per-prediction explanations: why a logged request, or a posted row, got its score.

Two methods, chosen per model version by what its training left
(``appliance.train.child.explainer``):

- ``tree_shap``: XGBoost models whose booster was kept as XGBoost JSON. The row is
  fed through the same preprocessing (recorded as data at training and checked
  there against the pipeline), and XGBoost's exact TreeSHAP (``pred_contribs``)
  gives contributions in margin units (log-odds for a binary classifier), summed
  back from one-hot columns to their raw column.
- ``sampling_shapley``: every other model, over the ONNX session that serves
  (``appliance.serve.shapley``), against the training background sample; in
  probability units for a classifier, value units for a regressor.

A binary classifier is explained for its second class (the positive one, as the
metrics take it), a multiclass one for the class it predicts. A version without
these artifacts (trained before they existed, or uploaded as ONNX) is a
``NotFound`` that says so, never a 500.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from appliance.domain.explain import (
    SAMPLING_SHAPLEY,
    TREE_SHAP,
    Explanation,
    FeatureContribution,
    LoggedRequest,
    Method,
    Output,
)
from appliance.errors import InvalidInput, NotFound, TooLarge, UnprocessableInput
from appliance.runs.service import RunService
from appliance.serve.csvbody import CsvRecords
from appliance.serve.feeds import ROWS, Places, feeds_for, rows_of
from appliance.serve.outputs import decode
from appliance.serve.sessions import LoadedModel, SessionCache
from appliance.serve.shapley import BACKGROUND, PERMUTATIONS, sampling_shapley
from appliance.store import predictions as q
from appliance.store.db import Store
from appliance.train.child.explainer import BACKGROUND as BACKGROUND_FILE
from appliance.train.child.explainer import BOOSTER, PREPROCESS, Preprocess

MAX_ROWS = 100            # rows one explain request may post
SEED = 0                  # sampling_shapley's seed: the same row gets the same answer
_CACHED = 32              # explainers kept (one per model version)
_IDENTITY = ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror",
             "reg:quantileerror")


@dataclass(frozen=True)
class Explainer:
    """What one model version is explained with."""

    loaded: LoadedModel
    task: str | None
    background: dict[str, Any]      # ONNX input -> [b, 1] background values
    background_rows: int
    booster: Any = None             # xgboost.Booster from XGBoost JSON, or None
    preprocess: Preprocess | None = None
    identity: bool = False          # the booster's margin is its prediction (regression)


class ExplainService:
    def __init__(self, store: Store, sessions: SessionCache, runs: RunService, *,
                 flush: Callable[[], object]) -> None:
        self.store = store
        self.sessions = sessions
        self.runs = runs
        self.flush = flush  # the prediction log's queue, so a fresh request id is found
        self._explainers: dict[tuple[str, int], Explainer] = {}
        self._lock = threading.Lock()
        self._generation = 0  # bumped by forget: an explainer built before it is not kept

    def explain_request(self, request_id: str, *, model: str | None = None,
                        method: Method | None = None) -> Explanation:
        """The explanation of a logged prediction, by the version that answered it.

        ``method`` picks one (default: tree_shap where the version has a booster)."""
        if not isinstance(request_id, str) or not 0 < len(request_id) <= 100:
            raise InvalidInput("a request id is 1-100 characters", detail={"field": "request_id"})
        self.flush()
        with self.store.analytics() as s:
            logged = q.logged_prediction(s, request_id, model)
        if logged is None:
            where = f" for model {model!r}" if model else ""
            raise NotFound(f"no prediction was logged under request id {request_id!r}{where}",
                           detail={"request_id": request_id})
        explainer = self.explainer(logged.model, logged.version)
        row = logged.inputs if isinstance(logged.inputs, dict) else {}
        feeds, _, rows = feeds_for(explainer.loaded, [row])
        return self._explain(explainer, feeds, rows[0], request_id, _tree(explainer, method))

    def explain_rows(self, model: str, records: Any, *, alias: str | None = None,
                     version: int | None = None,
                     method: Method | None = None) -> list[Explanation]:
        """Explanations of posted rows (a predict body), by the alias's or given version."""
        loaded = self.sessions.resolve(model, alias=alias, version=version)
        explainer = self.explainer(model, loaded.version)
        tree = _tree(explainer, method)
        places: Places = ROWS
        if isinstance(records, CsvRecords):
            rows, places = records.typed(loaded), records.places
        else:
            rows = rows_of(records)
        if len(rows) > MAX_ROWS:
            raise TooLarge(f"at most {MAX_ROWS} rows an explain request",
                           detail={"rows": len(rows)})
        feeds, _, rows = feeds_for(loaded, rows, places)
        out = []
        for i, row in enumerate(rows):
            one = {k: v[i:i + 1] for k, v in feeds.items()}
            out.append(self._explain(explainer, one, row, None, tree))
        return out

    def recent(self, model: str, *, limit: int = 50) -> list[LoggedRequest]:
        """A model's newest answered requests (shadow scores left out), to pick one from."""
        self.sessions.registry.model(model)  # NotFound for an unknown model
        self.flush()
        with self.store.analytics() as s:
            rows = q.recent_predictions(s, model, limit)
        return [LoggedRequest(request_id=r, model=model, version=v, created_at=at, prediction=p)
                for r, v, at, p in rows]

    # -- the explainers ------------------------------------------------------------

    def explainer(self, model: str, version: int) -> Explainer:
        key = (model, version)
        hit = self._explainers.get(key)
        if hit is not None:
            return hit
        generation = self._generation
        built = self._build(model, version)
        with self._lock:
            if self._generation != generation:
                return built  # an erasure landed while it was built: not kept
            if len(self._explainers) >= _CACHED:
                self._explainers.pop(next(iter(self._explainers)))
            self._explainers[key] = built
        return built

    def forget(self, _key: str = "") -> None:
        """An erasure rewrote run artifacts (on this host or another: the change feed): drop
        every explainer, whose background sample may hold erased rows; rebuilt on use."""
        with self._lock:
            self._explainers = {}
            self._generation += 1

    def _build(self, model: str, version: int) -> Explainer:
        import io

        import polars as pl

        meta = self.sessions.registry.version(model, version)
        loaded = self.sessions.resolve(model, version=version)
        if meta.run_id is None:
            raise NotFound(f"{model} v{version} was registered as an ONNX file, without the "
                           "training data an explanation needs", detail={"reason": "no_explainer"})
        try:
            raw = self.runs.artifact_bytes(str(meta.run_id), BACKGROUND_FILE)
        except NotFound:
            raise NotFound(f"{model} v{version} was trained before explanations existed (its "
                           "run kept no background sample); retrain it to explain its "
                           "predictions", detail={"reason": "no_explainer"}) from None
        records = pl.read_parquet(io.BytesIO(raw)).head(BACKGROUND).to_dicts()
        background, _, _ = feeds_for(loaded, records)
        booster = preprocess = None
        identity = False
        if meta.flavor == "xgboost":
            tree: bytes | None = None
            spec: bytes | None = None
            try:
                tree = self.runs.artifact_bytes(str(meta.run_id), BOOSTER)
                spec = self.runs.artifact_bytes(str(meta.run_id), PREPROCESS)
            except NotFound:  # the preprocessing could not be recorded: sampling it is
                tree = spec = None
            if tree is not None and spec is not None:
                booster, identity = _booster(tree)
                preprocess = Preprocess.from_json(spec)
        return Explainer(loaded, meta.task, background, len(records), booster, preprocess,
                         identity)

    # -- one row ---------------------------------------------------------------------

    def _explain(self, ex: Explainer, feeds: dict[str, Any], row: dict[str, Any],
                 request_id: str | None, tree: bool) -> Explanation:
        import numpy as np

        started = time.perf_counter()
        loaded = ex.loaded
        try:
            outputs = loaded.session.run(None, feeds)
        except Exception as exc:  # onnxruntime raises its own types
            raise UnprocessableInput(f"{loaded.model} v{loaded.version} could not score this "
                                     f"row: {str(exc)[:300]}") from exc
        predictions, _ = decode(loaded, outputs, 1)
        classifier = loaded.classes is not None
        target: int | None = None
        probability = None
        if classifier:
            proba = np.asarray(outputs[1], dtype=np.float64).reshape(1, -1)[0]
            target = 1 if proba.shape[0] == 2 else int(np.argmax(proba))
            probability = float(proba[target])
        inputs = [i.name for i in loaded.inputs]
        column = {i.name: i.column for i in loaded.inputs}
        extra: dict[str, Any] = {}
        method: Method
        output: Output
        if tree and ex.booster is not None and ex.preprocess is not None:
            method = TREE_SHAP
            output = "margin" if classifier or not ex.identity else "value"
            per_column, base = tree_contributions(
                ex.booster, ex.preprocess, {column[n]: v for n, v in feeds.items()}, target)
        else:
            method = SAMPLING_SHAPLEY
            output = "probability" if classifier else "value"

            def score(batch: dict[str, Any]) -> Any:
                out = loaded.session.run(None, batch)
                if classifier:
                    return np.asarray(out[1]).reshape(len(out[1]), -1)[:, target]
                return np.asarray(out[0]).reshape(-1)

            result = sampling_shapley(score, feeds, ex.background, inputs,
                                      permutations=PERMUTATIONS, seed=SEED)
            per_column = {column[n]: float(v) for n, v in zip(inputs, result.contributions,
                                                                strict=True)}
            base = result.base_value
            extra = {"samples": PERMUTATIONS, "background_rows": ex.background_rows,
                     "seed": SEED}
        contributions = sorted(
            (FeatureContribution(feature=c, value=row.get(c), contribution=v)
             for c, v in per_column.items()), key=lambda f: -abs(f.contribution))
        return Explanation(
            model=loaded.model, version=loaded.version, request_id=request_id, method=method,
            output=output, explained_class=None if target is None or loaded.classes is None
            else loaded.classes[target],
            base_value=base, score=base + sum(per_column.values()), prediction=predictions[0],
            probability=probability, contributions=contributions,
            duration_ms=(time.perf_counter() - started) * 1000, **extra)


def _tree(ex: Explainer, method: Method | None) -> bool:
    """Use TreeSHAP? By default where the version has a booster; asked for, it must."""
    has = ex.booster is not None and ex.preprocess is not None
    if method == TREE_SHAP and not has:
        raise InvalidInput(f"{ex.loaded.model} v{ex.loaded.version} has no XGBoost booster to "
                           "run TreeSHAP on; leave method out or use sampling_shapley",
                           detail={"field": "method"})
    return has and method != SAMPLING_SHAPLEY


def _booster(data: bytes) -> tuple[Any, bool]:
    """An XGBoost booster from its JSON (parsing JSON runs no code), single-threaded, and
    whether its margin is its prediction."""
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(bytearray(data))
    booster.set_param({"nthread": 1})
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    return booster, objective in _IDENTITY


def tree_contributions(booster: Any, preprocess: Preprocess, columns: dict[str, Any],
                       target: int | None) -> tuple[dict[str, float], float]:
    """(raw column -> contribution, base value) for one row in margin units, by XGBoost's
    exact TreeSHAP: the row (raw columns, as ONNX feeds hold them) goes through the
    recorded preprocessing, and each one-hot column's share goes back to its column.
    ``target`` picks a multiclass model's class."""
    import numpy as np
    import xgboost

    matrix = preprocess.transform(columns)
    contribs = np.asarray(booster.predict(xgboost.DMatrix(matrix, nthread=1),
                                          pred_contribs=True))
    values = contribs[0] if contribs.ndim == 2 else contribs[0, target or 0]
    out = dict.fromkeys(columns, 0.0)
    for owner, v in zip(preprocess.owners, values[:-1].tolist(), strict=True):
        out[owner] += v
    return out, float(values[-1])
