"""Runs-list benchmark: one filtered, sorted page out of 10,000 runs over the API.

Not a test. Run it once:

    .venv/bin/python bench/runs_list.py              # --runs 2000 for a quick look

It builds RUNS runs in a fresh home before any server opens it, with the
in-process appliance (``appliance.runtime.build``): by default straight
through the store layer in a few large transactions (seconds), or with
``--services`` one run at a time through ``RunService.start_external`` /
``log_batch`` / ``end``, as a notebook would over HTTP (about 35 ms a run).
Runs spread over EXPERIMENTS experiments, four statuses, two kinds, tags
(``split``, ``team``), latest metrics (acc, loss, f1) and a few steps of
metric points each. Then it starts ``appliance serve`` on that home and times,
warm, the median of CALLS calls of

    GET /api/v1/runs?experiment=exp-03&status=succeeded&sort=-metric:acc&limit=50

(target: under 200 ms), plus a few other list queries for context.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import PASSWORD, running_server  # a sibling module, not a package

TARGET_MS = 200.0
EXPERIMENTS = 20
STATUSES = (("succeeded", 0.70), ("failed", 0.15), ("running", 0.10), ("interrupted", 0.05))
MAIN_QUERY = {"experiment": "exp-03", "status": "succeeded", "sort": "-metric:acc", "limit": 50}
OTHER_QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("all runs, newest first", {"limit": 50}),
    ("tag=team:t2, sort=-metric:f1", {"tag": "team:t2", "sort": "-metric:f1", "limit": 50}),
    ("status=failed, page 5", {"status": "failed", "limit": 50, "offset": 200}),
    ("q=sweep-1, sort=name", {"q": "sweep-1", "sort": "name", "limit": 50}),
]

console = Console()
app = typer.Typer(add_completion=False)


def _plan(i: int, rng: random.Random) -> dict[str, Any]:
    roll, status = rng.random(), STATUSES[-1][0]
    for name, share in STATUSES:
        if roll < share:
            status = name
            break
        roll -= share
    acc = round(rng.uniform(0.5, 0.99), 4)
    return {
        "name": f"sweep-{i % 500}-trial-{i}",
        "experiment": f"exp-{i % EXPERIMENTS:02d}",
        "status": status,
        "kind": "external" if i % 4 else "train",
        "params": {"lr": str(round(rng.uniform(1e-4, 0.3), 5)), "depth": str(rng.randint(2, 10))},
        "tags": {"split": rng.choice("abc"), "team": f"t{rng.randint(0, 4)}"},
        "metrics": {"acc": acc, "loss": round(1 - acc + rng.uniform(0, 0.1), 4),
                    "f1": round(acc - rng.uniform(0, 0.1), 4)},
        "steps": 5,
    }


def _points(plan: dict[str, Any]) -> list[tuple[str, int, float, dt.datetime]]:
    now = dt.datetime.now(dt.UTC)
    out = []
    for key, last in plan["metrics"].items():
        for step in range(plan["steps"]):
            out.append((key, step, last * (step + 1) / plan["steps"], now))
    return out


def build_via_store(home: Path, runs: int, seed: int) -> None:
    """RunRows written straight through the store layer, 1,000 to a transaction."""
    from appliance.config import Settings
    from appliance.runtime import build
    from appliance.store import runs as q
    from appliance.store.tables import RunRow

    rng = random.Random(seed)
    appliance = build(Settings(home=home, admin_password=PASSWORD))  # type: ignore[arg-type]
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=90)
    try:
        for chunk in range(0, runs, 1000):
            with appliance.store.write() as s:
                for i in range(chunk, min(chunk + 1000, runs)):
                    plan = _plan(i, rng)
                    created = start + dt.timedelta(minutes=13 * i)
                    done = plan["status"] not in ("running",)
                    row = q.add_run(s, RunRow(
                        name=plan["name"], kind=plan["kind"], status=plan["status"],
                        experiment=plan["experiment"], params=plan["params"], tags=plan["tags"],
                        metrics=plan["metrics"], created_by="bench", created_at=created,
                        started_at=created, heartbeat_at=created, attempts=1,
                        ended_at=created + dt.timedelta(minutes=rng.randint(1, 60)) if done else None,
                        error="diverged" if plan["status"] == "failed" else None,
                    ))
                    q.append_metrics(s, row.id, _points(plan))
            console.print(f"  {min(chunk + 1000, runs):,} runs")
    finally:
        appliance.close()


def build_via_services(home: Path, runs: int, seed: int) -> None:
    """One run at a time through RunService, the path the API takes."""
    from appliance.config import Settings
    from appliance.domain.principal import SYSTEM
    from appliance.runtime import build

    rng = random.Random(seed)
    appliance = build(Settings(home=home, admin_password=PASSWORD))  # type: ignore[arg-type]
    try:
        for i in range(runs):
            plan = _plan(i, rng)
            run = appliance.runs.start_external(name=plan["name"], experiment=plan["experiment"],
                                                params=plan["params"], tags=plan["tags"], by=SYSTEM)
            appliance.runs.log_batch(run.id, metrics=[
                {"key": k, "step": step, "value": v} for k, step, v, _ in _points(plan)])
            if plan["status"] in ("succeeded", "failed"):
                appliance.runs.end(run.id, plan["status"],
                                   error="diverged" if plan["status"] == "failed" else None, by=SYSTEM)
            elif plan["status"] == "interrupted":
                from appliance.domain.runs import RunStatus

                appliance.runs.transition(run.id, RunStatus.interrupted)
            if (i + 1) % 1000 == 0:
                console.print(f"  {i + 1:,} runs")
    finally:
        appliance.close()


def time_query(client: Any, params: dict[str, Any], calls: int) -> tuple[list[float], dict[str, Any]]:
    out: dict[str, Any] = {}
    for _ in range(3):  # warm: first compilation, caches, connections
        out = client.runs(**params)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        out = client.runs(**params)
        times.append((time.perf_counter() - t0) * 1000)
    return times, out


@app.command()
def main(
    runs: Annotated[int, typer.Option(help="Runs to create.")] = 10_000,
    calls: Annotated[int, typer.Option(help="Timed calls per query.")] = 20,
    services: Annotated[bool, typer.Option(help="Create runs through RunService (slow).")] = False,
    seed: Annotated[int, typer.Option(help="Random seed for the runs.")] = 7,
    strict: Annotated[bool, typer.Option(help="Exit 1 when the target is missed.")] = False,
    keep: Annotated[bool, typer.Option(help="Keep the temporary folder.")] = False,
) -> None:
    """Time a filtered, sorted, paged runs list over the API on RUNS runs."""
    tmp = Path(tempfile.mkdtemp(prefix="appliance-bench-runs-"))
    home = tmp / "home"
    try:
        t0 = time.perf_counter()
        console.print(f"creating {runs:,} runs ({'services' if services else 'store layer'})")
        (build_via_services if services else build_via_store)(home, runs, seed)
        console.print(f"  built in {time.perf_counter() - t0:.1f} s")
        with running_server(home) as client:
            main_times, page = time_query(client, MAIN_QUERY, calls)
            accs = [r["metrics"]["acc"] for r in page["items"]]
            if accs != sorted(accs, reverse=True) or any(
                    r["status"] != "succeeded" or r["experiment"] != "exp-03" for r in page["items"]):
                raise RuntimeError("the page is not filtered and sorted as asked")
            others = [(label, *time_query(client, params, calls)) for label, params in OTHER_QUERIES]
    finally:
        if keep:
            console.print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    table = Table(title=f"GET /api/v1/runs on {runs:,} runs (ms over HTTP, {calls} warm calls)")
    for col in ("query", "total matched", "items", "median", "p95"):
        table.add_column(col, justify="left" if col == "query" else "right")
    rows = [("TARGET exp-03, succeeded, -metric:acc", main_times, page),
            *others]
    for label, times, out in rows:
        p95 = statistics.quantiles(times, n=20)[-1] if len(times) > 1 else times[0]
        table.add_row(label, f"{out['total']:,}", str(len(out["items"])),
                      f"{statistics.median(times):.1f}", f"{p95:.1f}")
    console.print(table)
    median = statistics.median(main_times)
    met = median < TARGET_MS
    console.print(f"filtered list median = {median:.1f} ms  (target < {TARGET_MS:.0f} ms)  "
                  + ("[green]met[/]" if met else "[red]missed[/]"))
    if strict and not met:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
