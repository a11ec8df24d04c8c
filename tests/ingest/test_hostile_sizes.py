"""Hostile shapes: very wide headers, over-long header lines, a 50 MB cell."""

from __future__ import annotations

import json
import mmap
import time
from pathlib import Path

import polars as pl
import pytest

from appliance.domain.text import ELLIPSIS, MAX_VALUE_CHARS
from appliance.ingest.dialect import read_header
from appliance.ingest.parse import ParseLimits, ParseResult, parse_file, summarize_parquet
from appliance.validate.contracts import infer_contract


def parse(src: Path, tmp_path: Path, limits: ParseLimits, *, fmt: str = "csv",
          contract: str | None = None) -> ParseResult:
    return parse_file(src, tmp_path / "out" / "v.parquet", fmt=fmt, dataset="demo",
                      contract_yaml=contract, contract_version=1 if contract else None,
                      limits=limits)


def wide_csv(path: Path, columns: int) -> Path:
    path.write_text(",".join(f"c{i}" for i in range(columns)) + "\n"
                    + ",".join("1" for _ in range(columns)) + "\n")
    return path


# -- columns -------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_parse_60k_column_csv_is_refused_at_once_as_too_many_columns(
    tmp_path: Path, limits: ParseLimits
) -> None:
    src = wide_csv(tmp_path / "wide.csv", 60_000)
    assert src.stat().st_size < 600_000
    started = time.monotonic()
    result = parse(src, tmp_path, limits)
    assert time.monotonic() - started < 10
    assert (result.ok, result.reason) == (False, "too_many_columns")
    assert "60,000 columns" in result.message and "2,000" in result.message
    assert "APPLIANCE_MAX_COLUMNS" in result.message


@pytest.mark.timeout(60)
def test_read_header_of_60k_columns_takes_linear_time(tmp_path: Path) -> None:
    src = wide_csv(tmp_path / "wide.csv", 60_000)
    with src.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        started = time.monotonic()
        header = read_header(mm, 0, max_columns=100_000)
        elapsed = time.monotonic() - started
    assert len(header.names) == 60_000 and header.names[-1] == "c59999"
    assert elapsed < 3, elapsed      # a pairwise duplicate check took about a minute


@pytest.mark.timeout(60)
def test_parse_million_column_header_is_too_many_columns_not_a_duplicate(
    tmp_path: Path, limits: ParseLimits
) -> None:
    src = wide_csv(tmp_path / "million.csv", 1_000_000)
    result = parse(src, tmp_path, limits)
    assert (result.ok, result.reason) == (False, "too_many_columns"), result.message
    assert "appears twice" not in result.message
    assert "more than 2,000 columns" in result.message


def test_parse_header_line_past_one_mib_is_header_too_long(
    tmp_path: Path, limits: ParseLimits
) -> None:
    src = tmp_path / "long.csv"
    names = ["a" * 400_000 + str(i) for i in range(3)]
    src.write_text(",".join(names) + "\n1,2,3\n")
    result = parse(src, tmp_path, limits)
    assert (result.ok, result.reason) == (False, "header_too_long"), result.message
    assert "1 MiB" in result.message


def test_parse_long_column_name_under_the_header_limit_is_read(
    tmp_path: Path, limits: ParseLimits
) -> None:
    src = tmp_path / "name.csv"
    src.write_text("id," + "n" * 300_000 + "\n1,2\n")   # past the csv module's 128 KiB default
    result = parse(src, tmp_path, limits)
    assert result.ok, result.message


def test_parse_wide_parquet_and_jsonl_are_too_many_columns(tmp_path: Path) -> None:
    tight = ParseLimits(max_bytes=10**8, max_uncompressed_bytes=10**8, timeout_s=60,
                        memory_mb=2048, max_columns=10)
    frame = pl.DataFrame({f"c{i}": [1, 2] for i in range(11)})
    frame.write_parquet(tmp_path / "wide.parquet")
    frame.write_ndjson(tmp_path / "wide.jsonl")
    for name, fmt in (("wide.parquet", "parquet"), ("wide.jsonl", "jsonl")):
        result = parse(tmp_path / name, tmp_path, tight, fmt=fmt)
        assert (result.ok, result.reason) == (False, "too_many_columns"), name
        assert "11 columns" in result.message
    assert parse(wide_csv(tmp_path / "ten.csv", 10), tmp_path, tight).ok


def test_parse_limits_cross_to_the_child_with_the_column_cap() -> None:
    limits = ParseLimits(1, 2, 3.0, 4, max_columns=5)
    assert ParseLimits.from_dict(json.loads(json.dumps(limits.to_dict()))) == limits


# -- a 50 MB cell ------------------------------------------------------------------------------


BIG = 50_000_000


@pytest.fixture(scope="module")
def big_cell_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cell") / "cell.csv"
    with path.open("w") as fh:
        fh.write("id,note\n1,")
        fh.write("x" * BIG)
        fh.write("\n2,short\n3,other\n")
    return path


def _clipped(value: object) -> bool:
    return isinstance(value, str) and len(value) <= MAX_VALUE_CHARS + len(ELLIPSIS)


def test_summary_of_a_50mb_cell_keeps_200_characters(
    big_cell_csv: Path, tmp_path: Path
) -> None:
    big = ParseLimits(max_bytes=10**9, max_uncompressed_bytes=10**9, timeout_s=120,
                      memory_mb=4096)
    result = parse(big_cell_csv, tmp_path, big)
    assert result.ok, result.message
    summary = summarize_parquet(tmp_path / "out" / "v.parquet")
    [note] = [s for s in summary if s["name"] == "note"]
    values = [t["value"] for t in note["top_values"]]
    assert "x" * MAX_VALUE_CHARS + ELLIPSIS in values
    assert all(_clipped(v) for v in values)
    assert len(json.dumps(summary)) < 10_000
    assert len(result.to_json()) < 10_000


def test_validation_report_of_a_50mb_cell_keeps_200_characters(
    big_cell_csv: Path, tmp_path: Path
) -> None:
    import pandera.polars as pa

    contract = pa.DataFrameSchema({
        "id": pa.Column(pl.Int64),
        "note": pa.Column(pl.String, pa.Check.isin(["short", "other"])),
    }, strict=True).to_yaml()
    big = ParseLimits(max_bytes=10**9, max_uncompressed_bytes=10**9, timeout_s=120,
                      memory_mb=4096)
    result = parse(big_cell_csv, tmp_path, big, contract=contract)
    assert result.ok and result.report is not None and not result.report["passed"]
    [failure] = result.report["failures"]
    assert failure["column"] == "note" and failure["sample_values"]
    assert all(_clipped(v) for v in failure["sample_values"])
    assert len(failure["message"]) < 2_100
    assert len(result.to_json()) < 20_000
    assert ParseResult.from_json(result.to_json()) == result


def test_type_error_on_a_50mb_cell_quotes_only_its_start(
    big_cell_csv: Path, tmp_path: Path
) -> None:
    contract = infer_contract(pl.DataFrame({"id": [1, 2], "note": [1, 2]}), dataset="demo")
    big = ParseLimits(max_bytes=10**9, max_uncompressed_bytes=10**9, timeout_s=120,
                      memory_mb=4096)
    result = parse(big_cell_csv, tmp_path, big, contract=contract)
    assert (result.ok, result.reason) == (False, "malformed")
    assert "column 'note'" in result.message and len(result.message) < 2_100
