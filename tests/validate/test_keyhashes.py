"""Key-row hashes past the in-memory cap are spilled and still counted exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

import appliance.validate._counting as counting
from appliance.validate import ParquetTable
from appliance.validate._counting import duplicate_rows, duplicates_above
from appliance.validate._keyhashes import KeyHashes
from appliance.validate._pieces import PieceStats


def _pieces_of(values: np.ndarray, size: int) -> list[pl.Series]:
    return [pl.Series("h", values[i:i + size]) for i in range(0, values.size, size)]


@pytest.mark.parametrize("cap", [60, 10_000])
def test_count_spilled_hashes_equals_the_in_memory_count(cap: int, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    # repeats, values that share their top bytes (more than the cap: split again; and
    # many repeats of few: merged in one read), and the extremes of the range
    top = np.uint64(0xAB) << np.uint64(56)
    values = np.concatenate([
        rng.integers(0, 2**64 - 1, 3000, dtype=np.uint64, endpoint=True),
        np.full(400, 2**64 - 1, dtype=np.uint64), np.zeros(300, dtype=np.uint64),
        top + rng.integers(0, 2**56, 2000, dtype=np.uint64),
        (np.uint64(0x17) << np.uint64(56)) + rng.integers(0, 40, 2000).astype(np.uint64),
    ])
    rng.shuffle(values)
    hashes = KeyHashes(cap, tmp_path)
    for piece in _pieces_of(values, 333):
        hashes.add(piece)
    assert hashes.distinct() == len(np.unique(values))
    assert hashes.distinct() == len(np.unique(values))      # asked twice: the same count
    assert list(tmp_path.iterdir()) == []                     # the spilled files are gone


def test_count_hashes_past_the_cap_without_a_folder_is_unknown() -> None:
    hashes = KeyHashes(5, None)
    for piece in _pieces_of(np.arange(20, dtype=np.uint64), 4):
        hashes.add(piece)
    assert hashes.distinct() is None


def test_count_spilled_hashes_dropped_removes_their_files(tmp_path: Path) -> None:
    hashes = KeyHashes(2, tmp_path)
    hashes.add(pl.Series("h", np.arange(10, dtype=np.uint64)))
    assert list(tmp_path.iterdir())
    hashes.drop()
    assert list(tmp_path.iterdir()) == [] and hashes.distinct() is None


def _gathered(tmp_path: Path, df: pl.DataFrame, cap: int, piece: int = 97) -> ParquetTable:
    path = tmp_path / "t.parquet"
    df.write_parquet(path)
    work = tmp_path / "work"
    work.mkdir()
    pieces = PieceStats(tokens=(), window=5, spill=work, key_hash_cap=cap)
    for offset in range(0, df.height, piece):
        pieces.add(df.slice(offset, piece))
    return ParquetTable(path, pieces=pieces)


def _no_second_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> int:
        raise AssertionError("the key hashes were counted over the Parquet again")
    monkeypatch.setattr(counting, "distinct_count", refuse)


def test_screen_duplicates_past_the_cap_reads_no_parquet_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    n = 1000
    df = pl.DataFrame({"a": [i * 0.5 for i in range(n)], "b": [i % 7 for i in range(n)],
                       "c": [f"s{i % 3}" for i in range(n)], "d": [1] * n})
    table = _gathered(tmp_path, df, cap=10)
    _no_second_pass(monkeypatch)
    assert duplicate_rows(table) == 0
    assert list((tmp_path / "work").iterdir()) == []


def test_screen_duplicates_past_the_cap_counts_real_duplicates_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    n = 300_000            # past the size screened by HyperLogLog in duplicates_above
    df = pl.DataFrame({"a": [float(i % 250_000) for i in range(n)],
                       "b": [i % 250_000 for i in range(n)],
                       "c": ["x"] * n, "d": [i % 250_000 for i in range(n)]})
    table = _gathered(tmp_path, df, cap=20_000, piece=30_000)
    memory = df.height - df.hash_rows().n_unique()
    assert memory == 50_000
    assert duplicate_rows(table) == memory
    assert duplicates_above(table, 0.1) == memory
    _no_second_pass(monkeypatch)          # under the limit: decided from the spilled count
    assert duplicates_above(table, 0.2) is None
