"""Global importances at training, on the holdout.

Permutation importance is scored through the exported ONNX model (the artifact
that serves): each raw column of the holdout is shuffled ``REPEATS`` times
(seeded) and the job's metric is recomputed; the importance is the mean loss of
the metric (positive = the model needs the column). Native importances come
from the estimator where it has them: XGBoost's ``total_gain``, a tree model's
``feature_importances_`` (impurity), a linear model's absolute coefficients
(averaged over classes; on scaled inputs when the pipeline scales). Both are
per raw column: the one-hot columns of a categorical column are summed back.
"""

from __future__ import annotations

from typing import Any

from appliance.domain.explain import FeatureImportance, GlobalImportances
from appliance.train.child import metrics as m
from appliance.train.child.pipeline import Feature
from appliance.train.estimators import CLASSIFICATION, EstimatorInfo

REPEATS = 5
MAX_ROWS = 2000
MAX_SCORED_ROWS = 400_000   # rows scored in all: wide tables get a smaller holdout sample


def global_importances(pipeline: Any, onnx_bytes: bytes, X_test: Any, y_test: Any,
                       features: list[Feature], info: EstimatorInfo, *, metric: str,
                       n_classes: int, seed: int) -> GlobalImportances:
    import numpy as np

    from appliance.train.child.parity import onnx_feeds, onnx_session

    session = onnx_session(onnx_bytes)
    columns = {inp.name: f.name for inp, f in zip(session.get_inputs(), features, strict=True)}
    rows = max(100, min(MAX_ROWS, MAX_SCORED_ROWS // (REPEATS * max(1, len(features)))))
    X = X_test.iloc[:rows].reset_index(drop=True)
    y = np.asarray(y_test)[:rows]

    feeds = onnx_feeds(session, X, columns)

    def metrics(fed: dict[str, Any]) -> dict[str, float]:
        return _metrics(session.run(None, fed), y, info.task, n_classes)

    first = metrics(feeds)
    # the job's metric where it can be computed on this holdout, else a plain one
    used = metric if metric in first else ("accuracy" if info.task == CLASSIFICATION
                                           else "rmse")
    baseline = first.get(used)
    sign = 1.0 if m.higher_is_better(used) else -1.0
    rng = np.random.default_rng(seed)
    perm: dict[str, tuple[float | None, float | None]] = {}
    for name, column in columns.items():
        drops = []
        for _ in range(REPEATS):
            value = metrics({**feeds, name: feeds[name][rng.permutation(len(X))]}).get(used)
            if baseline is not None and value is not None:
                drops.append(sign * (baseline - value))
        perm[column] = ((float(np.mean(drops)), float(np.std(drops))) if drops
                        else (None, None))
    kind, native = native_importances(pipeline, features, info)
    items = [FeatureImportance(feature=f.name, permutation=perm[f.name][0],
                               permutation_std=perm[f.name][1],
                               native=None if native is None else native.get(f.name))
             for f in features]
    items.sort(key=lambda i: (-(i.permutation if i.permutation is not None else -np.inf),
                              -(i.native or 0.0)))
    return GlobalImportances(metric=used, baseline=baseline, repeats=REPEATS, rows=len(X),
                             seed=seed, native_kind=kind, features=items)


def _metrics(outputs: list[Any], y: Any, task: str, n_classes: int) -> dict[str, float]:
    """The task's metrics from ONNX outputs, by :func:`fast_metrics`."""
    import numpy as np

    n = len(y)
    if task != CLASSIFICATION:
        return fast_metrics(task, y, np.asarray(outputs[0]).reshape(n, -1)[:, 0], None, 0)
    labels = np.asarray(outputs[0]).reshape(n).astype(np.int64)
    proba = None
    if len(outputs) > 1:
        raw = np.asarray(outputs[1], dtype=np.float64).reshape(n, -1)
        if raw.shape[1] == n_classes and np.all(raw >= 0):
            proba = raw
    return fast_metrics(task, y, labels, proba, n_classes)


def fast_metrics(task: str, y: Any, pred: Any, proba: Any | None,
                 n_classes: int) -> dict[str, float]:
    """``appliance.train.child.metrics``' values in numpy: permutation importance scores the
    holdout ``features * REPEATS`` times, and scikit-learn's argument checks made that
    seconds (a test pins that both agree)."""
    import numpy as np

    y = np.asarray(y)
    if task != CLASSIFICATION:
        y = y.astype(np.float64)
        err = np.asarray(pred, dtype=np.float64) - y
        out = {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err)))}
        spread = float(np.sum((y - y.mean()) ** 2))
        if len(y) >= 2 and spread > 0:
            out["r2"] = 1.0 - float(np.sum(err ** 2)) / spread
        return out
    y = y.astype(np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    out = {"accuracy": float(np.mean(y == pred))}
    classes = [1] if n_classes == 2 else list(range(n_classes))
    precision, recall, f1 = [], [], []
    for c in classes:
        tp = float(np.sum((pred == c) & (y == c)))
        p_all, t_all = float(np.sum(pred == c)), float(np.sum(y == c))
        p = tp / p_all if p_all else 0.0
        r = tp / t_all if t_all else 0.0
        precision.append(p)
        recall.append(r)
        f1.append(2 * tp / (p_all + t_all) if p_all + t_all else 0.0)
    out.update(precision=float(np.mean(precision)), recall=float(np.mean(recall)),
               f1=float(np.mean(f1)))
    if proba is not None:
        clipped = np.clip(proba, 1e-15, 1.0)
        clipped = clipped / clipped.sum(axis=1, keepdims=True)
        if len(np.unique(y)) == n_classes:   # multiclass AUC on renormalised rows, as ours
            scores = proba if n_classes == 2 else clipped
            out["roc_auc"] = float(np.mean([_auc(scores[:, c], y == c) for c in classes]))
        out["log_loss"] = float(-np.mean(np.log(clipped[np.arange(len(y)), y])))
    return out


def _auc(scores: Any, positive: Any) -> float:
    """ROC AUC as the Mann-Whitney statistic, ties counted half."""
    from scipy.stats import rankdata

    ranks = rankdata(scores)
    n_pos = int(positive.sum())
    n_neg = len(scores) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def transformed_owners(pipeline: Any, features: list[Feature]) -> list[str]:
    """The raw column behind each column the estimator sees (numeric block, then one-hot)."""
    pre = pipeline.steps[0][1]
    owners: list[str] = []
    for name, block, cols in pre.transformers_:
        if name == "num":
            owners += [str(c) for c in cols]
        elif name == "cat":
            for col, cats in zip(cols, block.named_steps["onehot"].categories_, strict=True):
                owners += [str(col)] * len(cats)
    return owners


def native_importances(pipeline: Any, features: list[Feature], info: EstimatorInfo
                       ) -> tuple[str | None, dict[str, float] | None]:
    """(kind, raw column -> share of 1) from the estimator, or (None, None)."""
    import numpy as np

    estimator = pipeline.steps[-1][1]
    owners = transformed_owners(pipeline, features)
    values = np.zeros(len(owners))
    if info.flavor == "xgboost":
        kind = "total_gain"
        for key, gain in estimator.get_booster().get_score(importance_type="total_gain").items():
            if key.startswith("f") and key[1:].isdigit() and int(key[1:]) < len(owners):
                values[int(key[1:])] = float(gain)
    elif hasattr(estimator, "feature_importances_"):
        kind = "impurity"
        values = np.asarray(estimator.feature_importances_, dtype=np.float64).reshape(-1)
    elif hasattr(estimator, "coef_"):
        kind = "coefficient"
        coef = np.abs(np.asarray(estimator.coef_, dtype=np.float64))
        values = coef.reshape(-1, coef.shape[-1]).mean(axis=0)
    else:
        return None, None
    if len(values) != len(owners):
        return None, None
    out = dict.fromkeys((f.name for f in features), 0.0)
    for owner, v in zip(owners, values.tolist(), strict=True):
        out[owner] += v if np.isfinite(v) else 0.0
    total = sum(out.values())
    return kind, {k: (v / total if total > 0 else 0.0) for k, v in out.items()}
