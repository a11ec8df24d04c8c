"""Tracking through the real MLflow client: the appliance vs ``mlflow server`` on SQLite.

Not a test. Run it once (the MLflow client and server are in the test extra):

    .venv/bin/python bench/tracking_mlflow.py            # --repeats 5 for steadier medians

The same MLflow-client script (``_mlflow_workload.py``, a fresh interpreter per run)
logs one run against each server: PARAMS params (one ``log_param`` call each),
BATCHED metric points through ``log_batch`` (the client sends them 1,000 a request)
and SINGLE points through one ``log_metric`` call each; then it ends the run and reads
everything back (history of both keys, the params). Contenders, in one run:

(a) ``appliance serve`` (a real process, bearer token as MLFLOW_TRACKING_TOKEN);
(b) ``mlflow server`` on ``sqlite:///...`` with ``--serve-artifacts`` (one worker).

Both get an untimed warm-up run first, then REPEATS timed runs in alternation. It
prints the median phase times, the ratio of MLflow's total time to ours (the same
client calls: throughput ratio; target >= 10x), and the peak resident memory of each
server process tree (VmHWM) and of the client. A third contender, a server that answers
every call at once and keeps nothing (``_noop_tracking_server.py``), measures the MLflow
client's own cost per call: no server can beat it, so it bounds the reachable ratio.
``--strict`` exits 1 when the target is missed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import httpx
import typer
from harness import PASSWORD, appliance_command, free_port  # a sibling module
from rich.console import Console
from rich.table import Table

TARGET_RATIO = 10.0
PARAMS, BATCHED, SINGLE = 100, 10_000, 2_000
WORKLOAD = Path(__file__).with_name("_mlflow_workload.py")
console = Console(width=150)
app = typer.Typer(add_completion=False)


def _tree_peak_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of a process and its children, summed."""
    pids = [pid]
    try:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True,
                             text=True, check=False).stdout
        pids += [int(p) for p in out.split()]
    except OSError:
        pass
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


@contextmanager
def _process(cmd: list[str], env: dict[str, str], log: Path, health: str) -> Iterator[int]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited:\n{log.read_text()[-3000:]}")
            try:
                if httpx.get(health, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"not healthy in 240 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}


@contextmanager
def appliance(root: Path) -> Iterator[tuple[str, str, int]]:
    port = free_port()
    env = {**_clean_env(), "APPLIANCE_HOME": str(root / "home"), "APPLIANCE_PORT": str(port),
           "APPLIANCE_HOST": "127.0.0.1", "APPLIANCE_ADMIN_PASSWORD": PASSWORD,
           "APPLIANCE_LOG_LEVEL": "warning"}
    url = f"http://127.0.0.1:{port}"
    with _process([*appliance_command(), "serve"], env, root / "serve.log",
                  url + "/healthz") as pid:
        token = httpx.post(f"{url}/api/v1/auth/token",
                           json={"username": "admin", "password": PASSWORD}).json()
        yield url, str(token["access_token"]), pid


@contextmanager
def mlflow_server(root: Path) -> Iterator[tuple[str, str, int]]:
    port = free_port()
    env = _clean_env()
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
           "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--serve-artifacts",
           "--artifacts-destination", str(root / "artifacts"), "--workers", "1"]
    url = f"http://127.0.0.1:{port}"
    with _process(cmd, env, root / "mlflow.log", url + "/health") as pid:
        yield url, "", pid


@contextmanager
def noop_server(root: Path) -> Iterator[tuple[str, str, int]]:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "_noop_tracking_server:app", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", "--app-dir", str(WORKLOAD.parent)]
    url = f"http://127.0.0.1:{port}"
    with _process(cmd, _clean_env(), root / "noop.log", url + "/health") as pid:
        yield url, "", pid


def workload(url: str, token: str, tag: str, params: int, batched: int,
             single: int, check: bool = True) -> dict[str, float]:
    env = _clean_env()
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    proc = subprocess.run([sys.executable, str(WORKLOAD), url, tag, str(params), str(batched),
                           str(single), *([] if check else ["--no-check"])], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-4000:])
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    return dict(json.loads(line.removeprefix("RESULT ")))


