"""XGBoost on a dataset version larger than the trainer's memory: external memory.

Three passes over the Parquet's record batches (:func:`sizing.batches`), each holding
one batch at a time:

1. **facts**: the target's values (classes), each categorical column's values on the
   train side, row counts, and two seeded samples that fit in memory: train-side rows
   to fit the preprocessing on (:data:`FIT_SAMPLE_ROWS`, fewer under a small cap: see
   :func:`sample_sizes`) and holdout rows for the ONNX
   parity check, fairness, the champion's score and ``holdout.parquet``
   (:data:`HOLDOUT_SAMPLE_ROWS`);
2. **train**: the same scikit-learn preprocessing as the in-memory path
   (:func:`pipeline.build_pipeline`; numeric medians fitted on the sample, one-hot
   categories from pass 1) is applied to each train-side batch, fed through an
   ``xgboost.DataIter`` into an ``ExtMemQuantileDMatrix`` whose cache pages live under
   the run's ``out_dir``; ``xgboost.train`` fits the booster, which is loaded into the
   pipeline's ``XGBClassifier``/``XGBRegressor`` so that export and parity are the
   in-memory path's own;
3. **evaluate**: every holdout row is scored batch by batch; the metrics are over the
   whole holdout.

The holdout is chosen by row hash (:func:`sizing.holdout_side`), not by the stratified
shuffle of the in-memory path: about ``split.test_size`` of the rows, deterministic for
a seed. A ``search:`` block runs on this path too (:func:`_search`): the train side is cut
again by row hash (:func:`sizing.validation_side`, 25 %), each trial trains from the
batches of the rest and is scored batch by batch on the validation rows, and the best
parameters are refitted on the whole train side. The preprocessing is the one fitted on
the train-side sample (the in-memory search refits it per trial on its fit part).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput
from appliance.train.child import metrics as m
from appliance.train.child.pipeline import (
    CATEGORICAL,
    MISSING_CATEGORY,
    Feature,
    build_pipeline,
    encode_target,
    prepare_frame,
)
from appliance.train.child.sizing import (
    DataPlan,
    batches,
    holdout_side,
    in_sample,
    rows_that_fit,
    validation_side,
)
from appliance.train.estimators import CLASSIFICATION, EstimatorInfo, make_estimator
from appliance.train.spec import JobSpec

# which rows a pass over the batches yields: the train side, the holdout, and the train
# side cut again for a search (fit on SEARCH_FIT, score on VALIDATION)
TRAIN, HOLDOUT, SEARCH_FIT, VALIDATION = "train", "holdout", "search_fit", "validation"

FIT_SAMPLE_ROWS = 100_000
HOLDOUT_SAMPLE_ROWS = 20_000
DEFAULT_ROUNDS = 100
DEFAULT_MAX_BIN = 256


@dataclass
class Facts:
    """What pass 1 learns about the version."""

    targets: set[Any] = field(default_factory=set)
    train_targets: set[Any] = field(default_factory=set)
    categories: dict[str, set[str]] = field(default_factory=dict)
    rows_train: int = 0
    rows_test: int = 0
    rows_no_target: int = 0
    rows_validation: int = 0
    fit_parts: list[Any] = field(default_factory=list)
    holdout_parts: list[Any] = field(default_factory=list)


@dataclass(frozen=True)
class ExternalFit:
    pipeline: Any
    params: dict[str, Any]
    classes: list[Any] | None
    metrics: dict[str, float]
    rows_train: int
    rows_test: int
    holdout_raw: Any      # polars: a seeded sample of the holdout, as read
    X_holdout: Any        # the same rows, prepared (pandas)
    y_holdout: Any
    warnings: list[str]
    trials: list[dict[str, Any]] = field(default_factory=list)
    best_trial: dict[str, Any] | None = None


def train_external(path: Path, spec: JobSpec, info: EstimatorInfo, features: list[Feature],
                   plan: DataPlan, out_dir: Path, report: Callable[[str, float], None],
                   params: dict[str, Any]) -> ExternalFit:
    import numpy as np
    import polars as pl

    seed, test_size = spec.split.seed, spec.split.test_size
    names = [f.name for f in features]
    sensitive = spec.fairness.sensitive if spec.fairness is not None else []
    columns = list(dict.fromkeys([*names, spec.target, *sensitive]))
    categorical = [f.name for f in features if f.kind == CATEGORICAL]
    report("scan", 0.05)
    fit_rows, holdout_rows = sample_sizes(plan)
    facts = _scan(path, columns, categorical, spec.target, seed, test_size, plan.rows,
                  fit_rows, holdout_rows)
    if not facts.targets:
        raise InvalidInput(f"the target column {spec.target!r} has no values",
                           detail={"field": "target"})
    if facts.rows_train < 2 or facts.rows_test < 1:
        raise InvalidInput(f"too few rows ({facts.rows_train + facts.rows_test}) to split into "
                           "train and test", detail={"field": "split.test_size"})
    values = np.asarray(sorted(facts.targets), dtype=object if info.task == CLASSIFICATION
                        else np.float64)
    _, classes = encode_target(values, info.task)
    if classes is not None and len(facts.train_targets) < 2:
        raise InvalidInput("the training split holds one class only; add rows or change the split",
                           detail={"field": "split"})
    lookup = np.asarray(classes, dtype=object) if classes is not None else None
    notes = []
    if facts.rows_no_target:
        notes.append(f"{facts.rows_no_target} rows without a target value were left out")

    def targets(frame: Any) -> Any:
        raw = frame[spec.target].to_numpy()
        if lookup is None:
            return raw.astype(np.float64)
        return np.searchsorted(lookup, raw.astype(object)).astype(np.int64)

    estimator = make_estimator(info, params, seed=seed)
    pipeline = build_pipeline(info, estimator, features)
    pre = pipeline.steps[0][1]
    if categorical:
        pre.set_params(cat__onehot__categories=[
            sorted({MISSING_CATEGORY if v == "" else v for v in facts.categories[c]})
            for c in categorical])
    fit_sample = pl.concat(facts.fit_parts).head(fit_rows)
    pre.fit(prepare_frame(fit_sample, features))

    def side(part: str) -> Iterator[tuple[Any, Any]]:
        for start, frame in batches(path, columns):
            frame = _with_target(frame, spec.target, start)
            positions = frame["__row"].to_numpy()
            mask = holdout_side(positions, seed, test_size)
            if part != HOLDOUT:
                mask = ~mask
            if part in (SEARCH_FIT, VALIDATION):
                valid = validation_side(positions, seed)
                mask &= valid if part == VALIDATION else ~valid
            chosen = frame.filter(pl.Series(mask))
            if chosen.height:
                X = pre.transform(prepare_frame(chosen, features))
                yield np.asarray(X, dtype=np.float32), targets(chosen)

    n_classes = len(classes or [])
    cache = out_dir / "xgb-cache"
    trials: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    try:
        if spec.search is not None:
            _check_search_rows(facts)
            trials, best = _search(spec, info, params, side, n_classes, cache,
                                   lambda f: report("search", 0.1 + 0.2 * f))
            if best is not None:
                estimator.set_params(**best["params"])
        recorded = estimator.get_params(deep=False)
        report("fit", 0.3)
        booster = _train(side, TRAIN, estimator, info, n_classes, cache, recorded)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    estimator.load_model(bytearray(booster.save_raw("json")))

    report("evaluate", 0.65)
    metrics = _evaluate(estimator, side(HOLDOUT), info, n_classes)
    holdout_raw = pl.concat(facts.holdout_parts).head(holdout_rows).drop("__row")
    return ExternalFit(pipeline=pipeline, params=recorded, classes=classes, metrics=metrics,
                       rows_train=facts.rows_train, rows_test=facts.rows_test,
                       holdout_raw=holdout_raw,
                       X_holdout=prepare_frame(holdout_raw, features),
                       y_holdout=targets(holdout_raw), warnings=notes,
                       trials=trials, best_trial=best)


def _check_search_rows(facts: Facts) -> None:
    fit = facts.rows_train - facts.rows_validation
    if facts.rows_validation < 1 or fit < 2:
        raise InvalidInput(f"too few training rows ({facts.rows_train}) to cut a validation "
                           "part off for the search; add rows or drop search",
                           detail={"field": "search"})


def _search(spec: JobSpec, info: EstimatorInfo, params: dict[str, Any],
            side: Callable[[str], Iterator[tuple[Any, Any]]], n_classes: int, cache: Path,
            progress: Callable[[float], None]
            ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The in-memory search's trials (:func:`search.candidates`, same order and format),
    each trained from the batches of the search-fit rows and scored on the validation rows."""
    from appliance.train.child.search import candidates

    assert spec.search is not None
    metric, seed = str(spec.metric), spec.split.seed
    sets = candidates(spec.search, seed)
    trials: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    for i, trial_params in enumerate(sets):
        estimator = make_estimator(info, {**params, **trial_params}, seed=seed)
        recorded = estimator.get_params(deep=False)
        booster = _train(side, SEARCH_FIT, estimator, info, n_classes, cache, recorded)
        estimator.load_model(bytearray(booster.save_raw("json")))
        scored = _evaluate(estimator, side(VALIDATION), info, n_classes)
        trial = {"index": i, "params": trial_params, "metrics": scored}
        trials.append(trial)
        if best is None or m.better(metric, scored.get(metric), best["metrics"].get(metric)):
            best = trial
        progress((i + 1) / len(sets))
    return trials, best


