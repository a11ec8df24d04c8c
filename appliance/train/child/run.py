"""One training job, start to finish, as run inside the training child process.

``run_job(request, progress)`` reads the dataset version's Parquet, splits it,
optionally searches, fits, scores, exports ONNX, checks parity and fairness,
scores the current champion's ONNX on the same holdout, and returns one
JSON-safe dict. Files go to ``request["out_dir"]`` only: ``model.onnx`` and
``holdout.parquet``. A user error (bad job, missing column, one class...) comes
back as ``{"ok": false, "error": {...}}``; anything else raises to the worker.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.errors import ApplianceError, InvalidInput
from appliance.train.child import metrics as m
from appliance.train.child import sizing
from appliance.train.child.jsonsafe import jsonable
from appliance.train.child.pipeline import (
    Feature,
    build_pipeline,
    encode_target,
    prepare_frame,
    select_features,
    split_rows,
)
from appliance.train.estimators import CLASSIFICATION, make_estimator
from appliance.train.spec import JobSpec, parse_job, validate_job

if TYPE_CHECKING:
    from appliance.train.child.search import TrialMapper

Progress = Callable[[str, float], None]
PACKAGES = ("scikit-learn", "xgboost", "onnx", "onnxruntime", "skl2onnx", "onnxmltools",
            "numpy", "polars", "pandas", "fairlearn")
MAX_WARNINGS = 20
# Packages installed under another distribution name: `import xgboost` comes from the
# CPU-only `xgboost-cpu` wheel by default, from `xgboost` in the GPU variant.
DISTRIBUTIONS = {"xgboost": ("xgboost", "xgboost-cpu")}
MIN_CLASS_ROWS = 10   # a class with fewer rows than this gets a warning: its metrics are noise
_DEVELOPER_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def empty_result() -> dict[str, Any]:
    keys = ("task", "flavor", "estimator", "metric", "higher_is_better", "params", "metrics",
            "metric_steps", "trials", "best_trial", "features", "target", "classes", "signature",
            "parity", "fairness", "champion_metric", "champion_error", "champion_improvement",
            "challenger_metric", "importances",
            "onnx_path", "holdout_path", "rows_train", "rows_test", "seed", "duration_s", "environment",
            "data", "outliers", "outliers_path")
    out: dict[str, Any] = {"ok": False, "error": None, **dict.fromkeys(keys)}
    out.update(metric_steps=[], trials=[], warnings=[])
    return out


def run_job(request: dict[str, Any], progress: Progress | None = None, *,
            map_trials: TrialMapper | None = None) -> dict[str, Any]:
    """``map_trials``: how a search scores its trials (``search.TrialMapper``); None: in a
    loop here (the child process), a Dask task per trial on a Dask worker."""
    started = time.monotonic()
    report = progress or (lambda stage, fraction: None)
    result = empty_result()
    result["environment"] = environment()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            _run(request, report, result, map_trials)
            result["ok"] = True
        except ApplianceError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {}
            result["error"] = {"type": exc.kind, "message": exc.message,
                               "field": detail.get("field"), "line": detail.get("line")}
    seen = list(dict.fromkeys(result["warnings"] + [
        f"{w.category.__name__}: {w.message}" for w in caught if _for_users(w)]))
    for w in caught:  # library deprecations are for developers: the run's log, not its warnings
        if not _for_users(w):
            print(f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})",
                  file=sys.stderr)
    result["warnings"] = [w[:500] for w in seen[:MAX_WARNINGS]]
    result["duration_s"] = round(time.monotonic() - started, 3)
    report("done", 1.0)
    return jsonable(result)


def _spec(request: dict[str, Any]) -> JobSpec:
    if isinstance(request.get("job_yaml"), str):
        return parse_job(request["job_yaml"])
    if isinstance(request.get("job"), dict):
        return validate_job(request["job"])
    raise InvalidInput("the request has neither 'job' (a mapping) nor 'job_yaml' (text)",
                       detail={"field": "job"})


def _run(request: dict[str, Any], report: Progress, result: dict[str, Any],
         map_trials: TrialMapper | None = None) -> None:
    import numpy as np
    import polars as pl

    spec = _spec(request)
    info = spec.info
    metric = str(spec.metric)
    seed = spec.split.seed
    result.update(task=info.task, flavor=info.flavor, estimator=info.name, metric=metric,
                  higher_is_better=m.higher_is_better(metric), target=spec.target, seed=seed)
    out_dir = Path(request["out_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)

    report("load", 0.02)
    path = Path(request["parquet_path"])
    if not path.is_file():
        raise InvalidInput(f"the dataset file {path.name} is not there", detail={"field": "dataset"})
    schema = dict(pl.read_parquet_schema(path))
    if spec.target not in schema:
        raise InvalidInput(f"the target column {spec.target!r} is not in the data; columns are: "
                           f"{', '.join(list(schema)[:50])}", detail={"field": "target"})
    features, notes = select_features(schema, target=spec.target,
                                      include=spec.features.include, exclude=spec.features.exclude)
    result["warnings"].extend(notes)
    if spec.fairness is not None:
        from appliance.train.child.fairness import group_frame

        group_frame(pl.DataFrame(schema=schema), spec.fairness.sensitive)   # names checked first
    if info.task != CLASSIFICATION and not schema[spec.target].is_numeric():
        raise InvalidInput(f"a regression target must be numeric; {spec.target!r} is "
                           f"{schema[spec.target]}", detail={"field": "target"})
    rows, columns = sizing.parquet_shape(path)
    memory_mb = request.get("memory_mb")
    plan = sizing.plan_data(mode=spec.data.mode, flavor=info.flavor, rows=rows, columns=columns,
                            cap_mb=int(memory_mb) if memory_mb else None,
                            sample_rows=spec.data.sample_rows)
    result["data"] = plan.to_dict()
    if plan.mode == sizing.EXTERNAL:
        _run_external(request, spec, features, plan, out_dir, report, result)
        return
    if plan.mode == sizing.SAMPLE and plan.sample_rows is not None and plan.sample_rows < rows:
        frame = sizing.read_sample(path, plan.sample_rows, rows, seed)
        result["warnings"].append(
            f"trained on a seeded sample of {frame.height:,} of {rows:,} rows (data.mode: sample, "
            f"seed {seed}); the metrics are on that sample's holdout")
    else:
        frame = pl.read_parquet(path)
    target = pl.col(spec.target)
    if frame.schema[spec.target].is_float():
        target = target.fill_nan(None)
    before = frame.height
    frame = frame.filter(target.is_not_null())
    if frame.height < before:
        result["warnings"].append(f"{before - frame.height} rows without a target value were left out")
    if frame.height == 0:
        raise InvalidInput(f"the target column {spec.target!r} has no values", detail={"field": "target"})
    y, classes = encode_target(frame[spec.target].to_numpy(), info.task)
    n_classes = len(classes) if classes is not None else 0
    result["warnings"].extend(data_warnings(frame, features, y, classes))
    result.update(classes=classes, features=[f.to_dict() for f in features])

    report("split", 0.05)
    train_idx, test_idx = split_rows(y, info.task, test_size=spec.split.test_size, seed=seed)
    X = prepare_frame(frame, features)
    X_train, X_test = X.iloc[train_idx], X.iloc[test_idx].reset_index(drop=True)
    y_train, y_test = y[train_idx], y[test_idx]
    result.update(rows_train=len(train_idx), rows_test=len(test_idx))

    params = dict(spec.model.params)
    if spec.search is not None:
        from appliance.train.child.search import run_search

        report("search", 0.1)
        trials, best = run_search(
            search=spec.search, info=info, base_params=params, features=features, X=X_train,
            y=y_train, n_classes=n_classes, metric=metric, seed=seed,
            progress=lambda f: report("search", 0.1 + 0.4 * f), map_trials=map_trials)
        _record_search(result, trials, best, metric)
        if best is not None:
            params.update(best["params"])

    report("fit", 0.5)
    estimator = make_estimator(info, params, seed=seed)
    pipeline = build_pipeline(info, estimator, features)
    result["metric_steps"] += _fit(pipeline, info.flavor, X_train, y_train, X_test, y_test)
    result["params"] = estimator.get_params(deep=False)

    report("evaluate", 0.65)
    pred, proba, scores = m.predict_all(pipeline, X_test)
    if info.task == CLASSIFICATION:
        pred = np.asarray(pred).astype(np.int64)
    result["metrics"] = m.task_metrics(info.task, y_test, pred, proba, n_classes, scores)
    _publish(request, spec, pipeline, features, classes, X_test, y_test, pred,
             frame[test_idx.tolist()], out_dir, report, result, X_train)


def _run_external(request: dict[str, Any], spec: JobSpec, features: list[Feature],
                  plan: sizing.DataPlan, out_dir: Path, report: Progress,
                  result: dict[str, Any]) -> None:
    """XGBoost from Parquet batches (``external``): the metrics are over the whole holdout;
    parity, fairness, the champion's score and ``holdout.parquet`` use a holdout sample."""
    import numpy as np

    from appliance.train.child.external import train_external

    result["warnings"].append(f"trained from Parquet batches: {plan.reason}")
    fit = train_external(Path(request["parquet_path"]), spec, spec.info, features, plan,
                         out_dir, report, dict(spec.model.params))
    result["warnings"].extend(fit.warnings)
    result.update(classes=fit.classes, features=[f.to_dict() for f in features],
                  rows_train=fit.rows_train, rows_test=fit.rows_test, params=fit.params,
                  metrics=fit.metrics)
    if spec.search is not None:
        _record_search(result, fit.trials, fit.best_trial, str(spec.metric))
    pred = np.asarray(fit.pipeline.predict(fit.X_holdout))
    if spec.task == CLASSIFICATION:
        pred = pred.astype(np.int64)
    _publish(request, spec, fit.pipeline, features, fit.classes, fit.X_holdout, fit.y_holdout,
             pred, fit.holdout_raw, out_dir, report, result, fit.X_holdout, in_memory=False)


