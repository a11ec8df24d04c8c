"""Ingestion benchmark: our file-drop path against raw DuckDB and pandas + pandera.

Not a test. Install the peers, then run it once:

    scripts/install-wheel.sh .venv test,bench
    .venv/bin/python bench/ingest.py            # --rows 200000 for a quick look

It writes a CSV of ROWS x 20 columns (16 float, 3 categorical, 1 integer
label; about 160 MB at 1,000,000 rows) to a temporary folder. Each of REPEATS
rounds makes a fresh copy (one distinct row, so ours never sees a duplicate),
fsyncs it, lets the disk settle, and times on that same file:

(a) DuckDB: ``COPY (SELECT * FROM read_csv(f)) TO parquet``, the floor for
    CSV-to-Parquet on this machine;
(b) pandas ``read_csv`` + a pandera (pandas) schema check (dtypes,
    nullability, ranges, isin) + ``to_parquet``: what users write by hand;
(c) ours: a real ``appliance serve`` process; the clock starts at the
    ``os.rename`` of the file into ``inbox/benchN/f.csv`` (the drop protocol)
    and stops at the ``created_at`` stamp of version 1, written in the
    transaction that makes it ``accepted`` (read back over the API, polled
    gently so the polling does not slow the server it measures). That includes the
    watcher's poll latency, contract inference, validation, Parquet and the
    store. The server's own ``duration_ms`` for the ingest is shown too.

It prints the medians and the ratios ours/duckdb (target <= 1.5) and
pandas/ours (target >= 2.7). ``--strict`` exits 1 when a target is missed.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import polars as pl
import typer
from harness import running_server  # a sibling module, not a package
from rich.console import Console
from rich.table import Table

TARGET_VS_DUCKDB = 1.5  # ours / duckdb must be at most this
TARGET_VS_PANDAS = 2.7  # pandas / ours must be at least this
N_FLOAT = 16
CATEGORIES = {
    "cat_a": ["red", "green", "blue", "yellow"],
    "cat_b": ["small", "medium", "large"],
    "cat_c": [f"k{i:02d}" for i in range(12)],
}
FLOAT_LIMIT = 10.0  # floats are N(0, 1) clipped to +/- this, so range checks hold

console = Console()
app = typer.Typer(add_completion=False)


def make_csv(path: Path, rows: int, *, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {
        f"f{i:02d}": np.round(np.clip(rng.standard_normal(rows), -FLOAT_LIMIT, FLOAT_LIMIT), 6)
        for i in range(N_FLOAT)
    }
    for name, values in CATEGORIES.items():
        cols[name] = np.array(values)[rng.integers(0, len(values), rows)]
    cols["label"] = rng.integers(0, 2, rows)
    pl.DataFrame(cols).write_csv(path)


def with_distinct_last_row(src: Path, dst: Path, tag: int) -> None:
    """A copy of ``src`` plus one row, so each dataset gets bytes it has not seen."""
    shutil.copyfile(src, dst)
    row = [f"{tag / 1000:.6f}"] * N_FLOAT + [v[0] for v in CATEGORIES.values()] + ["1"]
    with dst.open("a") as fh:
        fh.write(",".join(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


# -- (a) DuckDB -----------------------------------------------------------------


def run_duckdb(csv: Path, out: Path) -> float:
    import duckdb

    out.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        t0 = time.perf_counter()
        con.execute(f"COPY (SELECT * FROM read_csv('{csv}')) TO '{out}' (FORMAT parquet)")
        return time.perf_counter() - t0
    finally:
        con.close()


# -- (b) pandas + pandera ----------------------------------------------------------


def pandera_schema() -> Any:
    try:
        import pandera.pandas as pa
    except ImportError:  # pandera < 0.24 exposes the pandas API at the top level
        import pandera as pa

    columns: dict[str, Any] = {
        f"f{i:02d}": pa.Column(
            float, pa.Check.in_range(-FLOAT_LIMIT, FLOAT_LIMIT), nullable=False
        )
        for i in range(N_FLOAT)
    }
    for name, values in CATEGORIES.items():
        columns[name] = pa.Column(str, pa.Check.isin(values), nullable=False)
    columns["label"] = pa.Column(int, pa.Check.isin([0, 1]), nullable=False)
    return pa.DataFrameSchema(columns, strict=True)


def run_pandas(csv: Path, out: Path, schema: Any) -> float:
    import pandas as pd

    out.unlink(missing_ok=True)
    t0 = time.perf_counter()
    df = pd.read_csv(csv)
    schema.validate(df, lazy=True)
    df.to_parquet(out)
    return time.perf_counter() - t0


# -- (c) ours -------------------------------------------------------------------


def drop_and_wait(
    client: Any, inbox: Path, dataset: str, src: Path, timeout_s: float
) -> tuple[float, float | None]:
    """Seconds from the rename to version 1 accepted, and the server's duration_ms."""
    folder = inbox / dataset
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    os.rename(src, folder / "f.csv")  # same filesystem: the drop protocol's atomic rename
    deadline = t0 + timeout_s
    while True:
        # Poll gently: a 20 ms poll loop costs the server a quarter of a core and
        # would slow what it measures. The time comes from the version's own
        # commit-time stamp (same machine, same clock), not from when we looked.
        time.sleep(0.25)
        versions = _versions(client, dataset)
        v1 = next((v for v in versions if v.get("number") == 1), None)
        if v1 is not None and v1.get("status") == "accepted":
            created = dt.datetime.fromisoformat(v1["created_at"]).timestamp()
            elapsed = created - t0
            break
        if v1 is not None:
            raise RuntimeError(f"{dataset} v1 is {v1.get('status')}: {v1.get('report_headline')}")
        if time.time() > deadline:
            raise RuntimeError(f"{dataset}: no accepted version after {timeout_s} s; "
                               f"ingests: {client.ingests(dataset=dataset)}")
    ingests = client.ingests(dataset=dataset, limit=5)
    server_ms = next((i.get("duration_ms") for i in ingests if i.get("version") == 1), None)
    return elapsed, server_ms


