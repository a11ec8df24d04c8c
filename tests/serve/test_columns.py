"""Rows given as columns (V2 tensors): records on demand, the same canary decision as a dict."""

from __future__ import annotations

import random

import numpy as np
import pytest

from appliance.errors import TooLarge, UnprocessableInput
from appliance.serve.columns import ColumnRecords
from appliance.serve.service import Routing


def test_column_rows_read_as_records_with_nan_as_null() -> None:
    records = ColumnRecords({"age": np.array([1.5, np.nan], dtype=np.float32),
                             "plan": np.array(["basic", "pro"], dtype=object)},
                            ["a", "b"])
    rows = records.raw()
    assert [r.to_record() for r in rows] == [{"age": 1.5, "plan": "basic"},
                                             {"age": None, "plan": "pro"}]
    assert rows[1].get("plan") == "pro" and rows[1].get("nope", 7) == 7
    assert records.request_ids == ["a", "b"]


def test_a_sticky_canary_key_decides_alike_for_columns_and_records() -> None:
    plans = [f"p{i}" for i in range(200)]
    records = ColumnRecords({"plan": np.array(plans, dtype=object)})
    routing = Routing(canary=2, percent=30.0, key="plan")
    rng = random.Random(1)
    assert [routing.takes_canary(r, rng) for r in records.raw()] == \
        [routing.takes_canary({"plan": p}, rng) for p in plans]


def test_column_records_refuse_ragged_or_too_many_rows() -> None:
    with pytest.raises(UnprocessableInput):
        ColumnRecords({"a": np.zeros(2), "b": np.zeros(3)})
    with pytest.raises(TooLarge):
        ColumnRecords({"a": np.zeros(10_001)})
    with pytest.raises(UnprocessableInput):
        ColumnRecords({"a": np.zeros(2)}, ["only-one"])