def _record_search(result: dict[str, Any], trials: list[dict[str, Any]],
                   best: dict[str, Any] | None, metric: str) -> None:
    result["trials"], result["best_trial"] = trials, best
    result["metric_steps"] += [{"key": f"search.{metric}", "step": t["index"],
                                "value": t["metrics"][metric]}
                               for t in trials if metric in t["metrics"]]


def _publish(request: dict[str, Any], spec: JobSpec, pipeline: Any, features: list[Feature],
             classes: list[Any] | None, X_test: Any, y_test: Any, pred: Any, holdout_raw: Any,
             out_dir: Path, report: Progress, result: dict[str, Any], X_train: Any, *,
             in_memory: bool = True) -> None:
    """Export ONNX, check parity, fairness and the champion on the holdout, write it out;
    fit and export the outlier detector on ``X_train`` (when the job wants one and the model
    was trained in memory).

    ``X_train`` (prepared) gives the explanations' background sample: the training split,
    or the holdout sample when the model was trained from Parquet batches (``in_memory``
    False)."""
    info, metric = spec.info, str(spec.metric)
    n_classes = len(classes) if classes is not None else 0
    report("export", 0.75)
    from appliance.train.child.export import export_onnx

    onnx_bytes, signature = export_onnx(pipeline, features, info, classes=classes,
                                        metadata={"appliance.job": spec.name})
    onnx_path = out_dir / "model.onnx"
    _write_atomic(onnx_path, onnx_bytes)
    result.update(signature=signature, onnx_path=str(onnx_path))

    report("parity", 0.85)
    from appliance.train.child.parity import check_parity

    result["parity"] = check_parity(pipeline, onnx_bytes, X_test, features, info)
    if spec.outliers.enabled:
        report("outliers", 0.88)
        _outliers(spec, features, signature, X_train if in_memory else None, X_test,
                  out_dir, result)

    report("explain", 0.88)
    _explain(pipeline, onnx_bytes, X_train, X_test, y_test, features, spec, n_classes, out_dir,
             result)

    if spec.fairness is not None:
        from appliance.train.child.fairness import fairness_report, group_frame

        report("fairness", 0.92)
        result["fairness"] = fairness_report(
            task=info.task, n_classes=n_classes, y_true=y_test, y_pred=pred,
            groups=group_frame(holdout_raw, spec.fairness.sensitive),
            max_dp=spec.fairness.max_demographic_parity_difference,
            max_eo=spec.fairness.max_equalized_odds_difference)

    if request.get("champion_onnx"):
        report("champion", 0.95)
        from appliance.train.child.champion import score_onnx

        result["champion_metric"], result["champion_error"] = score_onnx(
            Path(request["champion_onnx"]), holdout_raw, y_test, task=info.task,
            classes=classes, metric=metric)
        # the gate's basis: the challenger scored by its own ONNX session, as the champion is
        result["challenger_metric"], _ = score_onnx(
            onnx_path, holdout_raw, y_test, task=info.task, classes=classes, metric=metric)
        result["champion_improvement"] = m.improvement(
            metric, result["challenger_metric"], result["champion_metric"])

    holdout_path = out_dir / "holdout.parquet"
    tmp = holdout_path.with_name(holdout_path.name + ".tmp")
    holdout_raw.write_parquet(tmp)
    os.replace(tmp, holdout_path)
    result["holdout_path"] = str(holdout_path)


