"""Inferring a contract from a first file, and the round trip through pandera YAML."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pandera.polars as pa
import polars as pl
import pytest
import yaml

from appliance.validate.contracts import (
    contract_columns,
    infer_contract,
    load_contract,
    validate_frame,
)


def _columns(contract: str) -> dict:
    return yaml.safe_load(contract)["columns"]


def test_infer_contract_round_trips_through_yaml(first_file):
    contract = infer_contract(first_file, dataset="people")
    schema = load_contract(contract)
    assert schema == pa.DataFrameSchema.from_yaml(contract)
    assert schema.to_yaml() == contract
    report = validate_frame(first_file, contract, contract_version=1)
    assert report.passed, report.headline()
    assert report.rows == first_file.height
    assert report.contract_version == 1


def test_infer_contract_accepts_ordinary_new_data(first_file, second_file):
    contract = infer_contract(first_file, dataset="people")
    assert validate_frame(second_file, contract).passed


def test_infer_contract_makes_a_strict_schema_with_required_columns(first_file):
    schema = load_contract(infer_contract(first_file, dataset="people"))
    assert schema.strict is True
    assert schema.coerce is False
    assert schema.name == "people"
    assert all(column.required for column in schema.columns.values())


def test_infer_contract_keeps_polars_dtypes_without_coercion():
    df = pl.DataFrame({"a": pl.Series([1, 2], dtype=pl.Int32), "b": pl.Series([1.5, 2.5], dtype=pl.Float32)})
    assert contract_columns(infer_contract(df, dataset="d")) == {"a": "Int32", "b": "Float32"}


def test_infer_contract_marks_nullable_only_where_nulls_were_seen(first_file):
    schema = load_contract(infer_contract(first_file, dataset="people"))
    assert schema.columns["score"].nullable is True
    assert schema.columns["age"].nullable is False
    assert schema.columns["city"].nullable is False


def test_infer_contract_bounds_non_negative_column_at_zero():
    df = pl.DataFrame({"x": [10, 20, 30, 40]})
    check = _columns(infer_contract(df, dataset="d"))["x"]["in_range"]
    assert check["min_value"] == 0
    assert check["max_value"] == 70  # max + span, span = 40 - 10


def test_infer_contract_widens_negative_range_by_the_span():
    df = pl.DataFrame({"x": [-1.0, 0.5, 3.0]})
    check = _columns(infer_contract(df, dataset="d"))["x"]["in_range"]
    assert check["min_value"] <= -5.0 and math.isclose(check["min_value"], -5.0, abs_tol=0.05)
    assert check["max_value"] >= 7.0 and math.isclose(check["max_value"], 7.0, abs_tol=0.05)


def test_infer_contract_uses_abs_max_as_span_for_a_constant_column():
    df = pl.DataFrame({"x": [-4, -4, -4]})
    check = _columns(infer_contract(df, dataset="d"))["x"]["in_range"]
    assert (check["min_value"], check["max_value"]) == (-8, 0)


def test_infer_contract_rounds_float_bounds_outward():
    df = pl.DataFrame({"x": np.random.default_rng(3).normal(0.0, 10.0, 500)})
    check = _columns(infer_contract(df, dataset="d"))["x"]["in_range"]
    lo, hi = df["x"].min(), df["x"].max()
    span = hi - lo
    assert check["min_value"] <= lo - span and check["max_value"] >= hi + span
    assert len(repr(check["min_value"])) <= 8 and len(repr(check["max_value"])) <= 8


def test_infer_contract_clamps_integer_bounds_to_the_dtype():
    df = pl.DataFrame({"x": pl.Series([100, 200, 250], dtype=pl.UInt8)})
    check = _columns(infer_contract(df, dataset="d"))["x"]["in_range"]
    assert check["max_value"] == 255


def test_infer_contract_adds_isin_for_low_cardinality_strings(first_file):
    columns = _columns(infer_contract(first_file, dataset="people"))
    assert columns["city"]["isin"] == ["berlin", "lima", "oslo", "pune"]
    assert "isin" not in columns["email"]  # 200 distinct values


def test_infer_contract_skips_isin_under_fifty_rows():
    df = pl.DataFrame({"c": ["a", "b"] * 24})
    assert "isin" not in _columns(infer_contract(df, dataset="d"))["c"]


def test_infer_contract_skips_range_for_columns_with_nan():
    df = pl.DataFrame({"x": [1.0, float("nan"), 3.0]})
    columns = _columns(infer_contract(df, dataset="d"))
    assert "in_range" not in columns["x"]
    assert columns["x"]["nullable"] is True
    assert validate_frame(df, infer_contract(df, dataset="d")).passed


def test_infer_contract_handles_dates_booleans_and_empty_frames():
    df = pl.DataFrame({"d": pl.Series([], dtype=pl.Date), "b": pl.Series([], dtype=pl.Boolean)})
    contract = infer_contract(df, dataset="d")
    assert contract_columns(contract) == {"d": "Date", "b": "Boolean"}
    assert validate_frame(df, contract).passed


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
        }
    )


@pytest.mark.parametrize("seed", range(24))
def test_infer_contract_always_accepts_the_frame_it_was_inferred_from(seed):
    """The ingest path skips re-validating a first file against its own inferred contract."""
    frame = _awkward_frame(seed)
    report = validate_frame(frame, infer_contract(frame, dataset="awkward"))
    assert report.passed, report.headline()
