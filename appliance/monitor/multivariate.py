"""One drift score for the whole input: alibi-detect's classifier-based detector.

``ClassifierDriftSklearn`` (alibi-detect 0.13, scikit-learn backend, loaded through
:func:`appliance.monitor.alibi.classifier_drift` so none of alibi-detect's deep-learning
requirements are imported) trains a domain classifier to tell reference rows from current
rows, with 5 stratified folds so every row gets an out-of-fold probability. Its p-value is a
KS test of those probabilities on reference rows against current rows (``binarize_preds`` off);
its ``distance`` is the out-of-fold accuracy minus 1/2. The ROC AUC of the same probabilities
is reported as the score people read: 0.5 means the classifier cannot tell the sides apart.

A change in how columns move *together* (a correlation that flips while every marginal stays
put) is invisible to the per-column tests and visible here. The classifier is a
``HistGradientBoostingClassifier`` (NaN handled natively); numeric columns go in as they are,
categorical ones as codes over both sides' values, text columns are left out. Each side is
sampled to ``max_rows`` (fixed seed) and the fits run on one thread: on a shared 2-core host
OpenMP's spinning threads made each fit 30x slower (measured 16.7 s vs 0.52 s).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from appliance.domain.drift import MultivariateDrift
from appliance.monitor.stattests import TEXT, Kind

METHOD = "alibi-detect ClassifierDrift (sklearn HistGradientBoosting, 5-fold, KS on probs)"
MIN_ROWS = 20  # a side smaller than this gets no verdict


def multivariate_drift(reference: Any, current: Any, kinds: dict[str, Kind], *, p_val: float,
                       seed: int = 0, max_rows: int = 2000) -> MultivariateDrift:
    """Classifier-based drift over every non-text column of two polars frames."""
    import numpy as np

    started = time.perf_counter()
    columns = [c for c, k in kinds.items() if k != TEXT]
    ref = _sampled(reference, max_rows, seed)
    cur = _sampled(current, max_rows, seed + 1)
    base = {"method": METHOD, "threshold": p_val, "columns": columns,
            "rows_reference": ref.height, "rows_current": cur.height}
    if not columns or ref.height < MIN_ROWS or cur.height < MIN_ROWS:
        return MultivariateDrift(**base, auc=None, distance=None, p_value=None, drift=False,
                                 duration_ms=_ms(started),
                                 note=f"needs a non-text column and {MIN_ROWS} rows a side")
    x_ref, x_cur = _encode(ref, cur, columns, kinds)
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    from appliance.monitor.alibi import classifier_drift
    from appliance.monitor.foreign import quiet_import

    with quiet_import():
        detector_class = classifier_drift()
    model = HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=15, learning_rate=0.1,
                                           early_stopping=False, random_state=seed)
    chatter = logging.getLogger("alibi_detect.cd.sklearn.classifier")  # a warning per fit
    level = chatter.level
    chatter.setLevel(logging.ERROR)
    try:
        with threadpool_limits(1), quiet_import():
            detector = detector_class(x_ref, model=model, p_val=p_val, preds_type="probs",
                                      binarize_preds=False, train_size=None, n_folds=5,
                                      seed=seed)
            out = detector.predict(x_cur, return_p_val=True, return_distance=True,
                                   return_probs=True)["data"]
    finally:
        chatter.setLevel(level)
    p_ref = np.asarray(out["probs_ref"]).reshape(len(out["probs_ref"]), -1)[:, -1]
    p_cur = np.asarray(out["probs_test"]).reshape(len(out["probs_test"]), -1)[:, -1]
    probs = np.concatenate([p_ref, p_cur])  # the probability of "current"
    labels = np.r_[np.zeros(p_ref.size), np.ones(p_cur.size)]
    p = float(out["p_val"])
    return MultivariateDrift(**base, auc=float(roc_auc_score(labels, probs)),
                             distance=float(out["distance"]), p_value=p, drift=p < p_val,
                             duration_ms=_ms(started))


def _sampled(frame: Any, n: int, seed: int) -> Any:
    return frame.sample(n, seed=seed) if frame.height > n else frame


def _encode(ref: Any, cur: Any, columns: list[str], kinds: dict[str, Kind]) -> tuple[Any, Any]:
    """Float32 matrices; a categorical column becomes dense ranks over both sides' values."""
    import numpy as np
    import polars as pl

    blocks_ref, blocks_cur = [], []
    for col in columns:
        dtype = ref[col].dtype
        as_numbers = kinds[col] == "numerical" or dtype.is_numeric() or dtype == pl.Boolean
        # a numeric column is its values (an integer category logged as 3.0 is still 3)
        cast = pl.Float64 if as_numbers else pl.Utf8
        both = pl.concat([ref[col].cast(cast, strict=False), cur[col].cast(cast, strict=False)])
        if not as_numbers:
            both = both.rank("dense").cast(pl.Float64)  # nulls stay null: NaN below
        values = both.to_numpy().astype(np.float32)
        values[~np.isfinite(values)] = np.nan
        blocks_ref.append(values[: ref.height])
        blocks_cur.append(values[ref.height:])
    return np.column_stack(blocks_ref), np.column_stack(blocks_cur)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
