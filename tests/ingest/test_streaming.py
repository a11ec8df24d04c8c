"""Streamed ingestion (files over the streaming threshold) gives what the in-memory path gives.

Each file is parsed twice in process, once in memory and once streamed
(``stream_above_bytes=0``), and both must give the same Parquet content,
dtypes, contract and report. The capped test runs the real parser child with
a cap the in-memory path cannot stay under.
"""

from __future__ import annotations

import gzip
from dataclasses import replace
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from appliance.ingest.parse import ParseLimits, ParseResult, parse_file
from appliance.ingest.worker import ParserPool
from appliance.validate import ParquetTable
from appliance.validate._frames import distinct_count
from tests.ingest.conftest import big_csv

_NUMBERS = "".join(f"{i},{i * 0.25},{'abc'[i % 3]}\n" for i in range(150))
CASES = {
    "plain": "x,y,c\n" + _NUMBERS,
    "na_tokens_late": "x,y,c\n" + _NUMBERS + "NA,1.5,a\n7,NaN,b\n",
    "widened_int_to_float": "x,y,c\n" + _NUMBERS + "2.5,1,a\n",
    "widened_to_text": "x,y,c\n" + _NUMBERS + "oops,1,a\n",
    "row_names": ",x,y\n" + "".join(f'"{i}",{i},{i / 3:.4f}\n' for i in range(1, 120)),
    "late_numbers": "x,y\n" + "".join(f"{i},\n" for i in range(120)) + "1,3.5\n2,4\n",
    "iso_dates": "id,d,t\n" + "".join(
        f"{i},2024-01-{i % 28 + 1:02d},2024-01-02T10:{i % 60:02d}:00+02:00\n" for i in range(90)),
    "not_all_dates": "id,d\n1,2024-01-02\n2,soon\n3,2024-02-01\n",
    "decimal_comma": "a;b;c\n" + "".join(f"{i};{i},5;x{i % 2}\n" for i in range(80)),
    "quoted_crlf_bom": "\ufeffname,v\r\n" + "".join(f'"n, {i}",{i}\r\n' for i in range(70)),
    "duplicates": "a,b\n" + "1,x\n" * 60 + "2,y\n" * 40,
    "identifiers": "id,v\n" + "".join(f"u{i},{i % 5}\n" for i in range(300)),
    "quoted_newlines": 'id,note\n' + "".join(
        f'{i},"line one\nline ""two"", {i}"\n' for i in range(200)),
    "infinities_and_a_late_null": "x,y,s\n" + "".join(
        f"{i % 7},{i / 8},v{i % 4}\n" for i in range(200)) + "3,inf,\n4,-inf,v1\n5,,v2\n",
    "falling_then_rising": "n,g\n" + "".join(f"{200 - i},g{i % 2}\n" for i in range(100))
    + "".join(f"{i},g{i % 2}\n" for i in range(100)),
}


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few hundred bytes, so every streamed file here is read in many."""
    import appliance.ingest.stream as stream

    monkeypatch.setattr(stream, "CHUNK_BYTES", 300)


def _limits(*, streamed: bool, memory_mb: int = 2048) -> ParseLimits:
    return ParseLimits(max_bytes=1 << 32, max_uncompressed_bytes=1 << 32, timeout_s=120.0,
                       memory_mb=memory_mb, stream_above_bytes=0 if streamed else 1 << 40)


def _parse(src: Path, out: Path, fmt: str, *, streamed: bool,
           contract: str | None = None) -> ParseResult:
    return parse_file(src, out, fmt=fmt, dataset="demo", contract_yaml=contract,
                      contract_version=None if contract is None else 1,
                      limits=_limits(streamed=streamed))


def _same(src: Path, tmp_path: Path, fmt: str = "csv", contract: str | None = None) -> ParseResult:
    memory = _parse(src, tmp_path / "memory.parquet", fmt, streamed=False, contract=contract)
    stream = _parse(src, tmp_path / "stream.parquet", fmt, streamed=True, contract=contract)
    assert replace(stream, message="") == replace(memory, message=""), (memory, stream)
    assert stream.message == memory.message
    if memory.ok:
        assert_frame_equal(pl.read_parquet(tmp_path / "stream.parquet"),
                           pl.read_parquet(tmp_path / "memory.parquet"))
    return stream


@pytest.mark.parametrize("name", sorted(CASES))
def test_parse_streamed_csv_matches_the_in_memory_read(name: str, tmp_path: Path) -> None:
    src = tmp_path / f"{name}.csv"
    src.write_text(CASES[name], encoding="utf-8")
    result = _same(src, tmp_path)
    assert result.ok, result.message


@pytest.mark.parametrize("name", ["plain", "identifiers", "duplicates", "iso_dates", "row_names"])
def test_parse_streamed_csv_past_the_gathered_caps_matches_the_in_memory_read(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past the caps on what is gathered while writing (distinct values: counted over
    the written Parquet; key-row hashes: spilled beside it and counted in partitions),
    the result is the same, and no spilled hashes are left behind."""
    import appliance.validate._pieces as pieces

    monkeypatch.setattr(pieces, "DISTINCT_CAP", 2)
    monkeypatch.setattr(pieces, "KEY_HASH_CAP", 10)
    src = tmp_path / f"{name}.csv"
    src.write_text(CASES[name], encoding="utf-8")
    assert _same(src, tmp_path).ok
    assert not list(tmp_path.glob("*.keys.tmp")) and not list(tmp_path.glob(".key-hashes-*"))


