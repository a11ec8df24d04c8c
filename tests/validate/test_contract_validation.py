"""Validating frames against contracts: each kind of bad file gets a precise report."""

from __future__ import annotations

import json

import polars as pl
import pytest
import yaml

from appliance.domain.reports import ValidationReport
from appliance.errors import ContractInvalid
from appliance.validate._checking import check_with_pandera
from appliance.validate.contracts import infer_contract, load_contract, validate_frame

CONTRACT = """\
schema_type: polars_dataframe
columns:
  age:
    dtype: Int64
    in_range: {min_value: 0, max_value: 120}
  city:
    dtype: String
    isin: [berlin, lima, oslo]
  score:
    dtype: Float64
    nullable: true
strict: true
"""


def frame(n: int = 100, **overrides: list) -> pl.DataFrame:
    data = {
        "age": [20 + i % 50 for i in range(n)],
        "city": [["berlin", "lima", "oslo"][i % 3] for i in range(n)],
        "score": [None if i % 4 == 0 else i / 10 for i in range(n)],
    }
    data.update(overrides)
    return pl.DataFrame(data, schema_overrides={"score": pl.Float64})


def only_failure(report: ValidationReport):
    assert not report.passed
    assert len(report.failures) == 1, report.failures
    return report.failures[0]


def test_validate_frame_passes_a_conforming_frame():
    report = validate_frame(frame(), CONTRACT, contract_version=2)
    assert report == ValidationReport(passed=True, contract_version=2, rows=100, failures=[])


def test_validate_frame_rejects_a_new_column():
    failure = only_failure(validate_frame(frame().with_columns(vip=pl.lit(True)), CONTRACT))
    assert failure.column is None
    assert failure.check == "column_in_schema"
    assert failure.failing_rows == 100
    assert failure.sample_values == ["vip"]
    assert "vip" in failure.message


def test_validate_frame_rejects_a_missing_column():
    failure = only_failure(validate_frame(frame().drop("city"), CONTRACT))
    assert failure.column is None
    assert failure.check == "column_in_dataframe"
    assert failure.failing_rows == 100
    assert failure.sample_values == ["city"]


def test_validate_frame_rejects_a_type_change_from_int_to_string():
    ages = [str(20 + i % 50) for i in range(100)]
    ages[97], ages[98] = "forty", "n/a"
    failure = only_failure(validate_frame(frame(age=ages), CONTRACT))
    assert failure.column == "age"
    assert failure.check == "dtype('Int64')"
    assert failure.failing_rows == 100
    assert failure.sample_values == ["forty", "n/a"]
    assert "Int64" in failure.message and "String" in failure.message


def test_validate_frame_rejects_out_of_range_values_with_true_count():
    ages = [20 + i % 50 for i in range(10_000)]
    for i in range(0, 10_000, 7):
        ages[i] = 200 + i % 9
    failure = only_failure(validate_frame(frame(10_000, age=ages), CONTRACT))
    assert failure.column == "age"
    assert failure.check == "in_range(0, 120)"
    assert failure.failing_rows == len(range(0, 10_000, 7))
    assert len(failure.sample_values) == 5
    assert len(set(failure.sample_values)) == 5
    assert all(200 <= v <= 208 for v in failure.sample_values)


def test_validate_frame_rejects_a_null_in_a_non_nullable_column():
    cities = [["berlin", "lima", "oslo"][i % 3] for i in range(100)]
    cities[5] = cities[50] = None
    failure = only_failure(validate_frame(frame(city=cities), CONTRACT))
    assert failure.column == "city"
    assert failure.check == "not_nullable"
    assert failure.failing_rows == 2
    assert failure.sample_values == [None]


def test_validate_frame_counts_nan_as_null_in_float_columns():
    contract = CONTRACT.replace("    nullable: true\n", "")
    scores = [float(i) for i in range(100)]
    scores[3] = float("nan")
    failure = only_failure(validate_frame(frame(score=scores), contract))
    assert (failure.column, failure.check, failure.failing_rows) == ("score", "not_nullable", 1)


def test_validate_frame_rejects_an_unknown_category():
    cities = [["berlin", "lima", "oslo"][i % 3] for i in range(100)]
    cities[1] = cities[2] = "paris"
    cities[3] = "rome"
    failure = only_failure(validate_frame(frame(city=cities), CONTRACT))
    assert failure.column == "city"
    assert failure.check == "isin(['berlin', 'lima', 'oslo'])"
    assert failure.failing_rows == 3
    assert failure.sample_values == ["paris", "rome"]


