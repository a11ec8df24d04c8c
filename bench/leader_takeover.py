"""Leader takeover after kill -9: two ``appliance serve`` on one PostgreSQL.

Not a test. Run it once (the project venv has pgserver, from the test extra):

    .venv/bin/python bench/leader_takeover.py            # --rounds 5

It starts a PostgreSQL 16 from pgserver in a temporary folder, runs
``appliance migrate`` on it and starts two ``appliance serve`` with
``APPLIANCE_STORE_URL`` set (separate homes, different ports). Each round it
kills the host whose ``/healthz`` says ``leader: true`` with SIGKILL and times,
polling the survivor's ``/healthz`` every 20 ms, how long until the survivor
says ``leader: true``; then it starts the killed host again (a follower now)
for the next round. Every poll of the survivor must answer 200.

The reference, timed on the same database in the same run: two bare Python
processes doing only what the lease does (``pg_try_advisory_lock`` on a
connection of their own, the follower retrying at the same interval), the
holder killed with SIGKILL. The ratio says what the appliance adds on top of
PostgreSQL releasing the lock. Prints both medians, the ratio and this
process's peak memory.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import PASSWORD, appliance_command, free_port  # sibling module, not a package

console = Console()
app = typer.Typer(add_completion=False)

_HOLDER = """
import sys, time, psycopg
conn = psycopg.connect(sys.argv[1], autocommit=True)
while not conn.execute("SELECT pg_try_advisory_lock(42)").fetchone()[0]:
    time.sleep(float(sys.argv[2]))
print("held", flush=True)
time.sleep(3600)
"""


class Host:
    def __init__(self, home: Path, url: str, retry: float) -> None:
        self.home, self.url, self.retry = home, url, retry
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "APPLIANCE_HOME": str(self.home), "APPLIANCE_HOST": "127.0.0.1",
               "APPLIANCE_PORT": str(self.port), "APPLIANCE_ADMIN_PASSWORD": PASSWORD,
               "APPLIANCE_STORE_URL": self.url,
               "APPLIANCE_LEADER_RETRY_SECONDS": str(self.retry)}
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home.parent / f"serve-{self.home.name}.log").open("ab") as log:
            self.proc = subprocess.Popen([*appliance_command(), "serve"], env=env, stdout=log,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while self.leader() is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve on {self.home} did not come up; see its log")
            time.sleep(0.1)

    def leader(self) -> bool | None:
        try:
            answer = httpx.get(self.base + "/healthz", timeout=2)
        except httpx.HTTPError:
            return None
        return bool(answer.json()["leader"]) if answer.status_code == 200 else None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def _appliance_rounds(url: str, tmp: Path, rounds: int, retry: float) -> list[float]:
    a = Host(tmp / "a", url, retry)
    a.start()
    (tmp / "b").mkdir()  # the audit anchor is per home: a new host starts from the first's
    shutil.copy(tmp / "a" / "audit.head", tmp / "b" / "audit.head")
    b = Host(tmp / "b", url, retry)
    b.start()
    times = []
    try:
        for i in range(rounds):
            leader, survivor = (a, b) if a.leader() else (b, a)
            if not leader.leader() or survivor.leader():
                raise RuntimeError("not exactly one leader")
            leader.kill()
            killed = time.monotonic()
            while True:
                state = survivor.leader()
                if state is None:
                    raise RuntimeError("the survivor stopped answering /healthz")
                if state:
                    break
                if time.monotonic() - killed > 30:
                    raise RuntimeError("no takeover within 30 s")
                time.sleep(0.02)
            times.append(time.monotonic() - killed)
            console.print(f"  round {i + 1}: takeover in {times[-1]:.2f} s")
            leader.start()  # back as a follower
    finally:
        a.kill()
        b.kill()
    return times


def _reference_rounds(libpq_url: str, rounds: int, retry: float) -> list[float]:
    times = []
    for _ in range(rounds):
        holder = subprocess.Popen([sys.executable, "-c", _HOLDER, libpq_url, str(retry)],
                                  stdout=subprocess.PIPE)
        assert holder.stdout is not None
        holder.stdout.readline()  # "held"
        follower = subprocess.Popen([sys.executable, "-c", _HOLDER, libpq_url, str(retry)],
                                    stdout=subprocess.PIPE)
        assert follower.stdout is not None
        time.sleep(2 * retry + 1)  # connected and trying
        holder.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        follower.stdout.readline()
        times.append(time.monotonic() - killed)
        holder.wait()
        follower.kill()
        follower.wait()
    return times


@app.command()
def main(
    rounds: Annotated[int, typer.Option(help="Kills of the leader.")] = 3,
    retry: Annotated[float, typer.Option(
        help="APPLIANCE_LEADER_RETRY_SECONDS (and the reference's retry).")] = 1.0,
) -> None:
    """Time the leader takeover after kill -9, against bare advisory-lock holders."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver warns that XDG_RUNTIME_DIR is unset
        import pgserver

    from appliance.store.db import migrate

    tmp = Path(tempfile.mkdtemp(prefix="appliance-bench-lease-"))
    tmp.chmod(0o755)  # as root, pgserver runs the server as its own system user
    try:
        server = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
        libpq = str(server.get_uri("postgres"))
        url = libpq.replace("postgresql://", "postgresql+psycopg://", 1)
        migrate(tmp / "x.duckdb", tmp / "x.lock", url)
        console.print(f"two appliance serve on one PostgreSQL, {rounds} kill -9 of the leader")
        ours = _appliance_rounds(url, tmp, rounds, retry)
        console.print("reference: bare pg_try_advisory_lock holders")
        ref = _reference_rounds(libpq, rounds, retry)
        server.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    table = Table(title=f"takeover after kill -9 (retry every {retry:g} s), seconds")
    for col in ("path", "median", "max"):
        table.add_column(col, justify="left" if col == "path" else "right")
    table.add_row("appliance serve (healthz leader: true)", f"{statistics.median(ours):.2f}",
                  f"{max(ours):.2f}")
    table.add_row("bare advisory-lock holder", f"{statistics.median(ref):.2f}", f"{max(ref):.2f}")
    console.print(table)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"ratio {statistics.median(ours) / statistics.median(ref):.2f}x; "
                  f"peak memory of this process {peak_mb:.0f} MB")


if __name__ == "__main__":
    app()
