"""Hyper-parameter search: random (seeded) or grid, scored on an internal validation split.

The holdout is never looked at: the train split is cut again (25 % validation,
same seed), each trial is fitted on the rest and scored on the validation part
with the job's metric. The caller refits the best parameters on the whole train
split.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from appliance.errors import InvalidInput
from appliance.train.child import metrics as m
from appliance.train.child.pipeline import Feature, build_pipeline, split_rows
from appliance.train.estimators import CLASSIFICATION, EstimatorInfo, make_estimator
from appliance.train.spec import MAX_TRIALS, SearchSpec

VALIDATION_SIZE = 0.25


def candidates(search: SearchSpec, seed: int) -> list[dict[str, Any]]:
    """The parameter sets to try, in a deterministic order."""
    from sklearn.model_selection import ParameterGrid, ParameterSampler

    grid = ParameterGrid(search.params)
    if search.kind == "grid":
        if len(grid) > MAX_TRIALS:
            raise InvalidInput(f"the grid has {len(grid)} combinations; at most {MAX_TRIALS} are "
                               "allowed", detail={"field": "search.params"})
        return [dict(p) for p in grid]
    # sampling without replacement from a finite grid: never ask for more than it holds
    n_iter = min(search.n_iter, len(grid))
    return [dict(p) for p in ParameterSampler(search.params, n_iter=n_iter, random_state=seed)]


# ``map_trials(score, sets, data)``: ``[score(params, data) for params in sets]``, however
# it likes (appliance.train.dask_runner: one Dask task per set); None: here, in a loop.
TrialMapper = Callable[[Callable[..., dict[str, Any]], list[dict[str, Any]], Any],
                       list[dict[str, Any]]]


def run_search(*, search: SearchSpec, info: EstimatorInfo, base_params: dict[str, Any],
               features: list[Feature], X: Any, y: Any, n_classes: int, metric: str, seed: int,
               progress: Callable[[float], None] | None = None,
               map_trials: TrialMapper | None = None,
               ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(trials [{"index", "params", "metrics"}], best trial or None)."""
    train, valid = split_rows(y, info.task, test_size=VALIDATION_SIZE, seed=seed)
    data = (X.iloc[train], y[train], X.iloc[valid], y[valid])
    sets = candidates(search, seed)
    score = functools.partial(score_trial, info=info, base_params=base_params,
                              features=features, n_classes=n_classes, seed=seed)
    if map_trials is not None:
        scores = map_trials(score, sets, data)
    else:
        scores = []
        for i, params in enumerate(sets):
            scores.append(score(params, data))
            if progress is not None:
                progress((i + 1) / len(sets))
    trials: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    for i, (params, scored) in enumerate(zip(sets, scores, strict=True)):
        trial = {"index": i, "params": params, "metrics": scored}
        trials.append(trial)
        if best is None or m.better(metric, scored.get(metric), best["metrics"].get(metric)):
            best = trial
    return trials, best


def score_trial(params: dict[str, Any], data: tuple[Any, Any, Any, Any], *,
                info: EstimatorInfo, base_params: dict[str, Any], features: list[Feature],
                n_classes: int, seed: int) -> dict[str, Any]:
    """One parameter set fitted on the search's fit rows, scored on its validation rows."""
    X_fit, y_fit, X_val, y_val = data
    estimator = make_estimator(info, {**base_params, **params}, seed=seed)
    pipeline = build_pipeline(info, estimator, features)
    pipeline.fit(X_fit, y_fit)
    pred, proba, scores = m.predict_all(pipeline, X_val)
    if info.task == CLASSIFICATION:
        pred = pred.astype("int64")
    return m.task_metrics(info.task, y_val, pred, proba, n_classes, scores)