def test_validate_frame_reports_every_failure_of_a_bad_file():
    df = frame(age=[500] + [30] * 99).drop("score").with_columns(extra=pl.lit(1))
    report = validate_frame(df, CONTRACT)
    found = {(f.column, f.check, f.failing_rows) for f in report.failures}
    assert found == {
        (None, "column_in_dataframe", 100),
        (None, "column_in_schema", 100),
        ("age", "in_range(0, 120)", 1),
    }
    assert "age" in report.headline()


def test_validate_frame_passes_after_widening_the_range_in_yaml():
    df = frame(age=[150] * 100)
    assert not validate_frame(df, CONTRACT).passed
    document = yaml.safe_load(CONTRACT)
    document["columns"]["age"]["in_range"]["max_value"] = 200
    assert validate_frame(df, yaml.safe_dump(document)).passed


def test_validate_frame_passes_after_adding_a_category_by_hand():
    df = frame(city=["paris"] * 100)
    edited = CONTRACT.replace("[berlin, lima, oslo]", "[berlin, lima, oslo, paris]")
    assert validate_frame(df, edited).passed


def test_validate_frame_reports_the_same_as_pandera_alone():
    df = frame(
        age=[-1, 130, 30, 30] * 25,
        city=["rome", None, "oslo", "lima"] * 25,
    ).with_columns(vip=pl.lit(1))
    fast = validate_frame(df, CONTRACT).failures
    slow = check_with_pandera(df, load_contract(CONTRACT))
    key = lambda f: (f.column or "", f.check)  # noqa: E731
    assert sorted(fast, key=key) == sorted(slow, key=key)


def test_validate_frame_runs_contracts_needing_pandera_itself():
    contract = CONTRACT.replace("    nullable: true\n", "    nullable: true\n    unique: true\n")
    df = frame(score=[1.0, 1.0] + [float(i) for i in range(2, 100)])
    failure = only_failure(validate_frame(df, contract))
    assert (failure.column, failure.check, failure.failing_rows) == ("score", "field_uniqueness", 2)
    assert failure.sample_values == [1.0]


def test_validate_frame_reports_a_check_that_cannot_run_on_the_data():
    contract = CONTRACT.replace("isin: [berlin, lima, oslo]", "in_range: {min_value: 0, max_value: 5}")
    report = validate_frame(frame(), contract)
    assert not report.passed
    assert [f.column for f in report.failures] == ["city"]


def test_validate_frame_report_survives_json():
    df = frame(score=[float("inf")] + [1.0] * 99, age=[-5] * 100)
    contract = CONTRACT.replace("    nullable: true\n", "    in_range: {min_value: 0, max_value: 10}\n")
    report = validate_frame(df, contract, contract_version=7)
    text = json.dumps(report.to_dict(), allow_nan=False)
    assert ValidationReport.from_dict(json.loads(text)) == report
    scores = next(f for f in report.failures if f.column == "score")
    assert scores.sample_values == [None]  # inf is not JSON


def test_validate_frame_raises_only_for_a_bad_contract():
    with pytest.raises(ContractInvalid):
        validate_frame(frame(), "columns: 3")


def test_validate_frame_accepts_an_inferred_contract_with_nullable_columns(first_file):
    contract = infer_contract(first_file, dataset="people")
    # score had 10% nulls; 20% is a rise to warn about, not a reason to reject
    df = first_file.with_columns(
        score=pl.when(pl.int_range(pl.len()) % 5 == 0).then(None).otherwise(pl.col("score").fill_null(1.0))
    )
    report = validate_frame(df, contract)
    assert report.passed
    assert [(w.column, w.failing_rows) for w in report.warnings] == [("score", 40)]


def test_validate_frame_never_raises_when_pandera_cannot_build_its_report():
    # pandera 0.35 fails to assemble SchemaErrors when a bool-valued check
    # (unique_values_eq) fails beside a row-valued one; the file is still rejected.
    contract = """\
columns:
  a: {dtype: String, str_matches: '^x'}
  b: {dtype: Int64, unique_values_eq: [1, 2]}
"""
    report = validate_frame(pl.DataFrame({"a": ["x1", "y"], "b": [1, 1]}), contract)
    assert not report.passed
    assert report.failures[0].failing_rows == 2
