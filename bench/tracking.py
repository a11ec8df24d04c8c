"""Tracking benchmark: our client against a live server vs MLflow's client on SQLite.

Not a test. Install the peers, then run it once:

    scripts/install-wheel.sh .venv test,bench
    .venv/bin/python bench/tracking.py            # --repeats 5 for steadier medians

One run holds PARAMS params and POINTS metric points (KEYS keys, POINTS/KEYS
steps each), every one logged by its own call, as a training loop does:

(a) ours: ``ApplianceClient.start_run`` against a real ``appliance serve``
    process; ``log_param`` / ``log_metric`` one call at a time, then
    ``end()``. The clock stops when ``end()`` has returned (the last batch is
    committed) and ``GET /runs/{id}/metrics`` hands back all POINTS points.
(b) MLflow: ``mlflow.start_run`` on ``sqlite:///...``; ``mlflow.log_param`` /
    ``mlflow.log_metric`` one call at a time, ``mlflow.end_run()``, then
    ``MlflowClient.get_metric_history`` for every key returns all the points.

Both first do an untimed warm-up run (imports, schema creation, first
connections), then REPEATS timed runs in alternation. It prints the medians,
the throughput (logged values per second: params + points) and the ratio
MLflow time / ours (target >= 50). ``--strict`` exits 1 when it is missed.
"""

from __future__ import annotations

import logging
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from harness import running_server  # a sibling module, not a package
from rich.console import Console
from rich.table import Table

TARGET_RATIO = 50.0  # MLflow's time / ours must be at least this
PARAMS = 100
POINTS = 2000
KEYS = ("loss", "val_loss", "acc", "lr")

console = Console()
app = typer.Typer(add_completion=False)


# -- a real server ----------------------------------------------------------------


def _workload(points: int) -> list[tuple[str, float, int]]:
    per_key = points // len(KEYS)
    return [(key, 1.0 / (step + 1) + k, step) for step in range(per_key) for k, key in enumerate(KEYS)]


# -- (a) ours ---------------------------------------------------------------------


def run_ours(client: Any, tag: str, params: int, points: int) -> dict[str, float]:
    work = _workload(points)
    t0 = time.perf_counter()
    run = client.start_run(f"bench-{tag}", experiment="bench")
    for i in range(params):
        run.log_param(f"param_{i:03d}", i * 0.5)
    for key, value, _ in work:
        run.log_metric(key, value)  # steps count up per key on their own
    t1 = time.perf_counter()
    run.end()
    t2 = time.perf_counter()
    stored = client.run_metrics(run.id)
    t3 = time.perf_counter()
    if len(stored) != len(work):
        raise RuntimeError(f"ours: the server holds {len(stored)} points, expected {len(work)}")
    return {"total": t3 - t0, "log": t1 - t0, "end": t2 - t1, "read": t3 - t2}


# -- (b) MLflow ---------------------------------------------------------------------


def mlflow_setup(root: Path) -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no schema-creation chatter
    mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
    mlflow.set_experiment(experiment_id=mlflow.create_experiment(
        "bench", artifact_location=(root / "artifacts").as_uri()))
    return mlflow


def run_mlflow(mlflow: Any, tag: str, params: int, points: int) -> dict[str, float]:
    from mlflow.tracking import MlflowClient

    work = _workload(points)
    t0 = time.perf_counter()
    active = mlflow.start_run(run_name=f"bench-{tag}")
    for i in range(params):
        mlflow.log_param(f"param_{i:03d}", i * 0.5)
    for key, value, step in work:
        mlflow.log_metric(key, value, step=step)
    t1 = time.perf_counter()
    mlflow.end_run()
    t2 = time.perf_counter()
    reader = MlflowClient()
    stored = sum(len(reader.get_metric_history(active.info.run_id, key)) for key in KEYS)
    t3 = time.perf_counter()
    if stored != len(work):
        raise RuntimeError(f"mlflow: the store holds {stored} points, expected {len(work)}")
    return {"total": t3 - t0, "log": t1 - t0, "end": t2 - t1, "read": t3 - t2}


# -- reporting -------------------------------------------------------------------------


def _median(rows: list[dict[str, float]], field: str) -> float:
    return statistics.median(r[field] for r in rows)


@app.command()
def main(
    repeats: Annotated[int, typer.Option(help="Timed runs per contender.")] = 3,
    params: Annotated[int, typer.Option(help="Params per run.")] = PARAMS,
    points: Annotated[int, typer.Option(help="Metric points per run.")] = POINTS,
    skip_mlflow: Annotated[bool, typer.Option(help="Time ours only.")] = False,
    strict: Annotated[bool, typer.Option(help="Exit 1 when the target is missed.")] = False,
    keep: Annotated[bool, typer.Option(help="Keep the temporary folder.")] = False,
) -> None:
    """Time logging one run (params + metric points, one call each): ours vs MLflow/SQLite."""
    tmp = Path(tempfile.mkdtemp(prefix="appliance-bench-tracking-"))
    ours: list[dict[str, float]] = []
    theirs: list[dict[str, float]] = []
    try:
        mlflow = None if skip_mlflow else mlflow_setup(tmp / "mlflow")
        with running_server(tmp / "home", env={"APPLIANCE_LOG_LEVEL": "warning"}) as client:
            run_ours(client, "warmup", 10, 100)
            if mlflow is not None:
                run_mlflow(mlflow, "warmup", 10, 100)
            for i in range(repeats):
                ours.append(run_ours(client, str(i), params, points))
                line = f"  round {i + 1}: ours {ours[-1]['total']:.3f} s"
                if mlflow is not None:
                    theirs.append(run_mlflow(mlflow, str(i), params, points))
                    line += f", mlflow {theirs[-1]['total']:.3f} s"
                console.print(line)
    finally:
        if keep:
            console.print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report(ours, theirs, params + points, strict)


def report(ours: list[dict[str, float]], theirs: list[dict[str, float]], values: int,
           strict: bool) -> None:
    table = Table(title=f"one run, {values:,} values logged one call each (seconds; medians)")
    for col in ("contender", "total", "log calls", "end", "read back", "values/s"):
        table.add_column(col, justify="left" if col == "contender" else "right")
    for label, rows in (("ours: client -> appliance serve", ours), ("mlflow: client -> sqlite", theirs)):
        if rows:
            total = _median(rows, "total")
            table.add_row(label, f"{total:.3f}", f"{_median(rows, 'log'):.3f}",
                          f"{_median(rows, 'end'):.3f}", f"{_median(rows, 'read'):.3f}",
                          f"{values / total:,.0f}")
    console.print(table)
    if not theirs:
        return
    ratio = _median(theirs, "total") / _median(ours, "total")
    met = ratio >= TARGET_RATIO
    console.print(f"ours / mlflow throughput = {ratio:.1f}x  (target >= {TARGET_RATIO:.0f}x)  "
                  + ("[green]met[/]" if met else "[red]missed[/]"))
    if strict and not met:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
