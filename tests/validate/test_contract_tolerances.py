"""The profile's checks: what warns, what rejects, and how each reads in a report."""

from __future__ import annotations

import json

import polars as pl
import pytest

from appliance.domain.reports import ValidationReport
from appliance.validate.contracts import validate_frame

CONTRACT = """\
schema_type: polars_dataframe
columns:
  age:
    dtype: Int64
    nullable: true
    metadata:
      profile: {null_fraction: 0.0, max_null_fraction: 0.25, expected_range: {min_value: 0, max_value: 120}}
  plan:
    dtype: String
    nullable: true
    metadata:
      profile: {null_fraction: 0.1, max_null_fraction: 0.35, domain: [basic, plus, pro],
                min_domain_mass: 0.99}
  spend:
    dtype: Float64
    nullable: true
    metadata:
      profile: {null_fraction: 0.0, max_null_fraction: 0.25, expected_range: {min_value: 0.0}}
strict: true
metadata:
  profile: {rows: 100, duplicate_fraction: 0.0, max_duplicate_fraction: 0.05}
"""
UNIQUE_SPEND = CONTRACT.replace("  spend:\n    dtype: Float64\n", "  spend:\n    dtype: Float64\n    unique: true\n")


def frame(n: int = 200, **overrides: list) -> pl.DataFrame:
    data = {
        "age": [20 + i % 50 for i in range(n)],
        "plan": [None if i % 10 == 0 else ["basic", "plus", "pro"][i % 3] for i in range(n)],
        "spend": [float(i) for i in range(n)],
    }
    data.update(overrides)
    return pl.DataFrame(data, schema_overrides={"age": pl.Int64, "plan": pl.String, "spend": pl.Float64})


def checks(items) -> list[tuple]:
    return [(f.column, f.check, f.failing_rows) for f in items]


def test_validate_frame_passes_clean_data_without_warnings():
    report = validate_frame(frame(), CONTRACT, contract_version=1)
    assert report == ValidationReport(passed=True, contract_version=1, rows=200)
    assert report.headline() == "passed"


def test_validate_frame_warns_on_a_first_null_where_none_were_seen():
    ages = [20 + i % 50 for i in range(200)]
    ages[3] = None
    report = validate_frame(frame(age=ages), CONTRACT, contract_version=1)
    assert report.passed
    assert checks(report.warnings) == [("age", "null_fraction(0)", 1)]
    assert report.warnings[0].message == "age: 1 of 200 values null (0.5%); contract v1 saw none"


@pytest.mark.parametrize(("nulls", "outcome"), [(24, "clean"), (25, "warning"), (70, "warning"),
                                                 (71, "rejected")])
def test_validate_frame_tolerates_a_small_rise_in_nulls_and_rejects_a_flood(nulls, outcome):
    plans = [None if i < nulls else "basic" for i in range(200)]  # seen 10%: warn above 12%, reject above 35%
    report = validate_frame(frame(plan=plans), CONTRACT, contract_version=1)
    if outcome == "clean":
        assert report.passed and report.warnings == []
    elif outcome == "warning":
        assert report.passed and checks(report.warnings) == [("plan", "null_fraction(0.1)", nulls)]
    else:
        assert not report.passed and report.warnings == []
        assert checks(report.failures) == [("plan", "max_null_fraction(0.35)", 71)]
        assert report.failures[0].message == (
            "plan: 71 of 200 values null (35.5%); contract v1 allows at most 35%")


def test_validate_frame_counts_nan_as_null_for_the_profile():
    spend = [float("nan") if i % 2 else 1.0 for i in range(200)]
    report = validate_frame(frame(spend=spend), CONTRACT)
    assert checks(report.failures) == [("spend", "max_null_fraction(0.25)", 100)]


