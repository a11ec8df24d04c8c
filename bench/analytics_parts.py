"""Scale-out analytics: the prediction log as Parquet parts read by DuckDB, against the same
queries in PostgreSQL and in the embedded DuckDB table (issue 13 §2).

Not a test. Run it once (pgserver is in the test extra):

    .venv/bin/python bench/analytics_parts.py              # --predictions 100000 for a look

Writes PREDICTIONS predictions of one model over two days (latencies, two versions,
a few canary rows) and LABELS labels for some of them, with the same seed, three ways:
the embedded DuckDB store's tables, a PostgreSQL 16 (pgserver, `appliance migrate`d;
rows by the store's COPY append) and Parquet parts in an object store folder (the
parts writer, a part per 100,000 rows, then the leader's compaction). Then times,
warm, the median of CALLS runs of the store's own queries through ``store.analytics()``:

- latency percentiles per hour (``traffic.latency``, bucket 3,600 s): the target;
- the labelled performance join (``predictions.performance``).

Prints each median, the ratios to the parts reader, and the peak memory (VmHWM) of
each phase (reset between phases through /proc/self/clear_refs).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(add_completion=False)
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _reset_peak() -> None:
    with contextlib.suppress(OSError):  # not Linux: the peak is the process's
        Path("/proc/self/clear_refs").write_text("5")


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def batches(predictions: int, labels: int, seed: int, chunk: int = 100_000
            ) -> tuple[list[Any], list[Any]]:
    """The log and the labels as Arrow tables of ``chunk`` rows (the tables' columns)."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)
    ts = pa.timestamp("us", tz="UTC")
    span_us = 2 * 24 * 3600 * 1_000_000
    preds, labs = [], []
    for lo in range(0, predictions, chunk):
        n = min(chunk, predictions - lo)
        ids = [f"r{i}" for i in range(lo, lo + n)]
        at = np.sort(rng.integers(0, span_us, n)) + int(START.timestamp() * 1_000_000)
        yes = rng.random(n) < 0.4
        preds.append(pa.table({
            "request_id": pa.array(ids, pa.string()),
            "model": pa.array(["m"] * n, pa.string()),
            "version": pa.array(rng.integers(1, 3, n).astype("int32")),
            "inputs": pa.array([f'{{"x": {i % 997}}}' for i in range(lo, lo + n)], pa.string()),
            "prediction": pa.array(np.where(yes, '"yes"', '"no"').tolist(), pa.string()),
            "probabilities": pa.array([None] * n, pa.string()),
            "latency_ms": pa.array(rng.lognormal(0.5, 0.6, n)),
            "created_at": pa.array(at, ts),
            "role": pa.array(np.where(rng.random(n) < 0.05, "canary", "primary").tolist(),
                             pa.string()),
            "outlier": pa.array([None] * n, pa.bool_()),
            "outlier_score": pa.array([None] * n, pa.float64()),
        }))
    step = max(1, predictions // max(labels, 1))
    picked = list(range(0, predictions, step))[:labels]
    for lo in range(0, len(picked), chunk):
        part = picked[lo:lo + chunk]
        n = len(part)
        labs.append(pa.table({
            "request_id": pa.array([f"r{i}" for i in part], pa.string()),
            "model": pa.array(["m"] * n, pa.string()),
            "label": pa.array(np.where(rng.random(n) < 0.5, '"yes"', '"no"').tolist(),
                              pa.string()),
            "source": pa.array(["bench"] * n, pa.string()),
            "received_at": pa.array([START + dt.timedelta(days=2, hours=1)] * n, ts),
        }))
    return preds, labs


def fill_tables(store: Any, preds: list[Any], labs: list[Any]) -> None:
    from appliance.store import dialect

    for table, chunks in (("predictions", preds), ("labels", labs)):
        for batch in chunks:
            with store.write() as s:
                dialect.of(s).append(s, table, batch)


def timed(calls: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    out = fn()  # warm
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def measure(store: Any, calls: int) -> dict[str, Any]:
    from appliance.store import predictions as pq
    from appliance.store import traffic as tq

    since, until = START - dt.timedelta(hours=1), START + dt.timedelta(days=3)

    def latency() -> Any:
        with store.analytics() as s:
            return tq.latency(s, "m", since, until, 3600.0)

    def performance() -> Any:
        with store.analytics() as s:
            return pq.performance(s, "m", since)

    t_lat, rows = timed(calls, latency)
    t_perf, perf = timed(calls, performance)
    return {"latency": t_lat, "performance": t_perf, "hours": len(rows),
            "perf": [(v.version, v.predictions, v.labelled, round(v.accuracy or 0, 6))
                     for v in perf]}


@app.command()
def main(
    predictions: Annotated[int, typer.Option(help="Predictions to log.")] = 1_000_000,
    labels: Annotated[int, typer.Option(help="Labels to log.")] = 500_000,
    calls: Annotated[int, typer.Option(help="Timed calls per query.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Time latency-per-hour and the labelled join on the parts, PostgreSQL and DuckDB."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver warns that XDG_RUNTIME_DIR is unset
        import pgserver

    from appliance.objects import LocalObjectStore
    from appliance.store.db import Store, migrate
    from appliance.store.parts import PartsLog

    tmp = Path(tempfile.mkdtemp(prefix="appliance-bench-parts-"))
    tmp.chmod(0o755)  # as root, pgserver runs the server as its own system user
    results: dict[str, dict[str, Any]] = {}
    try:
        preds, labs = batches(predictions, labels, seed)
        print(f"{predictions:,} predictions, {labels:,} labels over two days")

        _reset_peak()
        t0 = time.perf_counter()
        duck = Store(tmp / "embedded.duckdb").open()
        fill_tables(duck, preds, labs)
        duck.checkpoint()
        print(f"embedded DuckDB: written in {time.perf_counter() - t0:.1f} s")
        results["embedded DuckDB table"] = {**measure(duck, calls), "peak_mb": _peak_mb()}
        duck.close()

        server = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
        url = str(server.get_uri("postgres")).replace("postgresql://", "postgresql+psycopg://", 1)
        migrate(tmp / "x.duckdb", tmp / "x.lock", url)
        _reset_peak()
        t0 = time.perf_counter()
        pg = Store(tmp / "x.duckdb", url=url).open()
        fill_tables(pg, preds, labs)
        pg.execute("ANALYZE")
        print(f"PostgreSQL: written in {time.perf_counter() - t0:.1f} s")
        results["PostgreSQL"] = {**measure(pg, calls), "peak_mb": _peak_mb()}

        _reset_peak()
        t0 = time.perf_counter()
        parts = PartsLog(LocalObjectStore(tmp / "objects"), tmp / "spool", host="bench",
                         roll_rows=100_000, roll_seconds=3600)
        pg.use_parts(parts)
        for table, chunks in (("predictions", preds), ("labels", labs)):
            for batch in chunks:
                parts.add(table, batch)
        parts.roll()
        n_parts = len(parts.objects.list("logs"))
        print(f"parts: {n_parts} written in {time.perf_counter() - t0:.1f} s")
        results[f"DuckDB over {n_parts} parts"] = {**measure(pg, calls), "peak_mb": _peak_mb()}
        assert pg.parts_reader is not None
        t0 = time.perf_counter()
        done = pg.parts_reader.compact(today=START.date() + dt.timedelta(days=5))
        print(f"compaction: {done.merged_parts} parts into {done.written_parts} "
              f"in {time.perf_counter() - t0:.1f} s")
        _reset_peak()
        results[f"DuckDB over {len(parts.objects.list('logs'))} parts, compacted"] = {
            **measure(pg, calls), "peak_mb": _peak_mb()}
        pg.close()
        server.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    answers = {name: (r["hours"], r["perf"]) for name, r in results.items()}
    if len({repr(a) for a in answers.values()}) != 1:
        print("ANSWERS DIFFER:", answers)
        sys.exit(1)
    ref = next(v for k, v in results.items() if k.endswith("compacted"))
    print(f"\nsame answers everywhere ({ref['hours']} hourly rows; per version "
          f"(version, predictions, labelled, accuracy): {ref['perf']})\n")
    print(f"{'store':38} {'latency/hour':>13} {'ratio':>6} {'perf join':>10} {'ratio':>6} "
          f"{'peak MB':>8}")
    for name, r in results.items():
        print(f"{name:38} {r['latency'] * 1000:10.0f} ms {r['latency'] / ref['latency']:6.1f} "
              f"{r['performance'] * 1000:7.0f} ms {r['performance'] / ref['performance']:6.1f} "
              f"{r['peak_mb']:8.0f}")


if __name__ == "__main__":
    app()
