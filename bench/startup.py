"""Startup benchmark: how fast ``appliance serve`` is ready, and how much memory it holds idle.

Not a test. Run it once:

    .venv/bin/python bench/startup.py            # --starts 3 for a quick look

A fresh home is seeded with ``appliance init --demo`` (example jobs, the
sample, a first batch of customers in the inbox). One untimed first start
takes the demo in: it waits until the ``customers`` dataset has a version and
no run has been queued or running for 5 s (the demo job trains on new data),
then stops.
Then STARTS timed starts on that home, one after another: the clock runs from
spawning ``appliance serve`` until ``GET /healthz`` answers 200 (polled every
10 ms over one loopback connection); the figure is the median. After the last
start the server is left idle for IDLE seconds and the resident memory of the
serve process and all its children is read from ``/proc`` (RSS summed, and PSS,
which does not count shared pages twice).

Then ``python -X importtime`` of what serve imports before it answers lists
the imports that dominate the start.

Targets: ready in under 3 s (median), idle RSS under 400 MB. ``--strict`` exits
1 when one is missed.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

import typer
from harness import PASSWORD, appliance_command, free_port  # a sibling module, not a package
from rich.console import Console
from rich.table import Table

TARGET_READY_S = 3.0
TARGET_IDLE_RSS_MB = 400.0

console = Console()
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def serve_env(home: Path, port: int) -> dict[str, str]:
    return {**os.environ, "APPLIANCE_HOME": str(home), "APPLIANCE_HOST": "127.0.0.1",
            "APPLIANCE_PORT": str(port), "APPLIANCE_ADMIN_PASSWORD": PASSWORD,
            "APPLIANCE_LOG_LEVEL": "warning"}


def healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@contextmanager
def started(home: Path, log_path: Path, *, extra: list[str] | None = None,
            timeout_s: float = 120.0) -> Iterator[tuple[subprocess.Popen[bytes], int, float]]:
    """``appliance serve`` on a free port: yields (process, port, seconds until /healthz 200)."""
    port = free_port()
    cmd = [sys.executable, *extra, "-m", "appliance", "serve"] if extra else \
        [*appliance_command(), "serve"]
    with log_path.open("wb") as log:
        began = time.perf_counter()
        proc = subprocess.Popen(cmd, env=serve_env(home, port), stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        while not healthy(port):
            if proc.poll() is not None:
                raise RuntimeError(f"appliance serve exited ({proc.returncode}):\n"
                                   f"{log_path.read_text(errors='replace')[-4000:]}")
            if time.perf_counter() - began > timeout_s:
                raise RuntimeError(f"appliance serve not ready in {timeout_s:.0f} s")
            time.sleep(0.01)
        yield proc, port, time.perf_counter() - began
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()


# -- memory from /proc ------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (from /proc/*/stat parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def memory_mb(pid: int) -> dict[str, Any]:
    """RSS and PSS (MB) of ``pid`` and its children, and how many processes that is."""
    rss = pss = 0
    procs = descendants(pid)
    for p in procs:
        with suppress(OSError):
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
        with suppress(OSError):
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
    return {"rss": rss / 1024, "pss": pss / 1024, "processes": len(procs)}


# -- the demo, taken in once ---------------------------------------------------------------


def take_in_demo(home: Path, log_path: Path, timeout_s: float, settle_s: float = 5.0) -> str:
    """First start: wait for the demo dataset and for any run it triggers to finish
    (nothing queued or running for ``settle_s`` in a row)."""
    from appliance.client import ApplianceClient

    with started(home, log_path) as (_, port, ready_s), \
            ApplianceClient(f"http://127.0.0.1:{port}", timeout=60) as client:
        client.login("admin", PASSWORD)
        deadline = time.monotonic() + timeout_s
        state = "timed out waiting for the demo"
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            datasets = client.get("/datasets")
            items = datasets.get("items", datasets) if isinstance(datasets, dict) else datasets
            names = {d.get("name") for d in items} if isinstance(items, list) else set()
            runs = client.get("/runs")
            runs = runs.get("items", runs) if isinstance(runs, dict) else runs
            busy = [r for r in runs if r.get("status") in ("queued", "running")] \
                if isinstance(runs, list) else []
            if "customers" in names and not busy:
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle_s:  # a triggered run had its chance
                    state = f"demo taken in: customers ingested, {len(runs)} run(s) done"
                    break
            else:
                quiet_since = None
            time.sleep(0.5)
        return f"first start ready in {ready_s:.2f} s; {state}"


# -- import time -----------------------------------------------------------------------------

_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \| ( *)(\S+)")


def import_profile(home: Path, log_path: Path, top: int) -> list[tuple[str, float, float]]:
    """(module, cumulative s, self s) of the slowest top-level imports of a real serve start."""
    with started(home, log_path, extra=["-X", "importtime"]):
        pass
    rows = []
    for line in log_path.read_text(errors="replace").splitlines():
        m = _IMPORT_LINE.search(line)
        if m and len(m.group(3)) <= 2:  # top-level and their direct imports
            rows.append((("  " if m.group(3) else "") + m.group(4),
                         int(m.group(2)) / 1e6, int(m.group(1)) / 1e6))
    top_level = sorted((r for r in rows if not r[0].startswith(" ")), key=lambda r: -r[1])
    return top_level[:top]


@app.command()
def main(
    starts: Annotated[int, typer.Option(help="Timed starts (median).")] = 5,
    idle: Annotated[float, typer.Option(help="Idle seconds before memory is read.")] = 10.0,
    demo_timeout: Annotated[float, typer.Option(help="Seconds to wait for the demo.")] = 300.0,
    imports: Annotated[int, typer.Option(help="Slowest top-level imports listed (0: skip).")] = 15,
    strict: Annotated[bool, typer.Option(help="Exit 1 when a target is missed.")] = False,
    keep: Annotated[bool, typer.Option(help="Keep the temporary folder.")] = False,
) -> None:
    """Time ``appliance serve`` from spawn to /healthz 200, and its idle memory."""
    tmp = Path(tempfile.mkdtemp(prefix="appliance-bench-startup-"))
    home = tmp / "home"
    times: list[float] = []
    memory: dict[str, Any] = {}
    profile: list[tuple[str, float, float]] = []
    try:
        init = subprocess.run([*appliance_command(), "init", "--demo", "--home", str(home)],
                              env=serve_env(home, free_port()), capture_output=True, text=True,
                              check=False)
        if init.returncode != 0:
            raise RuntimeError(f"appliance init --demo failed:\n{init.stdout}{init.stderr}")
        console.print(f"home {home}: appliance init --demo")
        with console.status("first start: taking in the demo"):
            console.print("  " + take_in_demo(home, tmp / "serve-first.log", demo_timeout))
        for i in range(starts):
            with started(home, tmp / f"serve-{i}.log") as (proc, _, ready_s):
                times.append(ready_s)
                console.print(f"  start {i + 1}/{starts}: ready in {ready_s:.2f} s")
                if i == starts - 1:
                    with console.status(f"idle {idle:.0f} s"):
                        time.sleep(idle)
                    memory = memory_mb(proc.pid)
        if imports:
            with console.status("python -X importtime"):
                profile = import_profile(home, tmp / "serve-importtime.log", imports)
    finally:
        if keep:
            console.print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    report(times, memory, profile, idle, strict)


def report(times: list[float], memory: dict[str, Any], profile: list[tuple[str, float, float]],
           idle: float, strict: bool) -> None:
    if profile:
        table = Table(title="slowest top-level imports of `appliance serve` (-X importtime)")
        for col in ("module", "cumulative s", "self s"):
            table.add_column(col, justify="left" if col == "module" else "right")
        for name, cum, own in profile:
            table.add_row(name, f"{cum:.3f}", f"{own:.3f}")
        console.print(table)
    ready = statistics.median(times)
    console.print(f"starts: {', '.join(f'{t:.2f}' for t in times)} s")
    checks = [
        (f"ready (spawn to /healthz 200) = {ready:.2f} s median of {len(times)}  "
         f"(target < {TARGET_READY_S:.0f} s)", ready < TARGET_READY_S),
        (f"idle RSS after {idle:.0f} s = {memory['rss']:.0f} MB over {memory['processes']} "
         f"process(es) (PSS {memory['pss']:.0f} MB)  (target < {TARGET_IDLE_RSS_MB:.0f} MB)",
         memory["rss"] < TARGET_IDLE_RSS_MB),
    ]
    for text, ok in checks:
        console.print(f"{text}  " + ("[green]met[/]" if ok else "[red]missed[/]"))
    if strict and not all(ok for _, ok in checks):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
