"""parse_file in-process: formats, hostile inputs, contracts, and the JSON result shape."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from appliance.domain.ingest import Reason
from appliance.errors import IngestRejected
from appliance.ingest.formats import detect_format
from appliance.ingest.parse import ParseLimits, ParseResult, parse_file, summarize_parquet
from appliance.validate.contracts import infer_contract

from .conftest import HOSTILE_REASONS, big_csv, build_hostile, good_csv_text, good_frame


def run(src: Path, tmp_path: Path, limits: ParseLimits, *, fmt: str = "csv",
        contract: str | None = None) -> tuple[ParseResult, Path]:
    dst = tmp_path / "out" / "version.parquet"
    result = parse_file(src, dst, fmt=fmt, dataset="demo", contract_yaml=contract,
                        contract_version=1 if contract else None, limits=limits)
    return result, dst


def assert_clean(tmp_path: Path) -> None:
    """A refused file leaves no Parquet and no scratch file behind."""
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == []


# -- formats --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "fmt"), [
    ("a.csv", "csv"), ("A.CSV", "csv"), ("a.csv.gz", "csv.gz"), ("a.CSV.GZ", "csv.gz"),
    ("a.parquet", "parquet"), ("a.Parquet", "parquet"), ("a.jsonl", "jsonl"),
])
def test_detect_format_known_suffix_names_format(name: str, fmt: str) -> None:
    assert detect_format(name) == fmt


@pytest.mark.parametrize("name", ["a.txt", "a.gz", "a.csv.bz2", "csv", ".csv", "a.json",
                                  "a.onnx", "a.csv.part"])
def test_detect_format_unknown_suffix_is_rejected(name: str) -> None:
    with pytest.raises(IngestRejected) as info:
        detect_format(name)
    assert info.value.reason == Reason.unsupported_format.value
    assert ".csv" in info.value.message


# -- good files -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet", "jsonl"])
def test_parse_good_file_writes_readable_parquet(
    fmt: str, write_good: Callable[[str], Path], tmp_path: Path, limits: ParseLimits
) -> None:
    result, dst = run(write_good(fmt), tmp_path, limits, fmt=fmt)
    assert result.ok, result.message
    assert result.reason is None and result.parquet_written and result.inferred
    assert result.rows == 100
    assert [c["name"] for c in result.columns] == ["x", "n", "color"]
    assert {c["name"]: c["dtype"] for c in result.columns} == {
        "x": "Float64", "n": "Int64", "color": "String"}
    assert result.report is not None and result.report["passed"]
    assert result.contract_yaml and "color" in result.contract_yaml
    assert pl.read_parquet(dst).equals(good_frame())
    assert [s["name"] for s in summarize_parquet(dst)] == ["x", "n", "color"]
    assert sorted(p.name for p in dst.parent.iterdir()) == ["version.parquet"]


def test_parse_utf8_bom_csv_is_accepted(tmp_path: Path, limits: ParseLimits) -> None:
    src = tmp_path / "bom.csv"
    src.write_bytes(good_csv_text().encode("utf-8-sig"))
    result, dst = run(src, tmp_path, limits)
    assert result.ok and pl.read_parquet(dst).columns == ["x", "n", "color"]


def test_parse_inferred_column_widens_when_later_rows_disagree(
    tmp_path: Path, limits: ParseLimits
) -> None:
    src = tmp_path / "drift.csv"
    src.write_text("a,b,c\n" + "1,x,1\n" * 300 + "2.5,y,2.5\n" + "zz,y,3\n")
    result, dst = run(src, tmp_path, limits)
    assert result.ok, result.message
    assert pl.read_parquet(dst).schema == pl.Schema(
        {"a": pl.String, "b": pl.String, "c": pl.Float64})
    assert result.rows == 302


# -- hostile files --------------------------------------------------------------------


@pytest.mark.timeout(20)   # a FIFO opened for reading without O_NONBLOCK would hang here
@pytest.mark.parametrize("kind", sorted(HOSTILE_REASONS))
def test_parse_hostile_file_is_refused_with_reason(
    kind: str, tmp_path: Path, limits: ParseLimits
) -> None:
    src, fmt = build_hostile(kind, tmp_path)
    result, _ = run(src, tmp_path, limits, fmt=fmt)
    reason, words = HOSTILE_REASONS[kind]
    assert not result.ok
    assert result.reason == reason, result.message
    assert words in result.message
    assert result.report is None and not result.parquet_written
    assert_clean(tmp_path)


def test_parse_gzip_bomb_is_small_on_disk(tmp_path: Path) -> None:
    src, _ = build_hostile("gzip_bomb", tmp_path)
    assert src.stat().st_size < 200_000


def test_parse_file_over_max_bytes_is_too_big(
    write_good: Callable[[str], Path], tmp_path: Path, limits: ParseLimits
) -> None:
    tight = ParseLimits(max_bytes=100, max_uncompressed_bytes=10_000_000, timeout_s=60,
                        memory_mb=2048)
    result, _ = run(write_good("csv"), tmp_path, tight)
    assert (result.ok, result.reason) == (False, "too_big")
    assert "limit" in result.message


def test_parse_hard_linked_file_is_not_regular(
    write_good: Callable[[str], Path], tmp_path: Path, limits: ParseLimits
) -> None:
    src = write_good("csv")
    os.link(src, tmp_path / "other.csv")
    result, _ = run(src, tmp_path, limits)
    assert result.reason == "not_regular_file" and "hard links" in result.message


def test_parse_directory_is_not_regular(tmp_path: Path, limits: ParseLimits) -> None:
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    result, _ = run(folder, tmp_path, limits)
    assert result.reason == "not_regular_file" and "directory" in result.message


def test_parse_utf16_without_bom_is_encoding(tmp_path: Path, limits: ParseLimits) -> None:
    src = tmp_path / "u16.csv"
    src.write_bytes(good_csv_text().encode("utf-16-le"))
    result, _ = run(src, tmp_path, limits)
    assert result.reason == "encoding" and "NUL" in result.message


def test_parse_latin1_message_names_line_and_byte(tmp_path: Path, limits: ParseLimits) -> None:
    src, _ = build_hostile("latin1", tmp_path)
    result, _ = run(src, tmp_path, limits)
    assert result.message.startswith("line 2 is not UTF-8 (byte 0xFC")


def test_parse_duplicate_header_is_malformed(tmp_path: Path, limits: ParseLimits) -> None:
    src = tmp_path / "dup.csv"
    src.write_text("a,b,a\n1,2,3\n")
    result, _ = run(src, tmp_path, limits)
    assert result.reason == "malformed" and "'a' appears twice" in result.message


@pytest.mark.parametrize(("data", "words"), [
    (b"not gzip at all", "not a valid gzip stream"),
    (gzip.compress(good_csv_text().encode())[:-30], "truncated"),
])
def test_parse_broken_gzip_is_malformed(
    data: bytes, words: str, tmp_path: Path, limits: ParseLimits
) -> None:
    src = tmp_path / "broken.csv.gz"
    src.write_bytes(data)
    result, _ = run(src, tmp_path, limits, fmt="csv.gz")
    assert result.reason == "malformed" and words in result.message
    assert_clean(tmp_path)


def test_parse_multi_member_gzip_reads_every_member(tmp_path: Path, limits: ParseLimits) -> None:
    text = good_csv_text().encode()
    header, body = text.split(b"\n", 1)
    src = tmp_path / "multi.csv.gz"
    src.write_bytes(gzip.compress(header + b"\n") + gzip.compress(body))
    result, _ = run(src, tmp_path, limits, fmt="csv.gz")
    assert result.ok and result.rows == 100


def test_parse_garbage_parquet_is_malformed(tmp_path: Path, limits: ParseLimits) -> None:
    src = tmp_path / "fake.parquet"
    src.write_bytes(b"PAR1 this is not parquet PAR1")
    result, _ = run(src, tmp_path, limits, fmt="parquet")
    assert result.reason == "malformed" and "Parquet" in result.message
    assert "/proc" not in result.message


def test_parse_parquet_decoding_past_cap_is_too_big(tmp_path: Path, limits: ParseLimits) -> None:
    src = tmp_path / "dense.parquet"
    pl.DataFrame({"a": [0] * 2_000_000}).write_parquet(src)   # ~16 MB decoded, tiny stored
    result, _ = run(src, tmp_path, limits, fmt="parquet")
    assert result.reason == "too_big" and "decodes" in result.message


@pytest.mark.parametrize(("data", "words"), [
    (b'{"a": 1}\n{"a": 2,\n{"a": 3}\n', "line 2: not valid JSON"),
    (b'{"a": 1}\n[1, 2]\n', "line 2: expected a JSON object"),
    (b'{"a": {"b": 1}}\n', "nested"),
])
def test_parse_bad_jsonl_is_malformed(
    data: bytes, words: str, tmp_path: Path, limits: ParseLimits
) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_bytes(data)
    result, _ = run(src, tmp_path, limits, fmt="jsonl")
    assert result.reason == "malformed" and words in result.message


def test_parse_unknown_format_argument_is_unsupported(
    write_good: Callable[[str], Path], tmp_path: Path, limits: ParseLimits
) -> None:
    result, _ = run(write_good("csv"), tmp_path, limits, fmt="xlsx")
    assert result.reason == "unsupported_format"


# -- with a contract ------------------------------------------------------------------


@pytest.fixture
def contract() -> str:
    return infer_contract(good_frame(), dataset="demo")


def test_parse_new_column_with_contract_gives_failed_report(
    tmp_path: Path, limits: ParseLimits, contract: str
) -> None:
    src = tmp_path / "wider.csv"
    src.write_text("x,n,color,extra\n" + "".join(
        f"{i * 0.5},{i},red,{i}\n" for i in range(100)))
    result, dst = run(src, tmp_path, limits, contract=contract)
    assert result.ok and result.parquet_written and not result.inferred
    assert result.contract_yaml == contract
    assert result.report is not None and not result.report["passed"]
    assert result.report["contract_version"] == 1
    assert any("extra" in f["sample_values"] for f in result.report["failures"])
    assert "extra" in pl.read_parquet(dst).columns     # kept for inspection


def test_parse_missing_column_with_contract_gives_failed_report(
    tmp_path: Path, limits: ParseLimits, contract: str
) -> None:
    src = tmp_path / "narrow.csv"
    src.write_text("x,n\n" + "".join(f"{i * 0.5},{i}\n" for i in range(100)))
    result, _ = run(src, tmp_path, limits, contract=contract)
    assert result.ok and result.report is not None and not result.report["passed"]
    assert any("color" in f["sample_values"] for f in result.report["failures"])


def test_parse_out_of_range_value_with_contract_warns_and_writes_parquet(
    tmp_path: Path, limits: ParseLimits, contract: str
) -> None:
    """Inferred ranges are soft: the report passes with a warning naming the value."""
    src = tmp_path / "range.csv"
    src.write_text(good_csv_text().replace("\n0.0,0,red\n", "\n1e9,0,red\n"))
    result, dst = run(src, tmp_path, limits, contract=contract)
    assert result.ok and result.report is not None and result.report["passed"]
    (warning,) = result.report["warnings"]
    assert (warning["column"], warning["failing_rows"], warning["sample_values"]) == ("x", 1, [1e9])
    assert dst.is_file() and pl.read_parquet(dst).height == 100


def test_parse_bad_value_on_last_row_with_contract_names_column_and_line(
    tmp_path: Path, limits: ParseLimits, contract: str
) -> None:
    src = tmp_path / "late.csv"
    src.write_text(good_csv_text(10_000) + "1.5,abc,red\n")
    result, _ = run(src, tmp_path, limits, contract=contract)
    assert (result.ok, result.reason) == (False, "malformed")
    assert "column 'n'" in result.message and "line 10002" in result.message
    assert "'abc'" in result.message
    assert_clean(tmp_path)


@pytest.mark.slow
def test_parse_bad_value_on_last_row_of_million_rows_is_malformed(
    tmp_path: Path, limits: ParseLimits
) -> None:
    src = big_csv(tmp_path / "big.csv", 1_000_000)
    frame = pl.read_csv(src, n_rows=1000)
    contract = infer_contract(frame, dataset="demo")
    with src.open("a") as fh:
        fh.write(",".join(["0.5"] * 16 + ["red", "r1", "a", "yes"]) + "\n")
    big = ParseLimits(max_bytes=1 << 30, max_uncompressed_bytes=1 << 30, timeout_s=120,
                      memory_mb=4096)
    result, _ = run(src, tmp_path, big, contract=contract)
    assert (result.ok, result.reason) == (False, "malformed")
    assert "column 'label'" in result.message and "line 1000002" in result.message


def test_parse_jsonl_bad_value_with_contract_is_malformed(
    tmp_path: Path, limits: ParseLimits, contract: str
) -> None:
    src = tmp_path / "bad.jsonl"
    lines = [json.dumps({"x": i * 0.5, "n": i, "color": "red"}) for i in range(50)]
    src.write_text("\n".join([*lines, json.dumps({"x": 1.0, "n": 2.5, "color": "red"})]))
    result, _ = run(src, tmp_path, limits, fmt="jsonl", contract=contract)
    assert result.reason == "malformed"
    assert "column 'n'" in result.message and "line 51" in result.message


def test_parse_jsonl_ints_for_float_column_with_contract_are_read_as_floats(
    tmp_path: Path, limits: ParseLimits, contract: str
) -> None:
    src = tmp_path / "ints.jsonl"
    src.write_text("".join(json.dumps({"x": i, "n": i, "color": "red"}) + "\n"
                           for i in range(100)))
    result, dst = run(src, tmp_path, limits, fmt="jsonl", contract=contract)
    assert result.ok and result.report is not None and result.report["passed"]
    assert pl.read_parquet(dst).schema["x"] == pl.Float64


def test_parse_jsonl_key_first_seen_late_is_kept(tmp_path: Path, limits: ParseLimits) -> None:
    src = tmp_path / "late.jsonl"
    src.write_text('{"a": 1}\n' * 500 + '{"a": 2, "b": "new"}\n')
    result, dst = run(src, tmp_path, limits, fmt="jsonl")
    assert result.ok and pl.read_parquet(dst).columns == ["a", "b"]


# -- the result crosses a trust boundary as JSON --------------------------------------


def test_parse_result_round_trips_through_json(
    write_good: Callable[[str], Path], tmp_path: Path, limits: ParseLimits
) -> None:
    result, _ = run(write_good("csv"), tmp_path, limits)
    text = result.to_json()
    assert json.loads(text)["rows"] == 100
    assert ParseResult.from_json(text) == result


@pytest.mark.parametrize("text", [
    "[]", '"ok"', '{"ok": "yes", "reason": null, "message": ""}',
    '{"ok": false, "reason": "no_such_reason", "message": "x"}',
    '{"ok": true, "reason": null, "message": "", "columns": [{"name": 1}]}',
    '{"ok": true, "reason": null, "message": "", "report": "passed"}',
    '{"reason": null}', "not json",
    '{"ok": true, "reason": "timeout", "message": "", "report": {}}',
    '{"ok": true, "reason": null, "message": ""}',
    '{"ok": false, "reason": null, "message": ""}',
])
def test_parse_result_from_json_refuses_bad_shapes(text: str) -> None:
    with pytest.raises(ValueError):
        ParseResult.from_json(text)


def test_remove_scratch_after_a_killed_child_removes_the_spilled_key_hashes(
        tmp_path: Path) -> None:
    from appliance.ingest.parse import remove_scratch, scratch_paths, spill_folder
    from appliance.ingest.worker import ParserPool

    dst = tmp_path / "out" / "version.parquet"
    (spill_folder(dst) / ".key-hashes-x").mkdir(parents=True)
    (spill_folder(dst) / ".key-hashes-x" / "ab.u64").write_bytes(b"\0" * 16)
    for path in scratch_paths(dst):
        path.write_bytes(b"partial")
    ParserPool._clean(dst)          # what the pool does when its child dies mid-file
    assert list((tmp_path / "out").iterdir()) == []
    remove_scratch(dst)             # nothing there: no error
