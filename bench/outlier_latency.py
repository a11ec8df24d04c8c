"""Outlier scoring's cost on single-row predict latency (issue 14: at most 10% added).

Not a test. Run it once:

    PYTHONPATH=$PWD .venv/bin/python bench/outlier_latency.py       # --requests 4000

Data: make_customers (the demo's churn table: 4 numeric and 3 text columns), ROWS
rows. One model trained by the appliance's own training core
(``appliance.train.child.run.run_job``, what the training child runs; ``--kind``,
default LogisticRegression, the cheapest model to score, so the detector's share of
the latency is the largest), which writes ``model.onnx`` and ``outliers.onnx``;
both are registered in an in-process appliance (a DuckDB file in a temporary home)
as training registers them.

Contenders, the same model version in the same process, predicted through
``PredictionService.predict`` (request checks, onnxruntime, the prediction log, the
metrics: the whole serving path except HTTP, so the detector's share is the largest
it can be; over HTTP the same microseconds weigh less), with the prediction log's
writer thread running as in a server:

(a) with: the version as loaded: every row is logged with its request's pending
    outlier check, which the log's writer thread resolves in batches (one detector
    run per batch) before it stores them;
(b) without: the very same loaded session with its detector taken away.

Single-row requests one after another, cycled over holdout rows: WARMUP untimed
each, then REQUESTS timed each, split into ROUNDS interleaved rounds (with,
without, with, ...) so that load from elsewhere on a shared machine falls on both
alike. Prints p50/p99/mean (us) pooled and the median over rounds of the per-round
p50 ratio, the detector's own onnxruntime run on one row (p50: what scoring on the
request path would add), the writer's batched cost a row, and the peak resident
memory.
``--strict`` exits 1 when the p50 ratio is over 1.10.
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROWS = 20_000
WARMUP = 300
REQUESTS = 20_000
ROUNDS = 10
TARGET = 1.10


def train(home: Path, kind: str) -> tuple[bytes, bytes, dict[str, Any], list[dict[str, Any]]]:
    from appliance.demo import make_customers
    from appliance.train.child.run import run_job

    frame = make_customers(ROWS, seed=4)
    data = home / "customers.parquet"
    frame.write_parquet(data)
    out = home / "out"
    result = run_job({"job": {"name": "bench", "dataset": "customers", "target": "churned",
                              "features": {"exclude": ["customer_id"]},
                              "model": {"kind": kind}, "split": {"test_size": 0.2, "seed": 7}},
                      "parquet_path": str(data), "out_dir": str(out)})
    assert result["ok"], result["error"]
    assert result["outliers"]["fitted"], result["outliers"]
    rows = make_customers(2000, seed=9).drop("churned", "customer_id").to_dicts()
    return ((out / "model.onnx").read_bytes(), (out / "outliers.onnx").read_bytes(),
            result, rows)


def timed(predict: Any, rows: list[dict[str, Any]], n: int, start: int) -> list[float]:
    out = []
    for i in range(n):
        row = [rows[(start + i) % len(rows)]]
        t = time.perf_counter()
        predict(row)
        out.append(time.perf_counter() - t)
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=REQUESTS)
    ap.add_argument("--rounds", type=int, default=ROUNDS)
    ap.add_argument("--kind", default="LogisticRegression")
    ap.add_argument("--strict", action="store_true")
    args = ap.parse_args()

    from appliance.config import Settings
    from appliance.runtime import build
    from appliance.serve.sessions import LoadedModel

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        print(f"training {args.kind} on {ROWS:,} customers (model + outlier detector)...")
        model, detector, result, rows = train(home, args.kind)
        print(f"  detector: {len(detector) / 1e6:.2f} MB ONNX, holdout flag rate "
              f"{result['outliers']['holdout_rate']:.3%}, parity max diff "
              f"{result['outliers']['parity']['max_abs_diff']:.2g}")
        app = build(Settings(home=home / "home"))
        try:
            app.registry.register(model="bench", onnx_bytes=model, flavor="sklearn",
                                  task="classification", by="bench", outlier_onnx=detector,
                                  facts={"outliers": result["outliers"]})
            app.registry.set_alias("bench", "champion", 1, reason="bench", by="bench",
                                   force=True)
            app.serving.log.start()
            sessions = app.serving.sessions
            with_detector: LoadedModel = sessions.resolve("bench")
            assert with_detector.detector is not None
            without = dataclasses.replace(with_detector, detector=None)
            key = ("bench", with_detector.version)

            def predict(row: list[dict[str, Any]]) -> Any:
                return app.serving.predict("bench", row)

            def use(loaded: LoadedModel) -> None:
                sessions._sessions[key] = loaded  # the same version, with or without

            for loaded in (with_detector, without):
                use(loaded)
                timed(predict, rows, WARMUP, 0)
            per_round = args.requests // args.rounds
            times: dict[str, list[float]] = {"with": [], "without": []}
            ratios = []
            for r in range(args.rounds):
                p50 = {}
                for name, loaded in (("with", with_detector), ("without", without)):
                    use(loaded)
                    t = timed(predict, rows, per_round, r * per_round)
                    times[name] += t
                    p50[name] = statistics.median(t)
                ratios.append(p50["with"] / p50["without"])
            use(with_detector)
            from appliance.serve.feeds import feeds_for
            from appliance.serve.outliercheck import PendingCheck, resolve

            feeds, _, _ = feeds_for(with_detector, [rows[0]])
            own = []
            for _ in range(2000):
                t = time.perf_counter()
                with_detector.detector.run(None, feeds)
                own.append(time.perf_counter() - t)
            at = time.time()
            batch = [("r", "bench", 1, {}, 0, None, 0.1, at, "primary",
                      PendingCheck("bench", 1, with_detector.detector,
                                   feeds_for(with_detector, [row])[0]), 0)
                     for row in rows[:1000]]
            writer = []
            for _ in range(5):
                t = time.perf_counter()
                resolve(batch)
                writer.append(time.perf_counter() - t)
            app.serving.log.flush()
        finally:
            app.close()
    print(f"\nsingle-row PredictionService.predict, {args.requests:,} requests each, "
          f"{args.rounds} interleaved rounds")
    print(f"{'':>10} {'p50 us':>8} {'p99 us':>8} {'mean us':>8}")
    for name, t in times.items():
        print(f"{name:>10} {pct(t, 0.5) * 1e6:8.1f} {pct(t, 0.99) * 1e6:8.1f} "
              f"{statistics.fmean(t) * 1e6:8.1f}")
    ratio = statistics.median(ratios)
    pooled = pct(times["with"], 0.5) / pct(times["without"], 0.5)
    p99 = pct(times["with"], 0.99) / pct(times["without"], 0.99)
    print(f"with/without p50: {ratio:.3f} (median of rounds; pooled {pooled:.3f}); "
          f"p99 {p99:.3f}; target <= {TARGET:.2f}")
    print(f"the detector's own onnxruntime run: p50 {statistics.median(own) * 1e6:.1f} us a "
          f"single row (what scoring on the request path would add); the log writer's "
          f"batched check: {statistics.median(writer) * 1e6 / 1000:.1f} us a row (1,000 rows "
          "of 1,000 single-row requests)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak:.0f} MB")
    if args.strict and ratio > TARGET:
        print(f"MISSED: outlier scoring adds {ratio - 1:.1%} (target {TARGET - 1:.0%})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
