"""Drift at Evidently's breadth: our auto-selected tests against Evidently's DataDriftPreset.

Mixed frames, ``--rows`` x 20 columns: 12 numeric (floats, one with 4 distinct values, one
integer with 40) and 8 categorical (strings with 2-12 values, one integer with 7 values,
which both sides infer as categorical). Seven columns are shifted (means, a scale, shares of
categories, a rare value grown common); the rest are drawn from the same distributions.

Each side runs in its own process on the same Parquet files, so peak memory is each one's
own (``ru_maxrss`` after the run minus the resident size once the frames are in memory):

- ours: :func:`appliance.monitor.selection.feature_tests` on the polars frames (kind
  inference, Evidently's automatic choice, the tests, Bonferroni over p-value tests);
  the multivariate detector is timed apart (Evidently's preset has none);
- Evidently 0.7: ``Report([DataDriftPreset()]).run(current, reference)`` on pandas frames
  (the conversion is not timed), its own automatic choice per column.

One warm-up each on 2,000 rows (imports), then the median of ``--repeat`` runs. Printed: times,
ratio, peak memory, per column the test each picked and the score, and whether the drifted
column sets are identical. Target: >= 5x faster, the same drifted columns.

    nice -n 10 /work/benchvenv/bin/python bench/drift_breadth.py --rows 100000
    nice -n 10 /work/benchvenv/bin/python bench/drift_breadth.py --rows 1000000 --repeat 1
    nice -n 10 /work/benchvenv/bin/python bench/drift_breadth.py --rows 1000 --correction none

(run with PYTHONPATH=<worktree> so ``appliance`` is this tree's.)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

NUMERIC = [f"n{i:02d}" for i in range(12)]
CATEGORICAL = [f"c{i:02d}" for i in range(8)]
SHIFTED = {"n00", "n01", "n02", "n10", "c00", "c01", "c07"}


def frames(rows: int, seed: int = 0) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(seed)

    def side(current: bool) -> pl.DataFrame:
        cols: dict[str, Any] = {}
        for i, name in enumerate(NUMERIC[:10]):
            loc, scale = float(i), 1.0 + i / 10
            if current and name in ("n00", "n01"):
                loc += 0.5 * scale  # mean shift of half a standard deviation
            if current and name == "n02":
                scale *= 1.8  # a change of scale
            cols[name] = rng.normal(loc, scale, rows)
        p4 = [.1, .2, .3, .4] if current else [.25, .25, .25, .25]  # n10: 4 distinct floats
        cols["n10"] = rng.choice([0.0, 1.0, 2.0, 3.0], rows, p=p4)
        cols["n11"] = rng.integers(18, 58, rows)  # 40 distinct integers: numerical
        levels = [f"v{k}" for k in range(12)]
        p0 = np.array([.3, .2, .2, .1, .1, .1]) if not current else \
            np.array([.1, .1, .2, .2, .2, .2])
        cols["c00"] = rng.choice(levels[:6], rows, p=p0)
        cols["c01"] = rng.choice(["no", "yes"], rows, p=[.5, .5] if current else [.8, .2])
        for k, name in enumerate(CATEGORICAL[2:7], start=2):
            n = 2 + k
            cols[name] = rng.choice(levels[:n], rows)
        p7 = np.r_[[0.4] if current else [0.01], np.full(6, (0.6 if current else 0.99) / 6)]
        cols["c07"] = rng.choice(np.arange(7), rows, p=p7)  # 7 integers: categorical
        return pl.DataFrame(cols)

    return side(False), side(True)


def _rss_kb() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() // 1024


def run_ours(ref: pl.DataFrame, cur: pl.DataFrame, repeat: int,
             correction: str = "bonferroni") -> dict[str, Any]:
    from appliance.monitor.multivariate import multivariate_drift
    from appliance.monitor.selection import column_kind, feature_tests

    def once(r: pl.DataFrame, c: pl.DataFrame) -> list[Any]:
        kinds = {col: column_kind(r[col]) for col in r.columns}
        return feature_tests(r, c, kinds, p_val=0.05, correction=correction)

    once(ref.head(2000), cur.head(2000))  # warm-up: imports
    base = _rss_kb()
    times, out = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = once(ref, cur)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    kinds = {col: column_kind(ref[col]) for col in ref.columns}
    multivariate_drift(ref.head(500), cur.head(500), kinds, p_val=0.05)  # warm-up: imports
    t0 = time.perf_counter()
    multi = multivariate_drift(ref, cur, kinds, p_val=0.05)
    multi_s = time.perf_counter() - t0
    return {"times": times, "peak_mb": peak / 1024,
            "columns": {f.column: {"test": f.test, "score": f.p_value if f.p_value is not None
                                   else f.distance, "drift": f.drift} for f in out},
            "multivariate": {"seconds": multi_s, "auc": multi.auc, "p_value": multi.p_value,
                             "drift": multi.drift, "rows": multi.rows_reference}}


def evidently_columns(snapshot: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        method = str(config.get("method"))
        value, threshold = float(metric["value"]), float(config["threshold"])
        p_test = "p_value" in method or "Fisher" in method
        out[str(config["column"])] = {"test": method, "score": value,
                                      "drift": value < threshold if p_test else value >= threshold}
    return out


def run_evidently(ref: pl.DataFrame, cur: pl.DataFrame, repeat: int) -> dict[str, Any]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    ref_pd, cur_pd = ref.to_pandas(), cur.to_pandas()
    Report([DataDriftPreset()]).run(cur_pd.head(2000), ref_pd.head(2000))  # warm-up
    base = _rss_kb()
    times, snapshot = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        snapshot = Report([DataDriftPreset()]).run(cur_pd, ref_pd)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base
    return {"times": times, "peak_mb": peak / 1024, "columns": evidently_columns(snapshot)}


def child(side: str, data: Path, repeat: int, correction: str) -> None:
    ref, cur = pl.read_parquet(data / "ref.parquet"), pl.read_parquet(data / "cur.parquet")
    result = (run_ours(ref, cur, repeat, correction) if side == "ours"
              else run_evidently(ref, cur, repeat))
    print(json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--side", choices=["ours", "evidently"])
    parser.add_argument("--data", type=Path)
    parser.add_argument("--correction", default="bonferroni", choices=["bonferroni", "fdr", "none"],
                        help="ours, over p-value tests (only chosen at <= 1000 rows); Evidently "
                        "corrects nothing: 'none' compares like with like")
    args = parser.parse_args()
    if args.side:
        child(args.side, args.data, args.repeat, args.correction)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        ref, cur = frames(args.rows)
        ref.write_parquet(data / "ref.parquet")
        cur.write_parquet(data / "cur.parquet")
        results = {}
        for side in ("ours", "evidently"):
            out = subprocess.run([sys.executable, __file__, "--side", side, "--data", str(data),
                                  "--repeat", str(args.repeat), "--correction", args.correction],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr[-3000:])
                return 2
            results[side] = json.loads(out.stdout.strip().splitlines()[-1])
    ours, ev = results["ours"], results["evidently"]
    ours_s, ev_s = statistics.median(ours["times"]), statistics.median(ev["times"])
    print(f"rows {args.rows:,} x {len(NUMERIC) + len(CATEGORICAL)} columns "
          f"({len(NUMERIC)} numeric, {len(CATEGORICAL)} categorical), median of {args.repeat}")
    print(f"{'column':8} {'ours: test':16} {'score':>12} {'drift':>6}   "
          f"{'evidently: test':30} {'score':>12} {'drift':>6}")
    same_tests = True
    for col in NUMERIC + CATEGORICAL:
        o, e = ours["columns"][col], ev["columns"][col]
        print(f"{col:8} {o['test']:16} {o['score']:12.6g} {o['drift']!s:>6}   "
              f"{e['test']:30} {e['score']:12.6g} {e['drift']!s:>6}")
        same_tests &= abs(o["score"] - e["score"]) <= 1e-9 * max(1.0, abs(e["score"]))
    drifted_o = {c for c, v in ours["columns"].items() if v["drift"]}
    drifted_e = {c for c, v in ev["columns"].items() if v["drift"]}
    print(f"ours (auto-selected tests, per column): {ours_s:.3f} s "
          f"{[round(t, 3) for t in ours['times']]}, peak +{ours['peak_mb']:.0f} MB")
    print(f"evidently DataDriftPreset:              {ev_s:.3f} s "
          f"{[round(t, 3) for t in ev['times']]}, peak +{ev['peak_mb']:.0f} MB")
    print(f"ratio: {ev_s / ours_s:.1f}x faster (target >= 5x)")
    m = ours["multivariate"]
    print(f"ours, multivariate detector ({m['rows']} rows a side, not in Evidently's preset): "
          f"{m['seconds']:.2f} s, AUC {m['auc']:.3f}, p {m['p_value']:.3g}, drift {m['drift']}")
    print(f"drifted, ours: {sorted(drifted_o)}; evidently: {sorted(drifted_e)}; expected: "
          f"{sorted(SHIFTED)}; identical: {drifted_o == drifted_e}; "
          f"scores equal (1e-9): {same_tests}")
    return 0 if drifted_o == drifted_e == SHIFTED and ev_s / ours_s >= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
