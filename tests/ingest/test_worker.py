"""ParserPool: one warm child behind a JSON-only pipe, with a timeout, crash recovery and limits."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from appliance.ingest.formats import detect_format
from appliance.ingest.parse import ParseLimits, ParseResult
from appliance.ingest.worker import ParserPool

from .conftest import HOSTILE_REASONS, big_csv, build_hostile


def parse(pool: ParserPool, src: Path, dst: Path, fmt: str = "csv") -> ParseResult:
    return pool.parse(src, dst, fmt=fmt, dataset="demo", contract_yaml=None,
                      contract_version=None)


def assert_good_parse(pool: ParserPool, write_good: Callable[[str], Path], tmp_path: Path) -> None:
    dst = tmp_path / "good-after.parquet"
    result = parse(pool, write_good("csv"), dst)
    assert result.ok, result.message
    assert pl.read_parquet(dst).height == 100


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("fmt", ["csv", "csv.gz", "parquet", "jsonl"])
def test_parse_good_file_in_child_returns_result(
    fmt: str, pool: ParserPool, write_good: Callable[[str], Path], tmp_path: Path
) -> None:
    dst = tmp_path / "v.parquet"
    result = parse(pool, write_good(fmt), dst, fmt)
    assert isinstance(result, ParseResult)
    assert result.ok and result.rows == 100 and result.parquet_written
    assert pl.read_parquet(dst).columns == ["x", "n", "color"]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", sorted(HOSTILE_REASONS))
def test_parse_hostile_file_in_child_leaves_worker_usable(
    kind: str, pool: ParserPool, write_good: Callable[[str], Path], tmp_path: Path
) -> None:
    pid = pool.pid
    src, fmt = build_hostile(kind, tmp_path)
    result = parse(pool, src, tmp_path / "bad.parquet", fmt)
    assert (result.ok, result.reason) == (False, HOSTILE_REASONS[kind][0]), result.message
    assert HOSTILE_REASONS[kind][1] in result.message
    assert not (tmp_path / "bad.parquet").exists()
    assert_good_parse(pool, write_good, tmp_path)
    assert pool.pid == pid                      # a bad file never costs the child


def test_parse_unsupported_extension_is_refused(
    pool: ParserPool, write_good: Callable[[str], Path], tmp_path: Path
) -> None:
    src = tmp_path / "notes.txt"
    src.write_text("a,b\n1,2\n")
    with pytest.raises(Exception, match="unsupported file type"):
        detect_format(src.name)
    result = parse(pool, src, tmp_path / "v.parquet", fmt="txt")
    assert (result.ok, result.reason) == (False, "unsupported_format")
    assert_good_parse(pool, write_good, tmp_path)


def test_parse_past_timeout_kills_child_and_next_parse_works(
    pool: ParserPool, write_good: Callable[[str], Path], tmp_path: Path
) -> None:
    src = big_csv(tmp_path / "big.csv", 100_000)
    dst = tmp_path / "big.parquet"
    old_pid, limits = pool.pid, pool.limits
    pool.limits = dataclasses.replace(limits, timeout_s=0.01)
    try:
        result = parse(pool, src, dst)
    finally:
        pool.limits = limits
    assert (result.ok, result.reason) == (False, "timeout")
    assert "0.01 s" in result.message
    assert old_pid is not None and wait_gone(old_pid, 5)
    assert not dst.exists() and not (tmp_path / "big.parquet.tmp").exists()
    assert_good_parse(pool, write_good, tmp_path)
    assert pool.pid not in (None, old_pid)


def test_parse_after_child_killed_between_parses_restarts_it(
    pool: ParserPool, write_good: Callable[[str], Path], tmp_path: Path
) -> None:
    assert_good_parse(pool, write_good, tmp_path)
    old_pid = pool.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)
    assert_good_parse(pool, write_good, tmp_path)
    assert pool.pid not in (None, old_pid)


def test_parse_when_child_dies_mid_file_is_parser_crashed(
    pool: ParserPool, write_good: Callable[[str], Path], tmp_path: Path
) -> None:
    # a bad last line sends the child through a line-by-line scan that takes a while
    src = tmp_path / "slow.jsonl"
    src.write_text('{"a": 1}\n' * 1_000_000 + '{"a": \n')
    pid = pool.pid
    assert pid is not None
    killer = threading.Timer(0.1, os.kill, (pid, signal.SIGKILL))
    killer.start()
    result = parse(pool, src, tmp_path / "big.parquet", "jsonl")
    killer.join()
    assert (result.ok, result.reason) == (False, "parser_crashed")
    assert "SIGKILL" in result.message
    assert not (tmp_path / "big.parquet.tmp").exists()
    assert_good_parse(pool, write_good, tmp_path)


def test_parse_from_two_threads_is_serialised(
    pool: ParserPool, write_good: Callable[[str], Path], tmp_path: Path
) -> None:
    src = write_good("csv")
    results: list[ParseResult] = []

    def one(i: int) -> None:
        results.append(parse(pool, src, tmp_path / f"v{i}.parquet"))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4 and all(r.ok and r.rows == 100 for r in results)


def test_close_pool_stops_child(limits: ParseLimits) -> None:
    pool = ParserPool(limits)
    pool.start()
    pid = pool.pid
    assert pid is not None and alive(pid)
    pool.close()
    assert pool.pid is None and wait_gone(pid, 5)
    with pytest.raises(RuntimeError):
        pool.parse(Path("x.csv"), Path("x.parquet"), fmt="csv", dataset="d",
                   contract_yaml=None, contract_version=None)


def test_child_exits_when_parent_dies(tmp_path: Path) -> None:
    script = textwrap.dedent("""
        import os
        from appliance.ingest.parse import ParseLimits
        from appliance.ingest.worker import ParserPool
        pool = ParserPool(ParseLimits(10**6, 10**6, 10.0, 2048))
        pool.start()
        print(pool.pid, flush=True)
        os._exit(0)   # no close(): the parent just vanishes
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True)
    child = int(out.stdout.strip())
    assert wait_gone(child, 10)