def _evaluate(estimator: Any, parts: Iterator[tuple[Any, Any]], info: EstimatorInfo,
              n_classes: int) -> dict[str, float]:
    """The task's metrics over every row ``parts`` yields, scored batch by batch."""
    import numpy as np

    ys, outs = [], []
    for X, y in parts:
        ys.append(y)
        outs.append(estimator.predict_proba(X) if info.task == CLASSIFICATION
                    else estimator.predict(X))
    y_all, out_all = np.concatenate(ys), np.concatenate(outs)
    if info.task == CLASSIFICATION:
        return m.task_metrics(info.task, y_all, out_all.argmax(axis=1).astype(np.int64),
                              out_all, n_classes, None)
    return m.task_metrics(info.task, y_all, out_all, None, 0, None)


def sample_sizes(plan: DataPlan) -> tuple[int, int]:
    """Rows of the preprocessing sample and of the holdout sample: at most
    :data:`FIT_SAMPLE_ROWS` and :data:`HOLDOUT_SAMPLE_ROWS`, and together no more than fits
    the cap's data share (at least 1,000 rows each)."""
    if plan.cap_mb is None:
        return FIT_SAMPLE_ROWS, HOLDOUT_SAMPLE_ROWS
    fits = rows_that_fit(plan.cap_mb, plan.columns)
    return (max(1000, min(FIT_SAMPLE_ROWS, fits * 5 // 6)),
            max(1000, min(HOLDOUT_SAMPLE_ROWS, fits // 6)))


def _with_target(frame: Any, target: str, start: int) -> Any:
    """The batch with its row positions (``__row``) and without rows lacking a target."""
    import polars as pl

    frame = frame.with_row_index("__row", offset=start).with_columns(
        pl.col("__row").cast(pl.UInt64))
    col = pl.col(target)
    if frame.schema[target].is_float():
        col = col.fill_nan(None)
    return frame.filter(col.is_not_null())


def _scan(path: Path, columns: list[str], categorical: list[str], target: str, seed: int,
          test_size: float, rows: int, fit_rows: int, holdout_rows: int) -> Facts:
    import polars as pl

    facts = Facts()
    fit_fraction = min(1.0, fit_rows / max(1.0, rows * (1 - test_size)) * 1.05)
    holdout_fraction = min(1.0, holdout_rows / max(1.0, rows * test_size) * 1.05)
    for start, batch in batches(path, columns):
        frame = _with_target(batch, target, start)
        facts.rows_no_target += batch.height - frame.height
        positions = frame["__row"].to_numpy()
        test = holdout_side(positions, seed, test_size)
        facts.rows_test += int(test.sum())
        facts.rows_train += int((~test).sum())
        facts.rows_validation += int((~test & validation_side(positions, seed)).sum())
        train = frame.filter(pl.Series(~test))
        facts.targets.update(frame[target].unique().to_list())
        facts.train_targets.update(train[target].unique().to_list()[:3])
        for name in categorical:
            seen = train[name].cast(pl.String).fill_null("").unique().to_list()
            facts.categories.setdefault(name, set()).update(seen)
        sampled = in_sample(positions, seed, fit_fraction)
        if (sampled & ~test).any():
            facts.fit_parts.append(frame.filter(pl.Series(sampled & ~test)))
        held = in_sample(positions, seed + 1, holdout_fraction)
        if (held & test).any():
            facts.holdout_parts.append(frame.filter(pl.Series(held & test)))
    if not facts.fit_parts:
        facts.fit_parts.append(pl.read_parquet(path, columns=columns, n_rows=0)
                               .with_row_index("__row"))
    if not facts.holdout_parts:
        facts.holdout_parts.append(facts.fit_parts[0].head(0))
    facts.fit_parts = [p.drop("__row") for p in facts.fit_parts]
    return facts


def _train(side: Callable[[str], Iterator[tuple[Any, Any]]], part: str, estimator: Any,
           info: EstimatorInfo, n_classes: int, cache: Path,
           recorded: dict[str, Any]) -> Any:
    """A booster trained from the batches of ``part`` through an ``ExtMemQuantileDMatrix``
    whose pages live under ``cache`` (the caller removes it)."""
    import xgboost as xgb

    params = {k: v for k, v in estimator.get_xgb_params().items() if v is not None}
    params["tree_method"] = "hist"
    if info.task == CLASSIFICATION and n_classes > 2:
        if params.get("objective") != "multi:softmax":
            params["objective"] = "multi:softprob"
        params["num_class"] = n_classes
    cache.mkdir(parents=True, exist_ok=True)

    class Batches(xgb.DataIter):   # type: ignore[misc]
        def __init__(self) -> None:
            self._it: Iterator[tuple[Any, Any]] | None = None
            super().__init__(cache_prefix=str(cache / part), release_data=True)

        def next(self, input_data: Callable[..., None]) -> bool:
            if self._it is None:
                self._it = side(part)
            item = next(self._it, None)
            if item is None:
                return False
            input_data(data=item[0], label=item[1])
            return True

        def reset(self) -> None:
            self._it = None

    dtrain = xgb.ExtMemQuantileDMatrix(Batches(),
                                       max_bin=int(recorded.get("max_bin") or DEFAULT_MAX_BIN))
    rounds = int(recorded.get("n_estimators") or DEFAULT_ROUNDS)
    booster = xgb.train(params, dtrain, num_boost_round=rounds)
    del dtrain
    return booster
