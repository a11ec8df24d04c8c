"""The automatic choice of test per column (Evidently's rules), overrides and corrections."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pytest

from appliance.domain.drift import DriftOptions
from appliance.errors import InvalidInput
from appliance.monitor.selection import column_kind, default_test, feature_tests, sample


def _column(case: str, n: int, rng: Any) -> pl.Series:
    if case == "float":
        return pl.Series(rng.normal(size=n))
    if case == "float_3":
        return pl.Series(rng.integers(0, 3, n).astype(float))
    if case == "float_2":
        return pl.Series(rng.integers(0, 2, n).astype(float))
    if case == "float_5":
        return pl.Series(rng.integers(0, 5, n).astype(float))
    if case == "int_8":
        return pl.Series(rng.integers(0, 8, n))
    if case == "int_50":
        return pl.Series(rng.integers(0, 50, n))
    if case == "bool":
        return pl.Series(rng.integers(0, 2, n).astype(bool))
    if case == "str_3":
        return pl.Series(rng.choice(["a", "b", "c"], n))
    if case == "str_2":
        return pl.Series(rng.choice(["a", "b"], n))
    assert case == "str_unique"
    return pl.Series([f"note {i} about {rng.choice(['x', 'y'])}" for i in range(n)])


CASES = [  # column, reference rows, kind, Evidently's choice
    ("float", 500, "numerical", "ks"),
    ("float_5", 500, "numerical", "chisquare"),
    ("float_3", 500, "numerical", "chisquare"),
    ("float_2", 500, "numerical", "z"),
    ("float", 1000, "numerical", "ks"),
    ("float", 1001, "numerical", "wasserstein"),
    ("float_5", 2000, "numerical", "jensenshannon"),
    ("int_8", 500, "categorical", "chisquare"),
    ("int_8", 2000, "categorical", "jensenshannon"),
    ("int_50", 500, "numerical", "ks"),
    ("int_50", 2000, "numerical", "wasserstein"),
    ("bool", 500, "categorical", "z"),
    ("str_3", 500, "categorical", "chisquare"),
    ("str_2", 1000, "categorical", "z"),
    ("str_3", 2000, "categorical", "jensenshannon"),
    ("str_2", 2000, "categorical", "jensenshannon"),
    ("str_unique", 500, "text", "perc_text_content_drift"),
    ("str_unique", 2000, "text", "abs_text_content_drift"),
]


@pytest.mark.parametrize(("case", "rows", "kind", "expected"), CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_select_the_documented_test_per_kind_size_and_cardinality(
        case: str, rows: int, kind: str, expected: str) -> None:
    rng = np.random.default_rng(0)
    ref, cur = _column(case, rows, rng), _column(case, 300, rng)
    assert column_kind(ref) == kind
    name, reason = default_test(sample(ref, cur, column_kind(ref)))
    assert name == expected
    assert kind in reason and f"{rows} reference rows {'<=' if rows <= 1000 else '>'} 1000" in reason


def test_the_reference_size_counts_non_null_rows_only() -> None:
    values = list(np.random.default_rng(1).normal(size=1200))
    ref = pl.Series(values[:900] + [None] * 300, dtype=pl.Float64)  # 900 values, 1200 rows
    name, reason = default_test(sample(ref, pl.Series(values), "numerical"))
    assert name == "ks" and "900 reference rows <= 1000" in reason


def _frames(n: int = 2000, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)

    def frame(shift: float) -> pl.DataFrame:
        return pl.DataFrame({"age": rng.normal(40 + shift, 10, n),
                             "plan": rng.choice(["basic", "pro", "team"], n),
                             "score": rng.normal(0, 1, n)})
    return frame(0), frame(5)


def test_feature_tests_report_the_choice_and_why_for_every_column() -> None:
    ref, cur = _frames()
    kinds = {c: column_kind(ref[c]) for c in ref.columns}
    out = {f.column: f for f in feature_tests(ref, cur, kinds, p_val=0.05,
                                               correction="bonferroni")}
    assert out["age"].test == "wasserstein" and out["age"].drift is True
    assert out["age"].chosen == "auto" and out["age"].rows_reference == 2000
    assert out["plan"].test == "jensenshannon" and out["plan"].n_unique == 3
    assert out["score"].drift is False and out["plan"].drift is False
    assert out["age"].threshold == 0.1 and out["age"].p_value is None


def test_a_job_file_override_picks_the_test_and_threshold() -> None:
    ref, cur = _frames()
    kinds = {c: column_kind(ref[c]) for c in ref.columns}
    options = DriftOptions(tests={"age": "psi", "plan": "chi2", "score": "ks"},
                           thresholds={"score": 0.5})
    out = {f.column: f for f in feature_tests(ref, cur, kinds, p_val=0.05,
                                               correction="bonferroni", options=options)}
    assert out["age"].test == "psi" and out["age"].chosen == "override"
    assert "automatic: wasserstein" in (out["age"].reason or "")
    assert out["plan"].test == "chisquare"  # the alias resolved
    assert out["plan"].threshold == pytest.approx(0.05)  # the one corrected p-value test
    assert out["score"].threshold == 0.5  # a named threshold is used as it is
    assert out["score"].drift is (out["score"].p_value is not None
                                  and out["score"].p_value <= 0.5)


def test_an_override_of_the_wrong_kind_is_a_clear_error() -> None:
    ref, cur = _frames()
    kinds = {c: column_kind(ref[c]) for c in ref.columns}
    with pytest.raises(InvalidInput, match="column 'plan': drift test wasserstein is for "
                       "numerical columns"):
        feature_tests(ref, cur, kinds, p_val=0.05, correction="none",
                      options=DriftOptions(tests={"plan": "wasserstein"}))


def test_unknown_test_names_and_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown drift test 'kolmogorov'"):
        DriftOptions(tests={"age": "kolmogorov"})
    with pytest.raises(ValueError, match="finite number"):
        DriftOptions(thresholds={"age": float("nan")})


def test_bonferroni_and_fdr_correct_only_the_p_value_tests() -> None:
    rng = np.random.default_rng(5)
    n = 400
    ref = pl.DataFrame({f"x{i}": rng.normal(size=n) for i in range(4)})
    cur = pl.DataFrame({f"x{i}": rng.normal(0.3 if i == 0 else 0.0, 1, n) for i in range(4)})
    kinds = {c: "numerical" for c in ref.columns}
    bonf = feature_tests(ref, cur, kinds, p_val=0.05, correction="bonferroni")  # type: ignore[arg-type]
    assert {f.test for f in bonf} == {"ks"} and all(f.threshold == 0.05 / 4 for f in bonf)
    fdr = feature_tests(ref, cur, kinds, p_val=0.05, correction="fdr")  # type: ignore[arg-type]
    assert [f.drift for f in fdr] == [True, False, False, False]
    assert fdr[0].threshold == pytest.approx(0.05 / 4)  # BH: one significant of four
    none = feature_tests(ref, cur, kinds, p_val=0.05, correction="none")  # type: ignore[arg-type]
    assert all(f.threshold == 0.05 for f in none)


def test_a_column_without_values_on_one_side_has_no_verdict() -> None:
    ref = pl.DataFrame({"a": [1.0, 2.0, 3.0] * 10})
    cur = pl.DataFrame({"a": pl.Series([None] * 30, dtype=pl.Float64)})
    (out,) = feature_tests(ref, cur, {"a": "numerical"}, p_val=0.05, correction="bonferroni")
    assert out.drift is False and out.statistic is None and out.note == "no values on one side"