def test_parse_streamed_csv_checks_a_later_file_like_the_in_memory_read(tmp_path: Path) -> None:
    first = tmp_path / "first.csv"
    first.write_text(CASES["plain"])
    contract = _parse(first, tmp_path / "first.parquet", "csv", streamed=False).contract_yaml
    later = tmp_path / "later.csv"
    later.write_text("x,y,c\n" + _NUMBERS + "9000,NA,zzz\n" + "".join(
        f"{i},1.0,q\n" for i in range(20)))
    result = _same(later, tmp_path, contract=contract)
    assert result.ok and result.report is not None
    assert result.report["passed"] is False        # domain mass under 0.99: a hard failure
    assert result.report["warnings"]               # 9000 out of the expected range


def test_parse_streamed_csv_counts_a_later_file_on_its_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file for a dataset with a contract: its checks are counted on the pieces as they
    are written (the same counts and samples), not by reading the Parquet again."""
    import appliance.ingest.stream as stream
    from appliance.validate._piececounts import PieceCounts

    first = tmp_path / "first.csv"
    first.write_text(CASES["plain"])
    contract = _parse(first, tmp_path / "first.parquet", "csv", streamed=False).contract_yaml
    later = tmp_path / "later.csv"
    later.write_text("x,y,c\n" + _NUMBERS + "9000,NA,zzz\n" + "".join(
        f"{i},{'' if i % 7 else 1.0},{'qa'[i % 2]}\n" for i in range(3000)))
    filled: list[bool] = []
    fill = PieceCounts.fill

    def spy(self: PieceCounts, *args: Any) -> bool:
        filled.append(fill(self, *args))
        return filled[-1]

    monkeypatch.setattr(PieceCounts, "fill", spy)
    monkeypatch.setattr(stream, "CHUNK_BYTES", 4096)     # many pieces
    result = _same(later, tmp_path, contract=contract)
    assert filled and all(filled)
    assert result.report is not None and result.report["passed"] is False
    domain = [f for f in result.report["failures"] if f["column"] == "c"]
    assert domain and domain[0]["sample_values"] == ["zzz", "q"]   # across pieces, in order


@pytest.mark.parametrize("text", ["a,b\n1,2\n3,4,5\n6,7\n", "a,b\n1,2\n3\n6,7\n", "a,b\n"])
def test_parse_streamed_bad_csv_is_refused_like_the_in_memory_read(text: str,
                                                                   tmp_path: Path) -> None:
    src = tmp_path / "bad.csv"
    src.write_text(text)
    result = _same(src, tmp_path)
    assert not result.ok and result.reason in ("malformed", "empty")


def test_parse_streamed_gzip_and_parquet_match_the_in_memory_read(tmp_path: Path) -> None:
    gz = tmp_path / "x.csv.gz"
    gz.write_bytes(gzip.compress(CASES["na_tokens_late"].encode()))
    assert _same(gz, tmp_path, "csv.gz").ok
    pq = tmp_path / "x.parquet"
    pl.DataFrame({"c": ["a", "b", "a"] * 30, "v": list(range(90))}).with_columns(
        pl.col("c").cast(pl.Categorical)).write_parquet(pq)
    result = _same(pq, tmp_path, "parquet")
    assert result.ok and {"name": "c", "dtype": "String"} in result.columns


def test_parse_jsonl_over_the_streaming_threshold_is_refused_as_too_big(tmp_path: Path) -> None:
    src = tmp_path / "x.jsonl"
    src.write_text('{"a": 1}\n' * 50)
    result = _parse(src, tmp_path / "x.parquet", "jsonl", streamed=True)
    assert result.reason == "too_big" and "JSON lines are read whole" in result.message
    assert not list(tmp_path.glob("x.parquet*"))


def test_distinct_count_by_hash_partitions_is_exact(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import appliance.validate._frames as frames

    path = tmp_path / "d.parquet"
    pl.DataFrame({"v": [i % 777 for i in range(10_000)]}).write_parquet(path)
    monkeypatch.setattr(frames, "DISTINCT_PARTITION_ROWS", 100)   # about nine partitions
    assert distinct_count(ParquetTable(path), pl.col("v")) == 777
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".distinct-")]


@pytest.mark.slow
def test_ingest_of_a_file_bigger_than_the_parser_cap_allows_is_accepted_streamed(
    tmp_path: Path,
) -> None:
    """A 290 MB CSV under a cap that leaves the parser 300 MB over its own warm memory
    (the in-memory read needs about 1.45x the file over it): read whole it is stopped
    as out_of_memory; streamed it is accepted, under the cap, with the same contract and
    the same Parquet content as an uncapped in-memory run."""
    src = big_csv(tmp_path / "big.csv", 1_800_000)
    assert src.stat().st_size > 280e6
    uncapped = _parse(src, tmp_path / "uncapped.parquet", "csv", streamed=False)
    with ParserPool(_limits(streamed=False, memory_mb=4096)) as probe:
        probe.start()
        base = probe.last_peak_mb          # the warm child's own memory
    cap = int(base + 300)
    with ParserPool(_limits(streamed=False, memory_mb=cap)) as pool:
        whole = pool.parse(src, tmp_path / "whole.parquet", fmt="csv", dataset="demo",
                           contract_yaml=None, contract_version=None)
    assert whole.reason == "out_of_memory", whole
    with ParserPool(_limits(streamed=True, memory_mb=cap)) as pool:
        streamed = pool.parse(src, tmp_path / "streamed.parquet", fmt="csv", dataset="demo",
                              contract_yaml=None, contract_version=None)
        peak = pool.last_peak_mb
    assert streamed.ok, streamed.message
    assert peak < cap
    assert streamed.contract_yaml == uncapped.contract_yaml
    assert streamed.report == uncapped.report and streamed.rows == uncapped.rows
    assert_frame_equal(pl.read_parquet(tmp_path / "streamed.parquet"),
                       pl.read_parquet(tmp_path / "uncapped.parquet"))