def fake_child(tmp_path: Path, reply_expr: str) -> str:
    """An executable standing in for a compromised child: it answers a parse with ``reply_expr``."""
    path = tmp_path / "fake-python"
    path.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys
        out = sys.stdout
        out.write('{{"ready": true}}\\n'); out.flush()
        for line in sys.stdin:
            if '"ping"' in line:
                out.write('{{"pong": true}}\\n')
            else:
                out.write({reply_expr} + "\\n")
            out.flush()
    """))
    path.chmod(0o755)
    return str(path)


@pytest.mark.parametrize(("reply_expr", "reason"), [
    (repr("\x80\x04\x95 pickle bytes"), "internal"),
    (repr('{"ok": 1, "reason": null, "message": "trust me"}'), "internal"),
    (repr('{"ok": true, "reason": null, "message": "", "parquet_written": true}'), "internal"),
    (repr('{"ok": false, "reason": "rm -rf", "message": ""}'), "internal"),
    ('"x" * (70 << 20)', "parser_crashed"),
])
def test_parse_with_hostile_child_reply_is_not_trusted(
    reply_expr: str, reason: str, tmp_path: Path, limits: ParseLimits
) -> None:
    with ParserPool(limits, python=fake_child(tmp_path, reply_expr)) as pool:
        result = pool.parse(tmp_path / "a.csv", tmp_path / "a.parquet", fmt="csv",
                            dataset="d", contract_yaml=None, contract_version=None)
    assert (result.ok, result.reason) == (False, reason), result.message


def test_parse_bad_value_on_last_row_of_million_rows_in_child_is_malformed(
    write_good: Callable[[str], Path], tmp_path: Path
) -> None:
    from appliance.validate.contracts import infer_contract

    src = big_csv(tmp_path / "big.csv", 1_000_000)
    contract = infer_contract(pl.read_csv(src, n_rows=1000), dataset="demo")
    with src.open("a") as fh:
        fh.write(",".join(["0.5"] * 16 + ["red", "r1", "a", "yes"]) + "\n")
    limits = ParseLimits(max_bytes=1 << 30, max_uncompressed_bytes=1 << 30, timeout_s=120,
                         memory_mb=4096)
    with ParserPool(limits) as pool:
        result = pool.parse(src, tmp_path / "big.parquet", fmt="csv", dataset="demo",
                            contract_yaml=contract, contract_version=1)
        assert (result.ok, result.reason) == (False, "malformed")
        assert "column 'label'" in result.message and "line 1000002" in result.message
        assert_good_parse(pool, write_good, tmp_path)


def test_parse_past_memory_cap_is_out_of_memory_and_child_restarts(
    write_good: Callable[[str], Path], tmp_path: Path
) -> None:
    # The cap is on resident memory now (issue 12), not address space: a parse that
    # really holds 960 MB is stopped by the parent's watchdog and reported as such.
    # (Read whole on purpose: above the streaming threshold this file is now streamed
    # and accepted, see tests/ingest/test_streaming.py.)
    src = tmp_path / "dense.parquet"
    pl.select(pl.repeat(7, 120_000_000, dtype=pl.Int64).alias("a")).write_parquet(src)
    limits = ParseLimits(max_bytes=1 << 30, max_uncompressed_bytes=1 << 40, timeout_s=120,
                         memory_mb=600, stream_above_bytes=1 << 40)
    with ParserPool(limits) as pool:
        result = parse(pool, src, tmp_path / "dense-out.parquet", "parquet")
        assert (result.ok, result.reason) == (False, "out_of_memory"), result.message
        assert "600 MB cap" in result.message and pool.last_peak_mb > 600
        assert_good_parse(pool, write_good, tmp_path)


def test_summarize_recorded_parquet_in_child_returns_json_summary(
    pool: ParserPool, write_good: Callable[[str], Path], tmp_path: Path
) -> None:
    dst = tmp_path / "v.parquet"
    assert parse(pool, write_good("csv"), dst).ok
    summary = pool.summarize(dst)
    assert [s["name"] for s in summary] == ["x", "n", "color"]
    assert summary[0]["histogram"] and len(summary[0]["histogram"]["counts"]) == 20


def test_summarize_missing_file_raises_and_worker_stays_usable(
    pool: ParserPool, write_good: Callable[[str], Path], tmp_path: Path
) -> None:
    with pytest.raises(RuntimeError, match=r"summary of nope\.parquet failed"):
        pool.summarize(tmp_path / "nope.parquet")
    assert_good_parse(pool, write_good, tmp_path)
