"""The classifier-based detector: one score for the whole input, blind spots of per-column tests."""

from __future__ import annotations

import numpy as np
import polars as pl

from appliance.monitor.multivariate import multivariate_drift
from appliance.monitor.selection import column_kind, feature_tests


def _frame(n: int, rho: float, seed: int) -> pl.DataFrame:
    """a and b standard normal with correlation ``rho``; plan a category independent of both."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rho * a + np.sqrt(1 - rho**2) * rng.normal(size=n)
    return pl.DataFrame({"a": a, "b": b, "plan": rng.choice(["basic", "pro", "team"], n)})


def test_the_multivariate_detector_fires_on_a_correlation_flip_the_columns_miss() -> None:
    ref, flipped, same = _frame(800, 0.9, 1), _frame(800, -0.9, 2), _frame(800, 0.9, 3)
    kinds = {c: column_kind(ref[c]) for c in ref.columns}
    # every marginal is unchanged: no per-column test sees the flip
    assert not any(f.drift for f in feature_tests(ref, flipped, kinds, p_val=0.05,
                                                  correction="bonferroni"))
    found = multivariate_drift(ref, flipped, kinds, p_val=0.05, max_rows=600)
    assert found.drift is True and found.p_value is not None and found.p_value < 0.001
    assert found.auc is not None and found.auc > 0.8
    assert found.columns == ["a", "b", "plan"] and found.rows_reference == 600
    quiet = multivariate_drift(ref, same, kinds, p_val=0.05, max_rows=600)
    assert quiet.drift is False and quiet.auc is not None and abs(quiet.auc - 0.5) < 0.08


def test_the_multivariate_detector_leaves_text_out_and_needs_rows() -> None:
    ref = pl.DataFrame({"note": [f"free text {i}" for i in range(50)]})
    out = multivariate_drift(ref, ref, {"note": "text"}, p_val=0.05)
    assert out.drift is False and out.auc is None and out.columns == []
    assert out.note is not None and "non-text column" in out.note


def test_an_integer_category_logged_as_floats_is_the_same_data() -> None:
    """The prediction log reads numbers back as floats: 3 and 3.0 must not look like drift."""
    rng = np.random.default_rng(4)
    ref = pl.DataFrame({"seats": rng.integers(0, 5, 800), "x": rng.normal(size=800)})
    cur = pl.DataFrame({"seats": rng.integers(0, 5, 800).astype(float), "x": rng.normal(size=800)})
    kinds = {"seats": column_kind(ref["seats"]), "x": "numerical"}
    assert kinds["seats"] == "categorical"
    out = multivariate_drift(ref, cur, kinds, p_val=0.05, max_rows=600)  # type: ignore[arg-type]
    assert out.drift is False and out.auc is not None and out.auc < 0.6
    (seats, _) = feature_tests(ref, cur, kinds, p_val=0.05, correction="none")  # type: ignore[arg-type]
    assert seats.drift is False and seats.n_unique == 5
