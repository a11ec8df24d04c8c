"""Training past memory: XGBoost from Parquet batches vs in-memory training on a sample.

A generated dataset version (20 numeric columns with missing values, 2 categorical,
a binary label) whose raw values (rows x columns x 8 bytes) are ``--times`` (3) times
the trainer cap ``--cap-mb``. Each run is the trainer's own ``run_job`` in a fresh
child process (one thread, as the trainer child runs), timed end to end (read, fit,
evaluate, ONNX export, parity), its peak RSS read from the child:

- ``external``: ``data.mode: auto`` under the cap: the rule picks external memory;
- ``sample``: ``data.mode: sample``: in memory on the most rows that fit the cap;
- ``memory (all rows)``: ``data.mode: memory``, every row in memory regardless of the
  cap (skip with ``--no-full``): what the cap protects against;
- ``imports only``: the child's libraries and nothing else, the floor of any RSS.

AUC: each run's own holdout, and every exported ONNX model on the same fresh 100,000
rows (same generator, another seed). The cap is not applied as RLIMIT_AS here (the
libraries alone reserve more address space than a small cap): peak RSS shows what
each path holds.

    python bench/train_external.py [--cap-mb 64] [--times 3] [--trees 100] [--no-full]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

NUMERIC = 20
CHUNK = 200_000
FRESH_ROWS = 100_000


def frame(rows: int, seed: int) -> Any:
    import polars as pl

    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, size=(rows, NUMERIC))
    region = rng.choice(["north", "south", "east", "west", "centre"], rows)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    logit = (x[:, 0] - 0.8 * x[:, 1] + 0.5 * x[:, 2] * x[:, 3] + 0.6 * np.sin(2 * x[:, 4])
             + 0.7 * (region == "north") - 0.5 * (plan == "basic"))
    label = (logit + rng.logistic(0.0, 1.0, rows) > 0).astype(np.int64)
    x[rng.random(size=x.shape) < 0.02] = np.nan
    data: dict[str, Any] = {f"x{i:02d}": x[:, i] for i in range(NUMERIC)}
    data.update(region=region.tolist(), plan=plan.tolist(), label=label)
    return pl.DataFrame(data)


def write_dataset(path: Path, rows: int) -> None:
    """``rows`` rows in chunks, so the generator never holds the whole version."""
    import pyarrow.parquet as pq

    writer = None
    for i, start in enumerate(range(0, rows, CHUNK)):
        table = frame(min(CHUNK, rows - start), seed=1000 + i).to_arrow()
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    assert writer is not None
    writer.close()


def child(args: argparse.Namespace) -> None:
    """One measured run, in this process; prints one JSON line."""
    started = time.perf_counter()
    if args.child == "imports":
        import onnxruntime  # noqa: F401
        import polars  # noqa: F401
        import skl2onnx  # noqa: F401
        import sklearn.pipeline  # noqa: F401
        import xgboost  # noqa: F401
        result: dict[str, Any] = {"ok": True}
    else:
        from appliance.train.child.run import run_job

        data: dict[str, Any] = {"mode": args.child}
        if args.child == "sample":
            data["sample_rows"] = args.sample_rows
        job = {"name": "bench", "dataset": "bench", "target": "label",
               "model": {"kind": "xgboost.XGBClassifier",
                         "params": {"n_estimators": args.trees, "max_depth": 6}},
               "split": {"test_size": 0.2, "seed": 7}, "data": data, "metric": "roc_auc"}
        result = run_job({"job": job, "parquet_path": args.parquet, "out_dir": args.out,
                          "memory_mb": args.cap_mb})
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"ok": result["ok"], "error": result.get("error"),
                      "seconds": time.perf_counter() - started, "peak_mb": peak_mb,
                      "auc": (result.get("metrics") or {}).get("roc_auc"),
                      "parity": (result.get("parity") or {}).get("passed"),
                      "rows_train": result.get("rows_train"), "data": result.get("data"),
                      "classes": result.get("classes")}))


def measure(mode: str, parquet: Path, out: Path, args: argparse.Namespace,
            sample_rows: int) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, __file__, "--child", mode, "--parquet", str(parquet), "--out", str(out),
           "--cap-mb", str(args.cap_mb), "--trees", str(args.trees),
           "--sample-rows", str(sample_rows)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{mode} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    measured: dict[str, Any] = json.loads(lines[-1])
    if not measured["ok"]:
        raise RuntimeError(f"{mode}: {measured['error']}")
    return measured


def fresh_auc(onnx: Path, fresh: Any, classes: list[Any]) -> float:
    from appliance.train.child.champion import score_onnx

    y = np.searchsorted(np.asarray(classes), fresh["label"].to_numpy())
    value, error = score_onnx(onnx, fresh, y, task="classification", classes=classes,
                              metric="roc_auc")
    if value is None:
        raise RuntimeError(error)
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cap-mb", type=int, default=64)
    parser.add_argument("--times", type=float, default=3.0)
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--no-full", action="store_true")
    parser.add_argument("--child", default=None)
    parser.add_argument("--parquet", default="")
    parser.add_argument("--out", default="")
    parser.add_argument("--sample-rows", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    from appliance.train.child import sizing

    columns = NUMERIC + 3
    rows = int(args.times * args.cap_mb * 2**20 / (columns * sizing.BYTES_PER_VALUE))
    sample_rows = sizing.rows_that_fit(args.cap_mb, columns)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        parquet = root / "version.parquet"
        t0 = time.perf_counter()
        write_dataset(parquet, rows)
        print(f"dataset: {rows:,} rows x {columns} columns = {rows * columns * 8 / 2**20:,.0f} MB "
              f"of values ({args.times:g}x the {args.cap_mb} MB cap; in-memory estimate "
              f"{sizing.estimate_mb(rows, columns):,.0f} MB), Parquet "
              f"{parquet.stat().st_size / 2**20:,.0f} MB, written in {time.perf_counter() - t0:.1f} s")
        fresh = frame(FRESH_ROWS, seed=99)
        modes = [("imports", "imports only"), ("auto", "external (auto rule)"),
                 ("sample", f"in memory, sample of {sample_rows:,}")]
        if not args.no_full:
            modes.append(("memory", f"in memory, all {rows:,} rows"))
        table = []
        for mode, label in modes:
            out = root / mode
            print(f"  running {label} ...", flush=True)
            r = measure(mode, parquet, out, args, sample_rows)
            if mode != "imports":
                r["fresh_auc"] = fresh_auc(out / "model.onnx", fresh, r["classes"])
                r["chosen"] = r["data"]["mode"]
            table.append((label, r))
    print()
    print(f"{'run':<34} {'mode':>9} {'train rows':>11} {'time s':>8} {'peak RSS MB':>12} "
          f"{'AUC holdout':>12} {'AUC fresh':>10} {'parity':>7}")
    for label, r in table:
        if "chosen" not in r:
            print(f"{label:<34} {'-':>9} {'-':>11} {r['seconds']:>8.1f} {r['peak_mb']:>12.0f}")
            continue
        print(f"{label:<34} {r['chosen']:>9} {r['rows_train']:>11,} {r['seconds']:>8.1f} "
              f"{r['peak_mb']:>12.0f} {r['auc']:>12.4f} {r['fresh_auc']:>10.4f} "
              f"{r['parity']!s:>7}")
    ext = next(r for label, r in table if r.get("chosen") == "external")
    sam = next(r for label, r in table if r.get("chosen") == "sample")
    print(f"\nexternal vs sample: time {ext['seconds'] / sam['seconds']:.1f}x, peak RSS "
          f"{ext['peak_mb'] / sam['peak_mb']:.2f}x, fresh AUC {ext['fresh_auc'] - sam['fresh_auc']:+.4f}")
    full = [r for label, r in table if r.get("chosen") == "memory"]
    if full:
        print(f"external vs all rows in memory: time {ext['seconds'] / full[0]['seconds']:.1f}x, "
              f"peak RSS {ext['peak_mb'] / full[0]['peak_mb']:.2f}x, "
              f"fresh AUC {ext['fresh_auc'] - full[0]['fresh_auc']:+.4f}")


if __name__ == "__main__":
    main()
