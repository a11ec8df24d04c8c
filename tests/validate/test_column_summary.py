"""Per-column summaries: right numbers, always JSON-safe."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from appliance.validate.summary import summarize


def by_name(df: pl.DataFrame) -> dict:
    return {s.name: s for s in summarize(df)}


def test_summarize_numeric_column_matches_numpy():
    values = np.random.default_rng(7).normal(5.0, 2.0, 5_000)
    s = by_name(pl.DataFrame({"x": values}))["x"]
    assert (s.dtype, s.count, s.nulls, s.n_unique) == ("Float64", 5_000, 0, 5_000)
    assert s.min == pytest.approx(values.min()) and s.max == pytest.approx(values.max())
    assert s.mean == pytest.approx(values.mean())
    assert s.std == pytest.approx(values.std(ddof=1))
    counts, edges = np.histogram(values, bins=20)
    assert s.histogram["edges"] == pytest.approx(list(edges))
    assert s.histogram["counts"] == list(counts)


def test_summarize_histogram_has_twenty_bins_for_integers():
    s = by_name(pl.DataFrame({"n": [*range(1, 101), None]}))["n"]
    assert (s.count, s.nulls, s.n_unique, s.min, s.max) == (100, 1, 100, 1, 100)
    assert len(s.histogram["edges"]) == 21 and len(s.histogram["counts"]) == 20
    assert sum(s.histogram["counts"]) == 100
    assert all(isinstance(c, int) for c in s.histogram["counts"])


def test_summarize_leaves_nan_and_inf_out_of_the_statistics():
    s = by_name(pl.DataFrame({"x": [1.0, 3.0, float("nan"), float("inf"), float("-inf"), None]}))["x"]
    assert (s.min, s.max, s.mean, s.nulls) == (1.0, 3.0, 2.0, 1)
    assert sum(s.histogram["counts"]) == 2


def test_summarize_constant_column_gets_a_unit_wide_histogram():
    s = by_name(pl.DataFrame({"c": [7, 7, 7]}))["c"]
    assert s.histogram["edges"][0] == 6.5 and s.histogram["edges"][-1] == 7.5
    assert sum(s.histogram["counts"]) == 3
    assert s.std == 0.0


def test_summarize_strings_lists_top_ten_values_by_count_then_value():
    values = ["b"] * 5 + ["a"] * 5 + ["c"] * 3 + [f"rare{i:02d}" for i in range(20)] + [None]
    s = by_name(pl.DataFrame({"s": values}))["s"]
    assert (s.count, s.nulls, s.n_unique) == (33, 1, 23)
    assert s.top_values[:3] == [
        {"value": "a", "count": 5},
        {"value": "b", "count": 5},
        {"value": "c", "count": 3},
    ]
    assert len(s.top_values) == 10
    assert s.histogram is None and s.mean is None


def test_summarize_booleans_and_categoricals_get_top_values():
    df = pl.DataFrame({
        "b": [True, True, False, None],
        "k": pl.Series(["x", "y", "x", "x"], dtype=pl.Categorical),
    })
    out = by_name(df)
    assert out["b"].top_values == [{"value": True, "count": 2}, {"value": False, "count": 1}]
    assert out["k"].top_values == [{"value": "x", "count": 3}, {"value": "y", "count": 1}]


def test_summarize_dates_report_iso_min_and_max():
    df = pl.DataFrame({
        "d": [dt.date(2024, 3, 1), dt.date(2023, 12, 31), None],
        "t": [dt.datetime(2024, 1, 1, 12, 30), dt.datetime(2024, 1, 2), None],
    })
    out = by_name(df)
    assert (out["d"].min, out["d"].max) == ("2023-12-31", "2024-03-01")
    assert (out["t"].min, out["t"].max) == ("2024-01-01T12:30:00", "2024-01-02T00:00:00")


def test_summarize_all_null_columns():
    df = pl.DataFrame({
        "n": [None, None],
        "f": pl.Series([None, None], dtype=pl.Float64),
        "s": pl.Series([None, None], dtype=pl.String),
    })
    out = by_name(df)
    for name in "nfs":
        assert (out[name].count, out[name].nulls, out[name].n_unique) == (0, 2, 0)
    assert out["f"].min is None and out["f"].histogram is None
    assert out["s"].top_values == []


def test_summarize_returns_json_serialisable_output():
    df = pl.DataFrame({
        "num": [1.5, float("nan"), float("inf"), None],
        "int": [1, 2, None, 4],
        "str": ["a", None, "b", "a"],
        "bool": [True, None, False, True],
        "date": [dt.date(2024, 1, 1), None, dt.date(2024, 1, 3), dt.date(2024, 1, 2)],
        "when": pl.Series([dt.datetime(2024, 1, 1, tzinfo=dt.UTC)] * 4),
        "nulls": [None, None, None, None],
        "dec": pl.Series(["1.10", "2.20", None, "3.30"]).str.to_decimal(scale=2),
        "list": [[1], [2], None, [3]],
        "span": [dt.timedelta(seconds=1)] * 4,
    })
    summaries = summarize(df)
    assert [s.name for s in summaries] == df.columns
    payload = json.loads(json.dumps([s.to_dict() for s in summaries], allow_nan=False))
    assert payload[0]["max"] == 1.5


def test_summarize_empty_frame():
    assert summarize(pl.DataFrame()) == []
    s = summarize(pl.DataFrame({"x": pl.Series([], dtype=pl.Float64)}))[0]
    assert (s.count, s.nulls, s.min, s.histogram) == (0, 0, None, None)


def test_summarize_cuts_long_text_to_200_characters_and_an_ellipsis():
    from appliance.domain.text import ELLIPSIS, MAX_VALUE_CHARS

    long = "x" * 1_000_000
    s = by_name(pl.DataFrame({"t": [long, long, "short", None],
                              "b": [b"y" * 10_000, b"y" * 10_000, b"z", None]}))
    assert s["t"].top_values == [{"value": "x" * MAX_VALUE_CHARS + ELLIPSIS, "count": 2},
                                 {"value": "short", "count": 1}]
    assert len(json.dumps([x.to_dict() for x in s.values()])) < 5_000


def _mixed_frame(rows: int) -> pl.DataFrame:
    rng = np.random.default_rng(5)
    x = rng.normal(size=rows)
    x[::97] = np.nan
    return pl.DataFrame({
        "x": x,
        "n": rng.integers(-50, 50, rows),
        "color": pl.Series(rng.choice(["red", "green", "blue", ""], rows)).replace("", None),
        "flag": rng.choice([True, False], rows),
        "day": pl.date_range(dt.date(2020, 1, 1), dt.date(2020, 1, 1) + dt.timedelta(days=rows - 1),
                             eager=True),
        "empty": pl.Series([None] * rows, dtype=pl.Float64),
    })


@pytest.mark.parametrize("rows", [1_000, 150_000])   # exact and approximate n_unique
def test_summarize_lazy_parquet_scan_equals_the_frame_in_memory(rows, tmp_path):
    df = _mixed_frame(rows)
    path = tmp_path / "v.parquet"
    df.write_parquet(path, row_group_size=10_000)
    lazy, eager = summarize(pl.scan_parquet(path)), summarize(df)
    for a, b in zip(lazy, eager, strict=True):
        a_dict, b_dict = a.to_dict(), b.to_dict()
        # a mean summed over row groups may differ in its last bits, and past 100k rows
        # n_unique is a HyperLogLog estimate, which depends on the chunks; nothing else
        for key, rel in (("mean", 1e-12), ("std", 1e-12), ("n_unique", 0.05 * (rows > 100_000))):
            x, y = a_dict.pop(key, None), b_dict.pop(key, None)
            assert x == y or x == pytest.approx(y, rel=rel), (a.name, key)
        assert a_dict == b_dict


def test_summarize_lazy_collects_one_column_at_a_time_on_the_streaming_engine(
        tmp_path, monkeypatch):
    """Regression: the per-column selects ran on the in-memory engine (``collect()``)."""
    path = tmp_path / "v.parquet"
    _mixed_frame(2_000).write_parquet(path, row_group_size=500)
    calls = []
    collect = pl.LazyFrame.collect

    def spy(self, *args, **kwargs):
        calls.append((kwargs.get("engine"), self.collect_schema().len()))
        return collect(self, *args, **kwargs)

    monkeypatch.setattr(pl.LazyFrame, "collect", spy)
    summarize(pl.scan_parquet(path))
    assert len(calls) >= 6 and all(engine == "streaming" for engine, _ in calls), calls


def test_summarize_lazy_empty_and_columnless_frames():
    assert summarize(pl.LazyFrame()) == []
    lazy = summarize(pl.LazyFrame({"x": pl.Series([], dtype=pl.Float64)}))
    assert lazy == summarize(pl.DataFrame({"x": pl.Series([], dtype=pl.Float64)}))


def test_summarize_lazy_in_small_batches_and_partitions_equals_the_frame_in_memory(
        tmp_path, monkeypatch):
    """Bounded memory: histograms binned a few rows at a time and text counted one hash
    partition at a time (forced tiny here) give the whole column's exact figures."""
    from appliance.validate import summary

    rng = np.random.default_rng(7)
    rows = 5_000
    df = _mixed_frame(rows).with_columns(
        # many distinct texts, ties in count broken by value, values on the bin edges
        word=pl.Series([f"w{int(v)}" for v in rng.integers(0, 900, rows)]),
        edge=pl.Series(rng.integers(0, 21, rows).astype(float)),
        spiky=pl.Series([float("nan") if i % 97 == 0 else float(i % 13) for i in range(rows)]),
        const=pl.Series([3] * rows),
    )
    path = tmp_path / "v.parquet"
    df.write_parquet(path, row_group_size=700)
    monkeypatch.setattr(summary, "HISTOGRAM_BATCH_ROWS", 333)
    monkeypatch.setattr(summary, "TOP_PARTITION_VALUES", 100)
    lazy, eager = summarize(pl.scan_parquet(path)), summarize(df)
    for a, b in zip(lazy, eager, strict=True):
        a_dict, b_dict = a.to_dict(), b.to_dict()
        for key in ("mean", "std"):
            x, y = a_dict.pop(key, None), b_dict.pop(key, None)
            assert x == y or x == pytest.approx(y, rel=1e-12), (a.name, key)
        assert a_dict == b_dict, a.name
    by_name = {s.name: s for s in lazy}
    assert by_name["word"].n_unique == df["word"].n_unique()
    assert sum(by_name["edge"].histogram["counts"]) == rows