def test_validate_frame_warns_on_a_few_unseen_categories_naming_them():
    plans = ["basic"] * 198 + ["platinum", "gold"]
    report = validate_frame(frame(plan=plans), CONTRACT, contract_version=1)
    assert report.passed
    (warning,) = report.warnings
    assert (warning.column, warning.check, warning.failing_rows) == ("plan", "domain", 2)
    assert warning.sample_values == ["platinum", "gold"]
    assert warning.message == ("plan: 2 of 200 values not in contract v1's categories ('platinum', 'gold'); "
                               "tolerated (up to 1% may be unseen)")


def test_validate_frame_rejects_a_column_flooded_by_unseen_values():
    plans = [None] * 150 + ["platinum"] * 30 + ["gold"] * 18 + ["basic", "pro"]
    report = validate_frame(frame(plan=plans), CONTRACT, contract_version=1)
    assert not report.passed
    # nulls are not counted against the domain: 48 of the 50 non-null values are unseen
    assert checks(report.failures) == [("plan", "max_null_fraction(0.35)", 150),
                                       ("plan", "min_domain_mass(0.99)", 48)]
    assert report.failures[1].message.startswith(
        "plan: 48 of 50 values not in contract v1's categories ('platinum', 'gold'); flooded by unseen values")


def test_validate_frame_min_domain_mass_of_one_makes_the_domain_hard():
    contract = CONTRACT.replace("min_domain_mass: 0.99", "min_domain_mass: 1.0")
    report = validate_frame(frame(plan=["basic"] * 199 + ["platinum"]), contract)
    assert checks(report.failures) == [("plan", "min_domain_mass(1)", 1)]


def test_validate_frame_warns_on_values_outside_the_expected_range():
    ages = [20 + i % 50 for i in range(200)]
    ages[0], ages[1], ages[2] = -3, 500, -3
    report = validate_frame(frame(age=ages), CONTRACT, contract_version=1)
    assert report.passed
    (warning,) = report.warnings
    assert (warning.column, warning.check, warning.failing_rows) == ("age", "expected_range(0, 120)", 3)
    assert warning.sample_values == [-3, 500]
    assert warning.message == "age: 3 of 200 values outside the expected range [0, 120] (-3, 500)"


def test_validate_frame_open_ended_range_checks_one_side_and_ignores_nan():
    spend = [float(i) for i in range(200)]
    spend[5], spend[6] = 1e12, -2.5
    report = validate_frame(frame(spend=spend), CONTRACT)
    assert checks(report.warnings) == [("spend", "expected_range(0, none)", 1)]
    assert report.warnings[0].sample_values == [-2.5]


def test_validate_frame_in_range_hardens_a_soft_range():
    contract = CONTRACT.replace(
        "    dtype: Int64\n", "    dtype: Int64\n    in_range: {min_value: 0, max_value: 120}\n")
    report = validate_frame(frame(age=[-3] + [30] * 199), contract)
    assert not report.passed
    assert checks(report.failures) == [("age", "in_range(0, 120)", 1)]
    assert checks(report.warnings) == [("age", "expected_range(0, 120)", 1)]


def test_validate_frame_nullable_false_makes_nulls_hard_without_a_second_report_row():
    contract = CONTRACT.replace("    dtype: Int64\n    nullable: true\n", "    dtype: Int64\n")
    report = validate_frame(frame(age=[None] + [30] * 199), contract)
    assert checks(report.failures) == [("age", "not_nullable", 1)]
    assert report.warnings == []


def test_validate_frame_warns_on_duplicated_rows():
    df = pl.concat([frame(20)] * 10)
    report = validate_frame(df, CONTRACT, contract_version=1)
    assert report.passed
    assert checks(report.warnings) == [(None, "max_duplicate_fraction(0.05)", 180)]
    assert report.warnings[0].message == (
        "the file: 180 of 200 rows repeat an earlier row exactly (90%); contract v1 saw 0% "
        "and tolerates up to 5%")


