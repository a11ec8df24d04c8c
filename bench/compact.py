"""Compacting a store after an erasure: ``appliance compact`` against a bare copy.

``python bench/compact.py [--predictions 1000000]`` logs PREDICTIONS prediction-log
rows (with their labels) into a fresh home, erases one subject's 1% of them through
the erasure service (and one row of a small dataset version), stops the app, then times in the same run:

- ``compact`` (our path: audit chain verified before and after, the copy, rows per
  table and schema objects checked, the atomic swap, the audit event);
- the floor: a bare DuckDB ``ATTACH`` + ``COPY FROM DATABASE`` of the same file into
  a new one, with no check.

Prints the sizes, the ratio, whether the erased value's bytes are in the file before
and after, and this process's peak RSS.
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

SUBJECT = "subject-bench-4b1d" + "x7Qp" * 8


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--predictions", type=int, default=1_000_000)
    args = ap.parse_args()

    import duckdb

    from appliance.backup.compact import compact
    from appliance.config import Settings
    from appliance.domain.principal import SYSTEM, Principal
    from appliance.domain.privacy import Condition, ErasureRequest
    from appliance.domain.roles import Role
    from appliance.runtime import build
    from appliance.store import predictions as pq

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(home=Path(tmp) / "home", admin_password="bench-password-123")
        app = build(settings)
        csv = "customer_id,n\n" + "".join(f"c{i},{i}\n" for i in range(1, 50))
        app.ingest.ingest_stream(io.BytesIO((csv + f"{SUBJECT},0\n").encode()),
                                 file_name="customers.csv", dataset="customers", who=SYSTEM)
        app.ingest._summaries.submit(lambda: None).result()
        at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
        t0 = time.perf_counter()
        step = 100_000
        for start in range(0, args.predictions, step):
            ids = range(start, min(start + step, args.predictions))
            with app.store.write() as s:
                pq.append_predictions(s, [
                    (f"r{i}", "churn", 1, {"customer_id": SUBJECT if i % 100 == 0 else f"c{i}",
                                           "n": i, "x": i * 0.5}, i % 2, None, 1.0, at, "primary")
                    for i in ids])
                pq.append_labels(s, "churn", [(f"r{i}", i % 2) for i in ids], "api", at)
        print(f"logged {args.predictions:,} predictions + labels in "
              f"{time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        report = app.erasure.erase(ErasureRequest(
            where=[Condition(column="customer_id", value=SUBJECT)]),
            by=Principal(username="admin", role=Role.admin))
        print(f"erased {report.predictions_removed:,} predictions, {report.labels_removed:,} "
              f"labels in {time.perf_counter() - t0:.1f} s")
        app.close()
        db = settings.db_path
        held = SUBJECT.encode() in db.read_bytes()

        t0 = time.perf_counter()
        bare = Path(tmp) / "bare.duckdb"
        con = duckdb.connect(":memory:")
        con.execute(f"ATTACH '{db}' AS src (READ_ONLY); ATTACH '{bare}' AS dst; "
                    "COPY FROM DATABASE src TO dst; DETACH dst; DETACH src")
        con.close()
        t_bare = time.perf_counter() - t0

        out = compact(settings, actor="bench")
        after = SUBJECT.encode() in db.read_bytes()
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"store {out.bytes_before / 2**20:.1f} MB -> {out.bytes_after / 2**20:.1f} MB "
              f"({len(out.tables)} tables, {out.rows:,} rows); value verbatim in the file before: "
              f"{held}, after: {after}")
        print(f"compact {out.seconds:.2f} s; bare COPY FROM DATABASE {t_bare:.2f} s "
              f"(bare file {bare.stat().st_size / 2**20:.1f} MB); ratio "
              f"{out.seconds / t_bare:.2f}x")
        print(f"peak RSS of this process: {peak_mb:.0f} MB")
        if after:
            sys.exit(1)


if __name__ == "__main__":
    main()
