"""Training on Dask vs the child process: the same job, the same data, in one run.

Two in-process appliances over fresh homes accept the same generated customers CSV
and train the same job file (XGBoost, a random search of ``--trials`` trials), one in
the trainer child process (no setting: the default), one on a 2-worker LocalCluster
(processes, 1 thread each; ``APPLIANCE_DASK_SCHEDULER``). Timed from submit to the
registered version, end to end: connecting, shipping the request, importing the
libraries in the worker (the first run of a cold worker pays it; ``--warm`` trains
once on the cluster before timing), the search, the fit, ONNX export and parity.
Peak memory: the largest and the summed RSS of this process's descendants (the
trainer child, or the Dask workers and nannies), sampled every 50 ms while training.

    python bench/train_dask.py [--rows 20000] [--trials 6] [--trees 200] [--warm]
"""

from __future__ import annotations

import argparse
import io
import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil

JOB = """\
name: churn
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: xgboost.XGBClassifier, params: {n_estimators: %(trees)d}}
split: {test_size: 0.25, seed: 7}
metric: roc_auc
search: {kind: random, n_iter: %(trials)d, params: {max_depth: [2, 3, 4, 5, 6, 7],
         learning_rate: [0.03, 0.1, 0.3]}}
"""


class PeakRss:
    """Peak RSS of this process's descendants, sampled on a thread."""

    def __init__(self) -> None:
        self.total = 0
        self.largest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.wait(0.05):
            sizes = []
            for p in me.children(recursive=True):
                try:
                    sizes.append(p.memory_info().rss)
                except psutil.Error:
                    continue
            self.total = max(self.total, sum(sizes))
            self.largest = max(self.largest, max(sizes, default=0))


def train(home: Path, csv: bytes, job: str, **settings: Any) -> dict[str, Any]:
    from appliance.config import Settings
    from appliance.domain.principal import SYSTEM
    from appliance.runtime import build
    from appliance.train.spec import parse_job

    app = build(Settings(home=home, admin_password="bench-password-123", **settings))
    try:
        app.ingest.ingest_stream(io.BytesIO(csv), file_name="c.csv", dataset="customers",
                                 who=SYSTEM)
        with PeakRss() as peak:
            started = time.perf_counter()
            run = app.training.submit(parse_job(job), by=SYSTEM)
            detail = app.training.wait(str(run.id), timeout=3600)
            seconds = time.perf_counter() - started
        assert detail.status.value == "succeeded", detail.error
        return {"seconds": seconds, "auc": detail.metrics["roc_auc"],
                "largest_mb": peak.largest / 2**20, "total_mb": peak.total / 2**20,
                "onnx": app.registry.onnx_bytes("churn", 1)}
    finally:
        app.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--trees", type=int, default=200)
    parser.add_argument("--warm", action="store_true",
                        help="train once on the cluster before timing (warm worker imports)")
    args = parser.parse_args()

    from distributed import LocalCluster

    from appliance.demo import make_customers

    csv = make_customers(args.rows, seed=3).write_csv().encode()
    job = JOB % {"trees": args.trees, "trials": args.trials}
    print(f"{args.rows:,} rows, XGBoost {args.trees} trees, random search of {args.trials} "
          f"trials; load average {psutil.getloadavg()[0]:.1f} on {psutil.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-train-dask-") as tmp:
        child = train(Path(tmp) / "child", csv, job)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address=None, silence_logs=logging.ERROR) as cluster:
            if args.warm:
                train(Path(tmp) / "warm", csv, job, dask_scheduler=cluster.scheduler_address)
            dask = train(Path(tmp) / "dask", csv, job, dask_scheduler=cluster.scheduler_address)
    print(f"{'path':<28}{'seconds':>9}{'roc_auc':>10}{'largest RSS':>13}{'all RSS':>10}")
    for name, r in (("child process", child), ("Dask LocalCluster (2x1)", dask)):
        print(f"{name:<28}{r['seconds']:>9.2f}{r['auc']:>10.4f}{r['largest_mb']:>10.0f} MB"
              f"{r['total_mb']:>7.0f} MB")
    print(f"Dask / child time: {dask['seconds'] / child['seconds']:.2f}x; "
          f"same ONNX bytes: {dask['onnx'] == child['onnx']}; "
          f"load average now {psutil.getloadavg()[0]:.1f}")


if __name__ == "__main__":   # LocalCluster's worker processes re-import this module
    main()
