"""Inferring a contract from a first file (TFDV-style), and the round trip through pandera YAML."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandera.polars as pa
import polars as pl
import pytest
import yaml

from appliance.validate._inference import looks_like_date
from appliance.validate.contracts import (
    contract_columns,
    infer_contract,
    load_contract,
    load_profile,
    validate_frame,
)


def _columns(contract: str) -> dict:
    return yaml.safe_load(contract)["columns"]


def _profile(contract: str, column: str) -> dict:
    return _columns(contract)[column]["metadata"]["profile"]


def _clean(report) -> None:
    assert report.passed, report.headline()
    assert report.warnings == [], report.headline()


def test_infer_contract_round_trips_through_yaml(first_file):
    contract = infer_contract(first_file, dataset="people")
    schema = load_contract(contract)
    assert schema == pa.DataFrameSchema.from_yaml(contract)
    document = yaml.safe_load(contract)
    for spec in document["columns"].values():
        spec.pop("metadata")
    document.pop("metadata")
    assert yaml.safe_load(schema.to_yaml()) == document  # pandera's YAML plus the profile only
    report = validate_frame(first_file, contract, contract_version=1)
    _clean(report)
    assert report.rows == first_file.height
    assert report.contract_version == 1


def test_infer_contract_is_usable_by_pandera_polars_alone(first_file):
    schema = pa.DataFrameSchema.from_yaml(infer_contract(first_file, dataset="people"))
    assert schema.validate(first_file).height == first_file.height
    with pytest.raises(pa.errors.SchemaError):
        schema.validate(first_file.drop("city"))


def test_infer_contract_accepts_ordinary_new_data(first_file, second_file):
    _clean(validate_frame(second_file, infer_contract(first_file, dataset="people")))


def test_infer_contract_makes_a_strict_schema_with_required_columns(first_file):
    schema = load_contract(infer_contract(first_file, dataset="people"))
    assert schema.strict is True
    assert schema.coerce is False
    assert schema.name == "people"
    assert all(column.required for column in schema.columns.values())


def test_infer_contract_writes_no_hard_checks(first_file):
    schema = load_contract(infer_contract(first_file, dataset="people"))
    assert all(column.checks == [] for column in schema.columns.values())


def test_infer_contract_keeps_polars_dtypes_without_coercion():
    df = pl.DataFrame({"a": pl.Series([1, 2], dtype=pl.Int32), "b": pl.Series([1.5, 2.5], dtype=pl.Float32)})
    assert contract_columns(infer_contract(df, dataset="d")) == {"a": "Int32", "b": "Float32"}


def test_infer_contract_records_null_fractions_instead_of_forbidding_nulls(first_file):
    contract = infer_contract(first_file, dataset="people")
    schema = load_contract(contract)
    assert all(column.nullable for column in schema.columns.values())
    assert _profile(contract, "score")["null_fraction"] == 0.1
    assert _profile(contract, "score")["max_null_fraction"] == 0.35
    assert _profile(contract, "age")["null_fraction"] == 0.0
    assert _profile(contract, "age")["max_null_fraction"] == 0.25


def test_infer_contract_rounds_null_fraction_up():
    df = pl.DataFrame({"x": [None] + [1.0] * 29_999})
    assert _profile(infer_contract(df, dataset="d"), "x")["null_fraction"] == 0.0001


def test_infer_contract_accepts_a_null_in_a_column_that_had_none(first_file):
    """Regression: a column without nulls in the first file used to become non-nullable."""
    contract = infer_contract(first_file, dataset="people")
    later = first_file.with_columns(age=pl.when(pl.int_range(pl.len()) == 7).then(None).otherwise("age"))
    report = validate_frame(later, contract)
    assert report.passed
    assert [(w.column, w.failing_rows) for w in report.warnings] == [("age", 1)]


def test_infer_contract_bounds_non_negative_column_at_zero():
    df = pl.DataFrame({"x": [10, 20, 40, 30]})
    profile = _profile(infer_contract(df, dataset="d"), "x")
    assert profile["observed_range"] == {"min": 10, "max": 40}
    assert profile["expected_range"] == {"min_value": 0, "max_value": 130}  # max + 3 spans, span = 30
    assert profile["kind"] == "numeric"


def test_infer_contract_widens_negative_range_by_three_spans():
    df = pl.DataFrame({"x": [-1.0, 3.0, 0.5]})
    expected = _profile(infer_contract(df, dataset="d"), "x")["expected_range"]
    assert expected["min_value"] <= -13.0 and math.isclose(expected["min_value"], -13.0, abs_tol=0.1)
    assert expected["max_value"] >= 15.0 and math.isclose(expected["max_value"], 15.0, abs_tol=0.1)


def test_infer_contract_uses_abs_max_as_span_for_a_constant_column():
    df = pl.DataFrame({"x": [-4, -4, -4]})
    expected = _profile(infer_contract(df, dataset="d"), "x")["expected_range"]
    assert (expected["min_value"], expected["max_value"]) == (-16, 8)


def test_infer_contract_rounds_float_bounds_outward():
    df = pl.DataFrame({"x": np.random.default_rng(3).normal(0.0, 10.0, 500)})
    expected = _profile(infer_contract(df, dataset="d"), "x")["expected_range"]
    lo, hi = df["x"].min(), df["x"].max()
    span = hi - lo
    assert expected["min_value"] <= lo - 3 * span and expected["max_value"] >= hi + 3 * span
    assert expected["min_value"] >= lo - 3.1 * span and expected["max_value"] <= hi + 3.1 * span
    assert len(repr(expected["min_value"])) <= 8 and len(repr(expected["max_value"])) <= 8


def test_infer_contract_clamps_integer_bounds_to_the_dtype():
    df = pl.DataFrame({"x": pl.Series([200, 250, 220], dtype=pl.UInt8)})
    assert _profile(infer_contract(df, dataset="d"), "x")["expected_range"]["max_value"] == 255


def test_infer_contract_leaves_a_growing_integer_column_open_above():
    """Regression: a season column bounded at max + span rejected next season's file."""
    first = pl.DataFrame({"season": [2001 + i // 20 for i in range(200)], "goals": [i % 7 for i in range(200)]})
    contract = infer_contract(first, dataset="matches")
    profile = _profile(contract, "season")
    assert profile["kind"] == "sequence"
    assert profile["expected_range"] == {"min_value": 0}
    later = first.with_columns(season=pl.col("season") + 30)
    _clean(validate_frame(later, contract))


def test_infer_contract_out_of_range_values_warn_but_are_accepted(first_file):
    contract = infer_contract(first_file, dataset="people")
    report = validate_frame(first_file.with_columns(age=pl.col("age") * 1000), contract, contract_version=1)
    assert report.passed
    (warning,) = report.warnings
    assert (warning.column, warning.check, warning.failing_rows) == ("age", "expected_range(0, 302)", 200)
    assert warning.message.startswith("age: 200 of 200 values outside the expected range [0, 302] (")


def test_infer_contract_adds_a_domain_for_low_cardinality_strings(first_file):
    contract = infer_contract(first_file, dataset="people")
    assert _profile(contract, "city")["domain"] == ["berlin", "lima", "oslo", "pune"]
    assert _profile(contract, "city")["min_domain_mass"] == 0.99
    assert _profile(contract, "city")["kind"] == "categorical"
    email = _profile(contract, "email")
    assert "domain" not in email and email["kind"] == "identifier"  # 200 distinct values


def test_infer_contract_skips_the_domain_under_fifty_values():
    df = pl.DataFrame({"c": ["a", "b"] * 24})
    assert "domain" not in _profile(infer_contract(df, dataset="d"), "c")


def test_infer_contract_leaves_free_text_free():
    """Regression: a free-text column got an isin list of its sentences; the next batch was rejected."""
    sentences = [f"The delivery number {i} arrived late and the box was damaged on one side." for i in range(10)]
    first = pl.DataFrame({"comment": [sentences[i % 10] for i in range(200)]})
    contract = infer_contract(first, dataset="tickets")
    assert _profile(contract, "comment") == {"kind": "text", "null_fraction": 0.0, "max_null_fraction": 0.25}
    later = pl.DataFrame({"comment": [f"Another customer wrote message {i} about a refund." * 2 for i in range(200)]})
    _clean(validate_frame(later, contract))


def test_infer_contract_never_copies_a_long_value_into_a_domain():
    """A few short plans and one 10 kB cell: the mean stays short, but the column is text."""
    huge = "x" * 10_000
    first = pl.DataFrame({"plan": ["basic", "pro"] * 500 + [huge]})
    contract = infer_contract(first, dataset="plans")
    assert _profile(contract, "plan")["kind"] == "text"
    assert huge not in contract


@pytest.mark.parametrize("dates", [
    [f"2024-01-{d:02d}" for d in range(1, 11)],
    [f"{d:02d}/03/2023" for d in range(1, 11)],
    [f"{d}-Sep-03" for d in range(1, 11)],
    [f"Jan-{d}-1995" for d in range(1, 11)],
    [f"2024-01-{d:02d}T10:15:00Z" for d in range(1, 11)],
    [f"19{d}Q1" for d in range(70, 80)],
])
def test_infer_contract_treats_date_strings_as_free_form(dates):
    first = pl.DataFrame({"day": [dates[i % 10] for i in range(200)]})
    contract = infer_contract(first, dataset="d")
    assert _profile(contract, "day")["kind"] == "date"
    assert "domain" not in _profile(contract, "day")
    _clean(validate_frame(pl.DataFrame({"day": ["2031-12-31"] * 50}), contract))


@pytest.mark.parametrize("value", ["basic", "north", "12", "A-1", "May", "v1.2"])
def test_looks_like_date_refuses_ordinary_categories(value):
    assert not looks_like_date(value)


def test_infer_contract_gives_dates_no_domain_or_range(first_file):
    contract = infer_contract(first_file, dataset="people")
    assert _profile(contract, "joined") == {"kind": "date", "null_fraction": 0.0, "max_null_fraction": 0.25}
    later = first_file.with_columns(joined=pl.col("joined") + dt.timedelta(days=3650))
    _clean(validate_frame(later, contract))


def test_infer_contract_handles_categorical_dtype():
    df = pl.DataFrame({"c": pl.Series(["x", "y"] * 50, dtype=pl.Categorical)})
    contract = infer_contract(df, dataset="d")
    assert _profile(contract, "c")["domain"] == ["x", "y"]
    assert not validate_frame(df.with_columns(pl.lit("z").cast(pl.Categorical).alias("c")), contract).passed


def test_infer_contract_skips_range_for_columns_with_infinity_but_not_nan():
    df = pl.DataFrame({"inf": [1.0, float("inf"), 3.0], "nan": [1.0, float("nan"), 3.0]})
    contract = infer_contract(df, dataset="d")
    assert "expected_range" not in _profile(contract, "inf")
    assert _profile(contract, "nan")["expected_range"] == {"min_value": 0.0, "max_value": 9.0}
    assert _profile(contract, "nan")["null_fraction"] == 0.3334
    _clean(validate_frame(df, contract))


def test_infer_contract_records_the_duplicate_fraction():
    df = pl.DataFrame({"a": [1, 1, 2, 3], "b": ["x", "x", "y", "z"]})
    frame = yaml.safe_load(infer_contract(df, dataset="d"))["metadata"]["profile"]
    assert frame == {"rows": 4, "duplicate_fraction": 0.25, "max_duplicate_fraction": 0.3}


def test_infer_contract_handles_dates_booleans_and_empty_frames():
    df = pl.DataFrame({"d": pl.Series([], dtype=pl.Date), "b": pl.Series([], dtype=pl.Boolean)})
    contract = infer_contract(df, dataset="d")
    assert contract_columns(contract) == {"d": "Date", "b": "Boolean"}
    _clean(validate_frame(df, contract))


def test_infer_contract_profile_is_read_back(first_file):
    contract = infer_contract(first_file, dataset="people")
    profile = load_profile(contract)
    assert profile.columns["city"].domain == ("berlin", "lima", "oslo", "pune")
    assert profile.frame.rows == 200


def _awkward_frame(seed: int) -> pl.DataFrame:
    """Edge cases inference must survive: NaN/inf, all-null, constant, huge ints, one row."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 400))
    floats = rng.normal(0, 10 ** int(rng.integers(-3, 9)), n)
    if seed % 3 == 0:
        floats[rng.integers(0, n)] = np.nan
    if seed % 4 == 0:
        floats[rng.integers(0, n)] = np.inf
    return pl.DataFrame(
        {
            "f": floats,
            "i": rng.integers(-(2**62), 2**62, n),
            "neg": -rng.integers(0, 1000, n),
            "const": [7] * n,
            "allnull": pl.Series([None] * n, dtype=pl.Float64),
            "cat": rng.choice(["a", "b", "c"], n),
            "many": [f"id-{i}" for i in range(n)],
            "maybe": [None if i % 5 == 0 else float(i) for i in range(n)],
            "flag": rng.random(n) > 0.5,
            "day": [dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 9999, n)],
            "seq": list(range(n)),
        }
    )


@pytest.mark.parametrize("seed", range(24))
def test_infer_contract_always_accepts_the_frame_it_was_inferred_from(seed):
    """The ingest path skips re-validating a first file against its own inferred contract."""
    frame = _awkward_frame(seed)
    _clean(validate_frame(frame, infer_contract(frame, dataset="awkward")))
