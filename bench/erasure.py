"""Erasure of one key from a big dataset version: our whole path against bare rewrites.

``python bench/erasure.py [--rows 1000000]`` ingests one CSV of ROWS x 8 columns
(through the real ingest: contract inferred, summary) into a fresh home, logs
10,000 predictions, then times in the same run:

- ``appliance erase --dry-run`` (find and count) and the erasure itself
  (rewrite, re-validate, summarise, delete files, predictions, labels, audit);
- the floor: DuckDB ``COPY (SELECT * FROM read_parquet(...) WHERE ...) TO`` on the
  same Parquet file, and polars ``scan_parquet().filter().sink_parquet()``.

Prints the ratios and this process's peak RSS (the erasure runs in-process, as in
the server).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import resource
import sys
import tempfile
import time
from pathlib import Path

KEY = "subject-424242"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()

    import duckdb
    import polars as pl

    from appliance.config import Settings
    from appliance.domain.principal import SYSTEM, Principal
    from appliance.domain.privacy import Condition, ErasureRequest
    from appliance.domain.roles import Role
    from appliance.runtime import build
    from appliance.store import predictions as pq

    n = args.rows
    every = max(1, n // 10)  # ten rows of the subject
    frame = pl.DataFrame({
        "customer_id": [KEY if i % every == 7 else f"c{i}" for i in range(n)],
        "age": [18 + i % 60 for i in range(n)],
        "income": [1000.0 + (i * 37) % 9000 for i in range(n)],
        "region": [("north", "south", "east", "west")[i % 4] for i in range(n)],
        "tenure": [i % 120 for i in range(n)],
        "score": [(i * 13) % 1000 / 1000 for i in range(n)],
        "plan": [("basic", "plus", "pro")[i % 3] for i in range(n)],
        "churned": [i % 7 == 0 for i in range(n)],
    })
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        app = build(Settings(home=home))
        try:
            buf = io.BytesIO()
            frame.write_csv(buf)
            t = time.perf_counter()
            app.ingest.ingest_stream(io.BytesIO(buf.getvalue()), file_name="big.csv",
                                     dataset="customers", who=SYSTEM)
            print(f"ingested {n:,} rows x 8 in {time.perf_counter() - t:.2f} s")
            at = dt.datetime.now(dt.UTC)
            with app.store.write() as s:
                pq.append_predictions(s, [(f"r{i}", "churn", 1,
                                           {"customer_id": KEY if i % 1000 == 0 else f"c{i}",
                                            "age": 30}, 1, None, 1.0, at, "primary")
                                          for i in range(10_000)])
            src = app.datasets.parquet_path("customers", 1)
            ref_dir = Path(tmp) / "ref"
            ref_dir.mkdir()

            t = time.perf_counter()
            con = duckdb.connect()
            con.execute("COPY (SELECT * FROM read_parquet(?) WHERE (customer_id = ?) IS NOT TRUE) "
                        "TO ? (FORMAT parquet, COMPRESSION snappy)",
                        [str(src), KEY, str(ref_dir / "duck.parquet")])
            con.close()
            t_duck = time.perf_counter() - t

            t = time.perf_counter()
            (pl.scan_parquet(src).filter(pl.col("customer_id") != KEY)
             .sink_parquet(ref_dir / "polars.parquet"))
            t_polars = time.perf_counter() - t

            admin = Principal(username="admin", role=Role.admin)
            where = [Condition(column="customer_id", value=KEY)]
            t = time.perf_counter()
            dry = app.erasure.erase(ErasureRequest(where=where, dry_run=True), by=admin)
            t_dry = time.perf_counter() - t
            t = time.perf_counter()
            report = app.erasure.erase(ErasureRequest(where=where), by=admin)
            t_erase = time.perf_counter() - t
        finally:
            app.close()
    assert dry.versions[0].rows_removed == report.versions[0].rows_removed == 10
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows removed: {report.rows_removed}, predictions {report.predictions_removed}, "
          f"labels {report.labels_removed}")
    print(f"dry run (find + count):       {t_dry:7.2f} s")
    print(f"erasure (whole path):         {t_erase:7.2f} s")
    print(f"  DuckDB COPY filter (floor): {t_duck:7.2f} s   ratio {t_erase / t_duck:5.1f}x")
    print(f"  polars sink filter:         {t_polars:7.2f} s   ratio {t_erase / t_polars:5.1f}x")
    print(f"peak RSS of this process: {peak_mb:.0f} MB")


if __name__ == "__main__":
    sys.exit(main())
