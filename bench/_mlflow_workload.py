"""The MLflow-client workload of bench/tracking_mlflow.py, run in a fresh interpreter
against one tracking server: ``python _mlflow_workload.py <url> <tag> <params> <batched>
<single> [--no-check]``. Prints one JSON line of phase times (seconds) and this client's peak RSS."""

from __future__ import annotations

import json
import resource
import sys
import time


def main(url: str, tag: str, params: int, batched: int, single: int,
         check: bool = True) -> None:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    mlflow.set_tracking_uri(url)
    client = MlflowClient()
    exp = client.get_experiment_by_name("bench")
    exp_id = exp.experiment_id if exp else client.create_experiment("bench")
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    run = client.create_run(exp_id, run_name=f"bench-{tag}")
    rid = run.info.run_id
    for i in range(params):
        client.log_param(rid, f"p{i}", i)
    t1 = time.perf_counter()
    now = int(time.time() * 1000)
    # the client splits a batch into requests of at most 1,000 metrics (its own limit)
    client.log_batch(rid, metrics=[Metric("batched", i / batched, now, i) for i in range(batched)])
    t2 = time.perf_counter()
    for i in range(single):
        client.log_metric(rid, "single", i / single, step=i, timestamp=now)
    t3 = time.perf_counter()
    client.set_terminated(rid)
    got = (len(client.get_metric_history(rid, "batched")),
           len(client.get_metric_history(rid, "single")), len(client.get_run(rid).data.params))
    t4 = time.perf_counter()
    if check:  # not against the no-op floor server, which keeps nothing
        assert got == (batched, single, params), got
    times = {"params": t1 - t0, "batched": t2 - t1, "single": t3 - t2, "end_read": t4 - t3,
             "total": t4 - t0,
             "client_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    print("RESULT " + json.dumps(times))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]),
         check=sys.argv[6:] != ["--no-check"])
