"""Streaming-ingest benchmark (issue 12): big CSVs under a parser memory cap.

Not a test. For each size it generates a CSV (16 floats, 3 categorical, an
integer label; about 174 bytes a row) with DuckDB (constant memory), then times
on that same file, in the same run:

(a) DuckDB: ``COPY (SELECT * FROM read_csv(f)) TO parquet`` with
    ``memory_limit`` = the cap and a spill folder: the floor for CSV-to-Parquet;
(b) ours: the warm parser child (``ParserPool.parse``: read, infer the
    contract, validate, write Parquet) under ``APPLIANCE_PARSE_MEMORY_MB`` (the
    resident-memory watchdog), then the column summary of the Parquet it wrote.
    A file over the streaming threshold (a quarter of the cap, or
    ``--stream-above-mb``) takes the streamed path (appliance.ingest.stream);
    the table says which path each file took.

It prints, per size: the outcome (``accepted`` or the quarantine reason), both
times, the ratio ours/duckdb (issue target <= 1.2), and the parser's peak
memory against the cap (anonymous resident memory, as the cap counts it; for
the parse and for the summary). Sizes: ``--rows`` (any number of times; default
1M and 10M) and ``--gb`` (a file of about that many GB; 10 for the issue's
figure).

    PYTHONPATH=$PWD .venv/bin/python bench/ingest_stream.py --gb 1
    APPLIANCE_PARSE_MEMORY_MB=1024 ... --rows 1000000 --rows 10000000 --gb 10
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Annotated

import duckdb
import typer
from rich.console import Console
from rich.table import Table

from appliance.ingest.parse import ParseLimits
from appliance.ingest.worker import ParserPool

BYTES_PER_ROW = 174          # measured on this generator: 1M rows ~ 174 MB
TARGET_VS_DUCKDB = 1.2
console = Console(width=170)
app = typer.Typer(add_completion=False)


def make_csv(path: Path, rows: int) -> None:
    floats = ", ".join(f"round(random() * 4 - 2, 6) AS f{i}" for i in range(16))
    con = duckdb.connect(config={"memory_limit": "512MB", "threads": 2})
    con.execute("SELECT setseed(0.11)")
    con.execute(f"""COPY (SELECT {floats},
        ['red', 'green', 'blue', 'yellow'][1 + (i % 4)] AS color,
        'region_' || (i % 20) AS region,
        ['bronze', 'silver', 'gold'][1 + (i % 3)] AS tier,
        (i % 2)::INTEGER AS label
        FROM range({rows}) t(i)) TO '{path}' (HEADER, DELIMITER ',')""")
    con.close()


def duckdb_copy(src: Path, dst: Path, cap_mb: int, spill: Path) -> float:
    con = duckdb.connect(config={"memory_limit": f"{cap_mb}MB",
                                 "temp_directory": str(spill)})
    t0 = time.perf_counter()
    con.execute(f"COPY (SELECT * FROM read_csv('{src}')) TO '{dst}' (FORMAT parquet)")
    elapsed = time.perf_counter() - t0
    con.close()
    return elapsed


def ours(pool: ParserPool, src: Path, dst: Path) -> tuple[str, float, float, float, float]:
    t0 = time.perf_counter()
    result = pool.parse(src, dst, fmt="csv", dataset="bench", contract_yaml=None,
                        contract_version=None)
    parse_s, parse_peak = time.perf_counter() - t0, pool.last_peak_mb
    if not result.ok:
        return str(result.reason), parse_s, parse_peak, float("nan"), float("nan")
    t0 = time.perf_counter()
    try:
        pool.summarize(dst)
    except RuntimeError as exc:
        console.print(f"  summary failed: {exc}")
    return "accepted", parse_s, parse_peak, time.perf_counter() - t0, pool.last_peak_mb


def _count_rows(path: Path) -> int:
    """Data rows of a CSV of the generator's shape (no quoted line ends): its line ends
    less the header's, counted in 16 MB reads (a DuckDB count parses the whole file)."""
    lines = 0
    with path.open("rb") as f:
        while chunk := f.read(16 << 20):
            lines += chunk.count(b"\n")
    return lines - 1


@app.command()
def main(
    rows: Annotated[list[int] | None, typer.Option(help="rows of one file (repeatable)")] = None,
    gb: Annotated[float, typer.Option(help="also a file of about this many GB (0: none)")] = 0.0,
    cap_mb: Annotated[int, typer.Option(help="the parser cap (APPLIANCE_PARSE_MEMORY_MB)")] = (
        int(os.environ.get("APPLIANCE_PARSE_MEMORY_MB", "1024"))),
    stream_above_mb: Annotated[int | None, typer.Option(
        help="stream files over this many MB (default: a quarter of the cap)")] = None,
    csv: Annotated[list[Path] | None, typer.Option(
        help="also time this existing CSV of the generator's shape (kept; repeatable)")] = None,
) -> None:
    sizes: list[int | Path] = list(rows or ([] if csv else [1_000_000, 10_000_000]))
    sizes += list(csv or [])
    if gb > 0:
        sizes.append(int(gb * 1e9 / BYTES_PER_ROW))
    limits = ParseLimits(max_bytes=1 << 40, max_uncompressed_bytes=1 << 40, timeout_s=3600,
                         memory_mb=cap_mb,
                         stream_above_bytes=None if stream_above_mb is None else stream_above_mb << 20)
    table = Table(title=f"Streaming ingest, parser cap {cap_mb} MB (anonymous resident memory)")
    for col in ("rows", "CSV MB", "path", "outcome", "duckdb s", "ours parse s", "ours/duckdb",
                "parse peak MB", "summary s", "summary peak MB"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory(prefix="appliance-bench-stream-") as tmp, \
            ParserPool(limits) as pool:
        folder = Path(tmp)
        pool.start()
        console.print(f"warm parser child: {pool.last_peak_mb:.0f} MB anonymous resident")
        for size in sizes:
            if isinstance(size, Path):
                src, n = size, _count_rows(size)
            else:
                src, n = folder / f"f{size}.csv", size
                make_csv(src, n)
            size_mb = src.stat().st_size / 1e6
            console.print(f"{n:,} rows, {size_mb:,.0f} MB: duckdb ...")
            ref = duckdb_copy(src, folder / "ref.parquet", cap_mb, folder)
            console.print(f"  duckdb {ref:.2f} s; ours ...")
            outcome, parse_s, parse_peak, summ_s, summ_peak = ours(pool, src, folder / "v.parquet")
            console.print(f"  ours {outcome} in {parse_s:.2f} s, peak {parse_peak:.0f} MB")
            path = "streamed" if limits.streams(src.stat().st_size) else "in memory"
            table.add_row(f"{n:,}", f"{size_mb:,.0f}", path, outcome, f"{ref:.2f}", f"{parse_s:.2f}",
                          f"{parse_s / ref:.2f}x" if outcome == "accepted" else "-",
                          f"{parse_peak:.0f} / {cap_mb}",
                          f"{summ_s:.2f}" if outcome == "accepted" else "-",
                          f"{summ_peak:.0f} / {cap_mb}" if outcome == "accepted" else "-")
            for leftover in (folder / "ref.parquet", folder / "v.parquet",
                             *(() if isinstance(size, Path) else (src,))):
                leftover.unlink(missing_ok=True)
    console.print(table)
    console.print(f"target: accepted, ours/duckdb <= {TARGET_VS_DUCKDB}x, peak under the cap")


if __name__ == "__main__":
    app()