def _versions(client: Any, dataset: str) -> list[dict[str, Any]]:
    from appliance.errors import RemoteError

    try:
        out: list[dict[str, Any]] = client.versions(dataset)
    except RemoteError as exc:
        if exc.status == 404:  # the dataset appears with its first ingest
            return []
        raise
    return out


# -- reporting -------------------------------------------------------------------


def _settle() -> None:
    """Flush dirty pages and pause, so no contender pays for the previous one's writes."""
    os.sync()
    time.sleep(1.0)


@contextmanager
def _no_server() -> Iterator[None]:
    yield None


def _fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.3f}" for t in times)


@app.command()
def main(
    rows: Annotated[int, typer.Option(help="Rows in the CSV.")] = 1_000_000,
    repeats: Annotated[int, typer.Option(help="Timings per contender.")] = 3,
    poll: Annotated[float, typer.Option(help="APPLIANCE_INBOX_POLL_SECONDS for ours.")] = 0.2,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for one ingest.")] = 600.0,
    skip_ours: Annotated[bool, typer.Option(help="Time only the references.")] = False,
    strict: Annotated[bool, typer.Option(help="Exit 1 when a target is missed.")] = False,
    keep: Annotated[bool, typer.Option(help="Keep the temporary folder.")] = False,
) -> None:
    """Time CSV ingestion: ours vs raw DuckDB vs pandas + pandera."""
    tmp = Path(tempfile.mkdtemp(prefix="appliance-bench-"))
    try:
        csv = tmp / "f.csv"
        with console.status(f"writing {rows:,} x 20 CSV"):
            make_csv(csv, rows)
        console.print(f"[bold]data[/]: {rows:,} rows x 20 columns, "
                      f"{csv.stat().st_size / 1e6:.0f} MB at {csv}")

        # One round per repeat, every contender on the same fresh file, in the
        # same conditions: the file is written and fsync'd, the disk settles,
        # then DuckDB, pandas and ours each take it (ours by a rename, no copy).
        schema = pandera_schema()
        duck: list[float] = []
        pandas: list[float] = []
        ours: list[float] = []
        server: list[float | None] = []
        home = tmp / "home"
        server_env = {"APPLIANCE_INBOX_POLL_SECONDS": str(poll)}
        with running_server(home, env=server_env) if not skip_ours else _no_server() as client:
            if client is not None:
                # Warm-up: first imports, child-process start-up, the store's first writes.
                small = tmp / "warmup.csv"
                make_csv(small, 1000, seed=1)
                with console.status("ours: warm-up file"):
                    drop_and_wait(client, home / "inbox", "warmup", small, timeout)
            for i in range(repeats):
                variant = tmp / f"f{i + 1}.csv"
                with_distinct_last_row(csv, variant, i + 1)
                # the dataset's inbox folder exists before the drop, as it does for a
                # user's second file: the watcher must already be watching it
                (home / "inbox" / f"bench{i + 1}").mkdir(parents=True, exist_ok=True)
                _settle()
                duck.append(run_duckdb(variant, tmp / f"duck{i}.parquet"))
                _settle()
                pandas.append(run_pandas(variant, tmp / f"pandas{i}.parquet", schema))
                if client is not None:
                    _settle()
                    with console.status(f"ours: bench{i + 1}"):
                        elapsed, ms = drop_and_wait(
                            client, home / "inbox", f"bench{i + 1}", variant, timeout
                        )
                    ours.append(elapsed)
                    server.append(ms)
                console.print(f"  round {i + 1}: duckdb {duck[-1]:.3f} s, pandas {pandas[-1]:.3f} s"
                              + (f", ours {ours[-1]:.3f} s" if ours else ""))
    finally:
        if keep:
            console.print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    report(duck, pandas, ours, server, strict)


def report(
    duck: list[float], pandas: list[float], ours: list[float],
    server: list[float | None], strict: bool,
) -> None:
    table = Table(title="CSV ingestion (seconds; median of runs)")
    table.add_column("contender")
    table.add_column("median", justify="right")
    table.add_column("runs")
    table.add_row("duckdb COPY to parquet", f"{statistics.median(duck):.3f}", _fmt(duck))
    table.add_row("pandas + pandera + to_parquet", f"{statistics.median(pandas):.3f}", _fmt(pandas))
    if ours:
        table.add_row("ours: rename -> accepted", f"{statistics.median(ours):.3f}", _fmt(ours))
        ms = [m / 1000 for m in server if m is not None]
        if ms:
            table.add_row("ours: server duration_ms", f"{statistics.median(ms):.3f}", _fmt(ms))
    console.print(table)
    if not ours:
        return
    vs_duck = statistics.median(ours) / statistics.median(duck)
    vs_pandas = statistics.median(pandas) / statistics.median(ours)
    ok_duck = vs_duck <= TARGET_VS_DUCKDB
    ok_pandas = vs_pandas >= TARGET_VS_PANDAS
    missed = not (ok_duck and ok_pandas)
    console.print(f"ours / duckdb  = {vs_duck:.2f}x  (target <= {TARGET_VS_DUCKDB}x)  "
                  + ("[green]met[/]" if ok_duck else "[red]missed[/]"))
    console.print(f"pandas / ours  = {vs_pandas:.2f}x  (target >= {TARGET_VS_PANDAS}x)  "
                  + ("[green]met[/]" if ok_pandas else "[red]missed[/]"))
    if strict and missed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
