"""Statistics gathered piece by piece equal the same aggregates over the whole table."""

from __future__ import annotations

import math
from pathlib import Path

import polars as pl
import pytest

from appliance.validate import ParquetTable
from appliance.validate._counting import duplicate_rows
from appliance.validate._inference import _statistics
from appliance.validate._pieces import PieceStats

TOKENS = ("NA", "null")


def _table(tmp_path: Path, df: pl.DataFrame, piece_rows: int) -> tuple[ParquetTable, ParquetTable]:
    """The same Parquet file as a table with gathered statistics and as one without."""
    path = tmp_path / "t.parquet"
    df.write_parquet(path)
    pieces = PieceStats(tokens=TOKENS, window=5)
    for offset in range(0, max(df.height, 1), piece_rows):
        pieces.add(df.slice(offset, piece_rows))
    return ParquetTable(path, pieces=pieces), ParquetTable(path)


def _frame() -> pl.DataFrame:
    n = 60
    return pl.DataFrame({
        "f": [float("nan") if i == 7 else float("inf") if i == 20 else
              None if i % 9 == 0 else (i - 30) / 4 for i in range(n)],
        "g": [None] * 25 + [float(i) for i in range(n - 25)],
        "i": [None if i == 3 else (i if i < 40 else 80 - i) for i in range(n)],
        "s": [None if i % 11 == 0 else f"v{i % 6}" for i in range(n)],
        "t": [None] * n,
        "d": ["2024-01-02" if i % 5 else "soon" for i in range(n)],
    }, schema_overrides={"t": pl.String})


def _same_stats(a: dict[str, dict[str, object]], b: dict[str, dict[str, object]]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].keys() == b[name].keys(), name
        for stat, value in a[name].items():
            other = b[name][stat]
            if isinstance(value, float) and isinstance(other, float):
                assert math.isclose(value, other) or (math.isnan(value) and math.isnan(other))
            else:
                assert value == other, (name, stat)


@pytest.mark.parametrize("piece_rows", [1, 7, 1000])
def test_gathered_statistics_equal_the_file_aggregates(tmp_path: Path, piece_rows: int) -> None:
    gathered, read = _table(tmp_path, _frame(), piece_rows)
    _same_stats(_statistics(gathered), _statistics(read))
    assert duplicate_rows(gathered) == duplicate_rows(read)
    assert gathered.pieces is not None and gathered.pieces.null_tokens      # the NaN
    assert gathered.pieces.head_nulls == {"f": 1, "g": 5, "i": 1, "s": 1, "t": 5, "d": 0}
    assert gathered.pieces.first_text("d")[:2] == ["soon", "2024-01-02"]
    assert gathered.pieces.domain("s") == [f"v{i}" for i in range(6)]


def test_gathered_statistics_past_the_distinct_cap_are_counted_on_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    import appliance.validate._pieces as pieces

    monkeypatch.setattr(pieces, "DISTINCT_CAP", 3)
    monkeypatch.setattr(pieces, "KEY_HASH_CAP", 10)
    gathered, read = _table(tmp_path, _frame(), 7)
    assert gathered.pieces is not None
    assert gathered.pieces.domain("s") is None and gathered.pieces.key_distinct(["f"]) is None
    _same_stats(_statistics(gathered), _statistics(read))
    assert duplicate_rows(gathered) == duplicate_rows(read)


def test_gathered_null_tokens_are_found_in_a_later_piece(tmp_path: Path) -> None:
    df = pl.DataFrame({"a": ["x"] * 20 + ["NA"], "b": [1.0] * 21})
    gathered, _ = _table(tmp_path, df, 5)
    assert gathered.pieces is not None and gathered.pieces.null_tokens
    clean, _ = _table(tmp_path, df.head(20), 5)
    assert clean.pieces is not None and not clean.pieces.null_tokens


def test_gathered_statistics_of_retyped_columns_are_read_from_the_file(tmp_path: Path) -> None:
    df = pl.DataFrame({"n": [str(i) for i in range(30)], "x": [i / 2 for i in range(30)],
                       "k": [f"k{i % 3}" for i in range(30)]})
    pieces = PieceStats(tokens=TOKENS, window=5)
    for offset in range(0, 30, 4):
        pieces.add(df.slice(offset, 4))
    path = tmp_path / "t.parquet"
    df.with_columns(pl.col("n").cast(pl.Int64)).write_parquet(path)   # as the cell rules do
    pieces.retyped({"n"})
    gathered, read = ParquetTable(path, pieces=pieces), ParquetTable(path)
    _same_stats(_statistics(gathered), _statistics(read))
    assert _statistics(gathered)["n"]["increases"] == 29
    assert duplicate_rows(gathered) == duplicate_rows(read) == 0