def test_validate_frame_skips_the_profile_of_a_mistyped_or_missing_column():
    df = frame().with_columns(age=pl.col("age").cast(pl.String) + " years").drop("plan")
    report = validate_frame(df, CONTRACT, contract_version=1)
    assert checks(report.failures) == [(None, "column_in_dataframe", 200), ("age", "dtype('Int64')", 200)]
    assert report.warnings == []
    assert report.failures[0].message == "column 'plan' is missing (required by contract v1)"
    assert report.failures[1].message.startswith(
        "age: type String, but contract v1 says Int64; 200 of 200 values cannot be read as Int64 ('20 years'")


@pytest.mark.parametrize("df", [
    frame(age=[None, -3] + [30] * 198, plan=["platinum"] * 200),
    frame(plan=["basic"] * 199 + ["gold"], spend=[float("nan")] * 200),
    pl.concat([frame(20)] * 10),
])
def test_validate_frame_profile_is_the_same_on_the_pandera_path(df):
    """A contract needing pandera itself (``unique``) still gets the profile's checks, alike."""
    fast = validate_frame(df, CONTRACT)
    slow = validate_frame(df, UNIQUE_SPEND)
    profile_only = lambda items: [f for f in items if f.check != "field_uniqueness"]  # noqa: E731
    assert profile_only(slow.failures) == fast.failures
    assert slow.warnings == fast.warnings
    assert fast.failures or fast.warnings


def test_validation_report_keeps_warnings_through_json():
    report = validate_frame(frame(plan=["basic"] * 199 + ["gold"]), CONTRACT, contract_version=4)
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert ValidationReport.from_dict(json.loads(text)) == report
    assert report.headline() == ("passed with 1 warning: plan: 1 of 200 values not in contract v4's "
                                 "categories ('gold'); tolerated (up to 1% may be unseen)")


def test_validation_report_reads_reports_stored_before_warnings():
    stored = {"passed": False, "contract_version": 1, "rows": 10,
              "failures": [{"column": "age", "check": "in_range(0, 120)", "failing_rows": 2,
                            "sample_values": [500], "message": ""}]}
    report = ValidationReport.from_dict(stored)
    assert report.warnings == []
    assert report.headline() == "age: in_range(0, 120) (2 rows)"
    assert "warnings" in report.to_dict()


def test_validation_report_headline_counts_what_it_leaves_out():
    df = frame(50).drop("plan").drop("spend").with_columns(vip=pl.lit(1), extra=pl.lit(2))
    df = df.with_columns(age=pl.col("age") * 1000)
    report = validate_frame(df, CONTRACT, contract_version=2)
    assert len(report.failures) == 4
    assert report.headline() == (
        "column 'plan' is missing (required by contract v2); column 'spend' is missing "
        "(required by contract v2); column 'vip' is not in contract v2 (the contract is strict); "
        "add it to the contract to accept it; and 1 more (and 1 warning)")


@pytest.mark.parametrize(("copies", "warned"), [(0, False), (15_000, False), (18_000, True)])
def test_validate_frame_counts_duplicates_of_a_large_file_exactly(copies, warned):
    """Over 200k rows a few columns' HyperLogLog count screens first; near the limit it is exact."""
    n = 300_000
    df = pl.DataFrame({"age": [i % 90 for i in range(n)], "plan": ["basic"] * n,
                       "spend": [float(i) for i in range(n)]})
    df = pl.concat([df, pl.concat([df.head(1)] * copies)]) if copies else df
    report = validate_frame(df, CONTRACT.replace("max_duplicate_fraction: 0.05", "max_duplicate_fraction: 0.055"))
    dup = [w for w in report.warnings if w.column is None]  # 15,000 of 315,000 is 4.8%; 18,000 is 5.7%
    if warned:
        assert [(w.check, w.failing_rows) for w in dup] == [("max_duplicate_fraction(0.055)", copies)]
    else:
        assert dup == []