def _explain(pipeline: Any, onnx_bytes: bytes, X_train: Any, X_test: Any, y_test: Any,
             features: list[Feature], spec: JobSpec, n_classes: int, out_dir: Path,
             result: dict[str, Any]) -> None:
    """Global importances and the explanation artifacts; a failure here costs the version
    its explanations (a warning says so), never the run."""
    from appliance.train.child.explainer import write_explainer
    from appliance.train.child.importance import global_importances

    info, seed = spec.info, spec.split.seed
    try:  # explanations are an extra: a failure costs the version them, never the run
        result["importances"] = global_importances(
            pipeline, onnx_bytes, X_test, y_test, features, info, metric=str(spec.metric),
            n_classes=n_classes, seed=seed).model_dump(mode="json")
    except Exception as exc:
        result["warnings"].append(f"global importances could not be computed: "
                                  f"{type(exc).__name__}: {str(exc)[:300]}")
    try:
        result["warnings"].extend(write_explainer(pipeline, features, info.flavor, X_train,
                                                  X_test, out_dir, seed))
    except Exception as exc:
        result["warnings"].append(f"explanations could not be prepared: "
                                  f"{type(exc).__name__}: {str(exc)[:300]}")
def _outliers(spec: JobSpec, features: list[Feature], signature: dict[str, Any], X_train: Any,
              X_test: Any, out_dir: Path, result: dict[str, Any]) -> None:
    """``outliers.onnx`` beside the model, and its facts (``result["outliers"]``)."""
    if X_train is None:
        result["warnings"].append("no outlier detector: the model was trained from Parquet "
                                  "batches, and the detector needs the training rows in memory")
        result["outliers"] = {"fitted": False, "reason": "trained from Parquet batches"}
        return
    from appliance.train.child.outliers import outlier_report

    data, facts = outlier_report(
        spec.info, features, [i["name"] for i in signature["inputs"]], X_train, X_test,
        contamination=spec.outliers.contamination, seed=spec.split.seed,
        range_margin=spec.outliers.range_margin, metadata={"appliance.job": spec.name})
    result["outliers"] = facts
    if data is None:
        result["warnings"].append(f"no outlier detector: {facts.get('reason')}")
        return
    path = out_dir / "outliers.onnx"
    _write_atomic(path, data)
    result["outliers_path"] = str(path)


