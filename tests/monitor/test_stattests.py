"""Drift tests: Evidently's numbers on the same arrays, and each one fires on a shift only."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from appliance.domain.drift import TEST_ALIASES, TEST_NAMES
from appliance.monitor import stattests
from appliance.monitor.selection import sample
from appliance.monitor.stattests import CATEGORICAL, NUMERICAL, TEXT, run, wasserstein_merged


def _golden_arrays() -> dict[str, tuple[Any, Any]]:
    rng = np.random.default_rng(7)  # the exact draws /tmp/golden.py handed to Evidently 0.7.23
    num = rng.normal(size=1500), rng.normal(0.1, 1.05, size=1200)
    small = rng.normal(size=300), rng.normal(0.15, size=250)
    lowc = rng.integers(0, 12, 1500).astype(float), rng.integers(0, 12, 1200).astype(float)
    cat = (rng.choice(list("abcd"), 1500, p=[.4, .3, .2, .1]),
           rng.choice(list("abcd"), 1200, p=[.35, .3, .2, .15]))
    binary = rng.choice(["x", "y"], 200), rng.choice(["x", "y"], 200, p=[.6, .4])
    return {"num": num, "small": small, "lowc": lowc, "cat": cat, "bin": binary}


# Evidently 0.7.23's drift_score and drifted for each test on those arrays (its defaults).
EVIDENTLY = [
    ("ks", "small", NUMERICAL, 8.912368599917184e-06, True),
    ("anderson", "small", NUMERICAL, 0.001, True),
    ("cramer_von_mises", "small", NUMERICAL, 2.1218051669991134e-05, True),
    ("wasserstein", "num", NUMERICAL, 0.178259532863062, True),
    ("jensenshannon", "num", NUMERICAL, 0.08215322335421196, False),
    ("psi", "num", NUMERICAL, 0.05786073419333101, False),
    ("jensenshannon", "lowc", NUMERICAL, 0.05459417281308795, False),
    ("psi", "lowc", NUMERICAL, 0.023894466806082502, False),
    ("chisquare", "cat", CATEGORICAL, 3.3434828418134596e-10, True),
    ("jensenshannon", "cat", CATEGORICAL, 0.06688133147831746, False),
    ("psi", "cat", CATEGORICAL, 0.03594116359168635, False),
    ("z", "bin", CATEGORICAL, 0.016132605073528428, True),
    ("fisher_exact", "bin", CATEGORICAL, 0.02101182030571636, True),
]


@pytest.mark.parametrize(("name", "data", "kind", "score", "drifted"), EVIDENTLY,
                         ids=[f"{e[0]}-{e[1]}" for e in EVIDENTLY])
def test_each_test_scores_the_same_arrays_as_evidently(name: str, data: str, kind: Any,
                                                       score: float, drifted: bool) -> None:
    ref, cur = _golden_arrays()[data]
    _, out = run(name, sample(pl.Series(ref), pl.Series(cur), kind))
    ours = out.p_value if out.p_value is not None else out.distance
    assert ours == pytest.approx(score, rel=1e-9, abs=1e-15)
    assert out.drift is drifted


def _pair(kind: str, shifted: bool, n: int, seed: int) -> tuple[pl.Series, pl.Series]:
    rng = np.random.default_rng(seed)
    if kind == "numeric":
        return pl.Series(rng.normal(10, 2, n)), pl.Series(rng.normal(11.5 if shifted else 10, 2, n))
    if kind == "categorical":
        p_cur = [.2, .3, .5] if shifted else [.5, .3, .2]
        return (pl.Series(rng.choice(["a", "b", "c"], n, p=[.5, .3, .2])),
                pl.Series(rng.choice(["a", "b", "c"], n, p=p_cur)))
    if kind == "binary":
        return (pl.Series(rng.choice(["no", "yes"], n, p=[.7, .3])),
                pl.Series(rng.choice(["no", "yes"], n, p=[.4, .6] if shifted else [.7, .3])))
    words_a = ["invoice", "payment", "refund", "account", "balance", "transfer", "card"]
    words_b = ["delivery", "parcel", "courier", "address", "tracking", "warehouse", "box"]

    def sentences(vocab: list[str], m: int) -> list[str]:
        return [" ".join(rng.choice(vocab, 6)) + f" {i}" for i in range(m)]

    mixed = words_a[:4] + words_b[:3]
    return pl.Series(sentences(words_a, n)), pl.Series(sentences(mixed if shifted else words_a, n))


FIRES = [  # test, data kind, column kind, rows a side
    ("ks", "numeric", NUMERICAL, 300), ("anderson", "numeric", NUMERICAL, 300),
    ("cramer_von_mises", "numeric", NUMERICAL, 300), ("wasserstein", "numeric", NUMERICAL, 3000),
    ("jensenshannon", "numeric", NUMERICAL, 3000), ("psi", "numeric", NUMERICAL, 3000),
    ("chisquare", "categorical", CATEGORICAL, 300),
    ("jensenshannon", "categorical", CATEGORICAL, 3000),
    ("psi", "categorical", CATEGORICAL, 3000), ("z", "binary", CATEGORICAL, 300),
    ("fisher_exact", "binary", CATEGORICAL, 100),
    ("abs_text_content_drift", "text", TEXT, 1500), ("perc_text_content_drift", "text", TEXT, 400),
]


@pytest.mark.parametrize(("name", "data", "kind", "n"), FIRES, ids=[f"{f[0]}-{f[1]}" for f in FIRES])
def test_each_test_fires_on_a_shifted_column_and_not_on_an_unshifted_one(
        name: str, data: str, kind: Any, n: int) -> None:
    ref, cur = _pair(data, True, n, seed=11)
    _, shifted = run(name, sample(ref, cur, kind))
    ref, cur = _pair(data, False, n, seed=12)
    _, same = run(name, sample(ref, cur, kind))
    assert shifted.drift is True, shifted
    assert same.drift is False, same


def test_every_test_named_in_the_domain_is_implemented_and_nothing_else() -> None:
    assert set(stattests.TESTS) == set(TEST_NAMES)
    assert set(TEST_ALIASES.values()) <= set(TEST_NAMES)
    for name, (test, _) in stattests.TESTS.items():
        assert test.name == name and test.kinds and test.default_threshold > 0


@pytest.mark.parametrize("ties", [False, True], ids=["continuous", "with-ties"])
def test_wasserstein_from_the_merged_order_equals_scipys(ties: bool) -> None:
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(3)
    u, v = np.sort(rng.normal(size=5000)), np.sort(rng.exponential(size=4000))
    if ties:
        u, v = np.round(u, 1), np.round(v, 1)
    s = sample(pl.Series(u), pl.Series(v), NUMERICAL)
    assert wasserstein_merged(s.merged, s.from_reference) == pytest.approx(
        wasserstein_distance(u, v), rel=1e-12)


def test_a_test_refuses_a_column_of_the_wrong_kind() -> None:
    s = sample(pl.Series(["a", "b"] * 50), pl.Series(["a", "b"] * 50), CATEGORICAL)
    with pytest.raises(ValueError, match="ks is for numerical columns, not categorical"):
        run("ks", s)
    three = sample(pl.Series(list("abc") * 20), pl.Series(list("abc") * 20), CATEGORICAL)
    with pytest.raises(ValueError, match="binary"):
        run("fisher_exact", three)
    with pytest.raises(ValueError, match="unknown drift test 'kolmogorov'"):
        run("kolmogorov", s)


def test_one_and_the_same_value_on_both_sides_is_no_drift() -> None:
    s = sample(pl.Series(["x"] * 40), pl.Series(["x"] * 30), CATEGORICAL)
    _, out = run("z", s)
    assert out.p_value == 1.0 and out.drift is False
    const = sample(pl.Series([5.0] * 40), pl.Series([5.0] * 30), NUMERICAL)
    _, w = run("wasserstein", const)
    assert w.distance == 0.0 and w.drift is False


def test_a_category_new_in_the_current_data_is_chi_square_drift() -> None:
    s = sample(pl.Series(["a", "b"] * 100), pl.Series(["a", "b", "c"] * 60), CATEGORICAL)
    _, out = run("chisquare", s, auto=True)
    assert out.p_value == 0.0 and out.drift is True
