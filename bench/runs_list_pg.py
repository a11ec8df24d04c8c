"""Runs list on PostgreSQL against the embedded DuckDB store: the same 10,000 runs, the
same queries, over the API of a real ``appliance serve`` on each.

Not a test. Run it once (the project venv has pgserver, from the test extra):

    .venv/bin/python bench/runs_list_pg.py              # --runs 2000 for a quick look

It starts a PostgreSQL 16 from pgserver in a temporary folder, runs
``appliance migrate`` on it, writes RUNS runs (the plan of bench/runs_list.py: 20
experiments, four statuses, tags, metrics, metric points) through the store layer
into that database and, with the same seed, into an embedded home; then starts
``appliance serve`` on each (``APPLIANCE_STORE_URL`` set for the first) and times,
warm, the median of CALLS calls of each query of bench/runs_list.py, the target one
being

    GET /api/v1/runs?experiment=exp-03&status=succeeded&sort=-metric:acc&limit=50

(target on PostgreSQL: under 200 ms). Prints both medians, their ratio, the size
of each store and this process's peak memory.
"""

from __future__ import annotations

import datetime as dt
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import PASSWORD, running_server  # sibling modules, not a package
from runs_list import MAIN_QUERY, OTHER_QUERIES, _plan, _points, time_query

TARGET_MS = 200.0
console = Console()
app = typer.Typer(add_completion=False)


def build(home: Path, url: str | None, runs: int, seed: int) -> None:
    """RunRows straight through the store layer, 1,000 to a transaction (as runs_list.py)."""
    from appliance.config import Settings
    from appliance.runtime import build as build_appliance
    from appliance.store import runs as q
    from appliance.store.tables import RunRow

    rng = random.Random(seed)
    appliance = build_appliance(Settings(home=home, admin_password=PASSWORD,  # type: ignore[arg-type]
                                         store_url=url))
    start = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)
    try:
        for chunk in range(0, runs, 1000):
            with appliance.store.write() as s:
                for i in range(chunk, min(chunk + 1000, runs)):
                    plan = _plan(i, rng)
                    created = start + dt.timedelta(minutes=13 * i)
                    done = plan["status"] != "running"
                    row = q.add_run(s, RunRow(
                        name=plan["name"], kind=plan["kind"], status=plan["status"],
                        experiment=plan["experiment"], params=plan["params"], tags=plan["tags"],
                        metrics=plan["metrics"], created_by="bench", created_at=created,
                        started_at=created, heartbeat_at=created, attempts=1,
                        ended_at=created + dt.timedelta(minutes=7) if done else None,
                        error="diverged" if plan["status"] == "failed" else None,
                    ))
                    q.append_metrics(s, row.id, _points(plan))
    finally:
        appliance.close()


def measure(home: Path, url: str | None, calls: int) -> list[tuple[str, list[float], Any]]:
    env = {"APPLIANCE_STORE_URL": url} if url else None
    with running_server(home, env=env, log_name=f"serve-{'pg' if url else 'duckdb'}.log") as client:
        main_times, page = time_query(client, MAIN_QUERY, calls)
        accs = [r["metrics"]["acc"] for r in page["items"]]
        if accs != sorted(accs, reverse=True) or any(
                r["status"] != "succeeded" or r["experiment"] != "exp-03" for r in page["items"]):
            raise RuntimeError("the page is not filtered and sorted as asked")
        rows = [("TARGET exp-03, succeeded, -metric:acc", main_times, page)]
        rows += [(label, *time_query(client, params, calls)) for label, params in OTHER_QUERIES]
    return rows


@app.command()
def main(
    runs: Annotated[int, typer.Option(help="Runs to create.")] = 10_000,
    calls: Annotated[int, typer.Option(help="Timed calls per query.")] = 20,
    seed: Annotated[int, typer.Option(help="Random seed for the runs.")] = 7,
    strict: Annotated[bool, typer.Option(help="Exit 1 when the target is missed.")] = False,
) -> None:
    """Time the runs list over the API on RUNS runs, on PostgreSQL and on DuckDB."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver warns that XDG_RUNTIME_DIR is unset
        import pgserver

    from appliance.store.db import migrate

    tmp = Path(tempfile.mkdtemp(prefix="appliance-bench-runs-pg-"))
    tmp.chmod(0o755)  # as root, pgserver runs the server as its own system user
    try:
        server = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
        url = str(server.get_uri("postgres")).replace("postgresql://", "postgresql+psycopg://", 1)
        migrate(tmp / "x.duckdb", tmp / "x.lock", url)
        results: dict[str, list[tuple[str, list[float], Any]]] = {}
        sizes: dict[str, str] = {}
        for engine, engine_url in (("PostgreSQL", url), ("DuckDB", None)):
            home = tmp / engine.lower()
            t0 = time.perf_counter()
            build(home, engine_url, runs, seed)
            console.print(f"{engine}: {runs:,} runs written in {time.perf_counter() - t0:.1f} s")
            results[engine] = measure(home, engine_url, calls)
        sizes["DuckDB"] = f"{(tmp / 'duckdb' / 'appliance.duckdb').stat().st_size / 1e6:.1f} MB"
        sizes["PostgreSQL"] = server.psql("SELECT pg_size_pretty(pg_database_size('postgres'));"
                                          ).strip().splitlines()[2].strip()
        server.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    table = Table(title=f"GET /api/v1/runs on {runs:,} runs: median ms over HTTP, "
                        f"{calls} warm calls")
    for col in ("query", "matched", "PostgreSQL", "DuckDB", "ratio"):
        table.add_column(col, justify="left" if col == "query" else "right")
    for (label, pg_times, out), (_, duck_times, _) in zip(results["PostgreSQL"], results["DuckDB"],
                                                          strict=True):
        pg_ms, duck_ms = statistics.median(pg_times), statistics.median(duck_times)
        table.add_row(label, f"{out['total']:,}", f"{pg_ms:.1f}", f"{duck_ms:.1f}",
                      f"{pg_ms / duck_ms:.2f}x")
    console.print(table)
    pg = statistics.median(results["PostgreSQL"][0][1])
    duck = statistics.median(results["DuckDB"][0][1])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"store size: PostgreSQL {sizes['PostgreSQL']}, DuckDB {sizes['DuckDB']}; "
                  f"peak memory of this process {peak_mb:.0f} MB")
    met = pg < TARGET_MS
    console.print(f"target query on PostgreSQL {pg:.1f} ms vs DuckDB {duck:.1f} ms "
                  f"(ratio {pg / duck:.2f}x; target < {TARGET_MS:.0f} ms) "
                  + ("[green]met[/]" if met else "[red]missed[/]"))
    if strict and not met:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