def data_warnings(frame: Any, features: list[Feature], y: Any,
                  classes: list[Any] | None) -> list[str]:
    """What in the training data makes the model or its metrics doubtful, as sentences:
    a feature column with one value (or none), a class with very few rows."""
    import numpy as np

    out = []
    for f in features:
        column = frame[f.name]
        if column.dtype.is_float():
            column = column.fill_nan(None)
        values = column.drop_nulls()
        if values.len() == 0:
            out.append(f"column {f.name!r} has no values (all {frame.height} are missing): "
                       "it cannot help the model")
        elif values.n_unique() == 1:
            shown = str(values[0])[:40]
            out.append(f"column {f.name!r} has a single value ({shown}) in all {values.len()} "
                       "rows that have one: it cannot help the model")
    if classes is not None:
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(classes))
        for label, count in zip(classes, counts.tolist(), strict=True):
            if count < MIN_CLASS_ROWS:
                out.append(f"class {label!r} of the target has only {count} of {len(y)} rows "
                           f"(fewer than {MIN_CLASS_ROWS}): the model barely sees it and its "
                           "holdout metrics are unreliable")
    return out


def _for_users(w: warnings.WarningMessage) -> bool:
    return not issubclass(w.category, _DEVELOPER_WARNINGS)


def _fit(pipeline: Any, flavor: str, X_train: Any, y_train: Any, X_test: Any,
         y_test: Any) -> list[dict[str, Any]]:
    """Fit in place; return per-step metrics where they come for free."""
    model = pipeline.steps[-1][1]
    if flavor == "xgboost":
        # fit the preprocessing first so XGBoost can log its loss on the holdout each round;
        # the holdout only feeds the log, never early stopping, so the model is the same
        pre = pipeline.steps[0][1]
        Xt_train = pre.fit_transform(X_train, y_train)
        model.fit(Xt_train, y_train, eval_set=[(pre.transform(X_test), y_test)], verbose=False)
        steps = []
        for name, values in model.evals_result().get("validation_0", {}).items():
            steps += [{"key": f"holdout.{name}", "step": i, "value": float(v)}
                      for i, v in enumerate(values)]
        return steps
    pipeline.fit(X_train, y_train)
    if hasattr(model, "train_score_"):
        return [{"key": "train.loss", "step": i, "value": float(v)}
                for i, v in enumerate(model.train_score_)]
    return []


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def environment() -> dict[str, Any]:
    import platform
    from importlib import metadata

    packages: dict[str, str | None] = {}
    for name in PACKAGES:
        packages[name] = None
        for dist in DISTRIBUTIONS.get(name, (name,)):
            try:
                packages[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return {"python": platform.python_version(), "implementation": platform.python_implementation(),
            "packages": packages}