@app.command()
def main(
    repeats: Annotated[int, typer.Option(help="Timed runs per contender.")] = 3,
    params: Annotated[int, typer.Option(help="log_param calls per run.")] = PARAMS,
    batched: Annotated[int, typer.Option(help="Points through log_batch.")] = BATCHED,
    single: Annotated[int, typer.Option(help="log_metric calls.")] = SINGLE,
    strict: Annotated[bool, typer.Option(help="Exit 1 when the target is missed.")] = False,
) -> None:
    """Time one MLflow-client script against the appliance and against mlflow server."""
    tmp = Path(tempfile.mkdtemp(prefix="appliance-bench-mlflow-"))
    ours: list[dict[str, float]] = []
    theirs: list[dict[str, float]] = []
    peaks: dict[str, float] = {}
    floor: list[dict[str, float]] = []
    try:
        (tmp / "a").mkdir()
        (tmp / "m").mkdir()
        with appliance(tmp / "a") as (a_url, token, a_pid), \
                mlflow_server(tmp / "m") as (m_url, _, m_pid):
            console.print("  servers up; warm-up runs")
            workload(a_url, token, "warmup", 10, 1000, 50)
            workload(m_url, "", "warmup", 10, 1000, 50)
            for i in range(repeats):
                ours.append(workload(a_url, token, str(i), params, batched, single))
                theirs.append(workload(m_url, "", str(i), params, batched, single))
                console.print(f"  round {i + 1}: ours {ours[-1]['total']:.2f} s, "
                              f"mlflow {theirs[-1]['total']:.2f} s")
            peaks = {"ours": _tree_peak_mb(a_pid), "mlflow": _tree_peak_mb(m_pid)}
        with noop_server(tmp) as (n_url, _, _pid):
            floor = [workload(n_url, "", str(i), params, batched, single, check=False)
                     for i in range(repeats)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(ours, theirs, floor, peaks, params, batched, single, strict)


def report(ours: list[dict[str, float]], theirs: list[dict[str, float]],
           floor: list[dict[str, float]], peaks: dict[str, float], params: int, batched: int, single: int,
           strict: bool) -> None:
    def med(rows: list[dict[str, float]], field: str) -> float:
        return statistics.median(r[field] for r in rows)

    table = Table(title=f"one run through the MLflow client: {params} log_param, "
                        f"{batched:,} points via log_batch, {single:,} log_metric "
                        "(seconds, medians)")
    cols = ("contender", "params", "log_batch", "log_metric", "end+read", "total",
            "log_metric calls/s", "server peak MB", "client peak MB")
    for col in cols:
        table.add_column(col, justify="left" if col == "contender" else "right")
    for label, rows, key in (("appliance serve", ours, "ours"),
                             ("mlflow server (sqlite)", theirs, "mlflow"),
                             ("no-op server (the client's own cost)", floor, "noop")):
        table.add_row(label, *(f"{med(rows, f):.3f}" for f in
                               ("params", "batched", "single", "end_read", "total")),
                      f"{single / med(rows, 'single'):,.0f}", f"{peaks.get(key, 0):.0f}",
                      f"{med(rows, 'client_peak_mb'):.0f}")
    console.print(table)
    ratio = med(theirs, "total") / med(ours, "total")
    per_phase = {f: med(theirs, f) / med(ours, f) for f in ("params", "batched", "single")}
    met = ratio >= TARGET_RATIO
    console.print(
        f"mlflow time / ours (same client calls) = {ratio:.1f}x  (target >= "
        f"{TARGET_RATIO:.0f}x) " + ("[green]met[/]" if met else "[red]missed[/]")
        + "; per phase: " + ", ".join(f"{k} {v:.1f}x" for k, v in per_phase.items()))
    bound = med(theirs, "total") / med(floor, "total")
    share = 100 * med(floor, "total") / med(ours, "total")
    console.print(f"the most any server could reach with this client: mlflow time / no-op "
                  f"server time = {bound:.1f}x; ours runs at {share:.0f}% of the no-op "
                  "server's speed")
    if strict and not met:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
