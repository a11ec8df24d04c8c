"""Probe: the parser child against a raw DuckDB CSV->Parquet copy, on the same file, one run.

Not a test and not the issue's benchmark (``bench/ingest.py`` times the whole
ingestion): this isolates ``ParserPool.parse`` (warm child) so the parse step
can be tuned. Generates a 1M x 20 CSV (16 float, 3 categorical, 1 integer
label; ~160 MB) under /tmp once, then alternates the contenders and prints
medians and ratios.

    .venv/bin/python bench/parse_probe.py [--rows 1000000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from appliance.ingest.parse import ParseLimits
from appliance.ingest.worker import ParserPool


def make_csv(path: Path, rows: int) -> None:
    rng = np.random.default_rng(7)
    cols: dict[str, object] = {f"f{i}": np.round(rng.normal(size=rows), 6) for i in range(16)}
    cols["color"] = rng.choice(["red", "green", "blue", "yellow"], rows)
    cols["region"] = rng.choice([f"region_{i}" for i in range(20)], rows)
    cols["tier"] = rng.choice(["bronze", "silver", "gold"], rows)
    cols["label"] = rng.integers(0, 2, rows)
    tmp = path.with_suffix(".part")
    pl.DataFrame(cols).write_csv(tmp)
    tmp.rename(path)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--memory-mb", type=int, default=4096)
    args = ap.parse_args()

    src = Path(tempfile.gettempdir()) / f"appliance-probe-{args.rows}.csv"
    if not src.exists():
        make_csv(src, args.rows)
    out = Path(tempfile.mkdtemp(prefix="appliance-probe-"))
    print(f"file: {src} ({src.stat().st_size / 1e6:.0f} MB, {args.rows} rows)")

    def duck() -> None:
        con = duckdb.connect()
        con.execute(f"COPY (SELECT * FROM read_csv('{src}')) TO '{out / 'duck.parquet'}' "
                    "(FORMAT parquet)")
        con.close()

    def sha() -> None:
        h = hashlib.sha256()
        with open(src, "rb") as fh:
            while chunk := fh.read(8 << 20):
                h.update(chunk)

    limits = ParseLimits(max_bytes=4 << 30, max_uncompressed_bytes=8 << 30, timeout_s=120,
                         memory_mb=args.memory_mb)
    times: dict[str, list[float]] = {"duckdb_copy": [], "parse_infer": [],
                                     "parse_contract": [], "sha256": []}
    with ParserPool(limits) as pool:
        t0 = time.perf_counter()
        pool.start()
        print(f"child start (imports + warm-up): {time.perf_counter() - t0:.2f} s")
        first = pool.parse(src, out / "p.parquet", fmt="csv", dataset="probe",
                           contract_yaml=None, contract_version=None)
        assert first.ok and first.report and first.report["passed"], first.message
        contract = first.contract_yaml

        def infer() -> None:
            r = pool.parse(src, out / "p.parquet", fmt="csv", dataset="probe",
                           contract_yaml=None, contract_version=None)
            assert r.ok, r.message

        def given() -> None:
            r = pool.parse(src, out / "p.parquet", fmt="csv", dataset="probe",
                           contract_yaml=contract, contract_version=1)
            assert r.ok and r.report and r.report["passed"], r.message

        duck()  # warm the page cache and DuckDB's own start-up
        for _ in range(args.repeat):
            times["duckdb_copy"].append(timed(duck))
            times["parse_infer"].append(timed(infer))
            times["parse_contract"].append(timed(given))
            times["sha256"].append(timed(sha))

    base = statistics.median(times["duckdb_copy"])
    for name, values in times.items():
        med = statistics.median(values)
        runs = " ".join(f"{v:.2f}" for v in values)
        print(f"{name:15s} median {med:.3f} s  ({med / base:.2f}x duckdb)   runs: {runs}")


if __name__ == "__main__":
    main()
