"""A few rows of a version, the first ones or a seeded sample, read a batch at a time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

from appliance.datasets import preview

ROWS = 10_000


@pytest.fixture
def version(tmp_path: Path) -> Path:
    path = tmp_path / "v.parquet"
    pl.DataFrame({
        "id": np.arange(ROWS),
        "x": [float("nan") if i % 7 == 0 else i / 2 for i in range(ROWS)],
        "day": [dt.date(2024, 1, 1)] * ROWS,
        "text": ["y" * 500 if i == 3 else f"t{i}" for i in range(ROWS)],
    }).write_parquet(path, row_group_size=1000)
    return path


@pytest.fixture
def batches_read(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every record batch the reader hands out."""
    sizes: list[int] = []
    real = pq.ParquetFile.iter_batches

    def spy(self: Any, *args: Any, **kwargs: Any) -> Any:
        for batch in real(self, *args, **kwargs):
            sizes.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    return sizes


def test_head_reads_one_batch_of_the_rows_asked_for(version: Path, batches_read: list[int]) -> None:
    rows = preview.head(version, 5)
    assert [r["id"] for r in rows] == [0, 1, 2, 3, 4]
    assert batches_read == [5]                       # not the version, not a row group
    assert rows[0]["x"] is None and rows[1]["x"] == 0.5   # NaN is JSON null
    assert rows[0]["day"] == "2024-01-01"
    assert len(rows[3]["text"]) == 201 and rows[3]["text"].endswith("…")


def test_sample_is_seeded_spread_over_the_version_and_in_file_order(
        version: Path, batches_read: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preview, "BATCH_ROWS", 1024)
    a = preview.sample(version, 50, seed=3)
    assert max(batches_read) <= 1024 and sum(batches_read) <= ROWS   # a batch at a time
    ids = [r["id"] for r in a]
    assert len(ids) == 50 and ids == sorted(ids) and len(set(ids)) == 50
    assert ids[-1] > ROWS // 2                       # not just the head
    assert preview.sample(version, 50, seed=3) == a  # same seed, same rows
    assert [r["id"] for r in preview.sample(version, 50, seed=4)] != ids
    # the same rows whatever the batch size: the choice depends on row positions only
    monkeypatch.setattr(preview, "BATCH_ROWS", 333)
    assert preview.sample(version, 50, seed=3) == a


def test_sample_reads_only_the_row_groups_holding_its_rows(
        version: Path, batches_read: list[int]) -> None:
    (row,) = preview.sample(version, 1, seed=11)
    assert sum(batches_read) == 1000                 # one row group of the ten
    assert row == preview.head(version, ROWS)[row["id"]]


def test_sample_of_more_rows_than_the_version_has_is_every_row(version: Path) -> None:
    rows = preview.sample(version, 1000, seed=0)
    assert len(rows) == 1000
    small = version.with_name("small.parquet")
    pl.read_parquet(version, n_rows=30).write_parquet(small)
    assert [r["id"] for r in preview.sample(small, 100, seed=1)] == list(range(30))
    assert preview.head(small, 100) == preview.sample(small, 100, seed=1)


def test_head_and_sample_of_an_empty_version(tmp_path: Path) -> None:
    path = tmp_path / "empty.parquet"
    pl.DataFrame({"a": pl.Series([], dtype=pl.Int64)}).write_parquet(path)
    assert preview.head(path, 10) == [] and preview.sample(path, 10, seed=0) == []
