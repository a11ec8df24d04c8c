"""``appliance up``: serve and the console as supervised children.

Signals (SIGTERM, SIGINT) are forwarded to both children, as SIGTERM and once
each; the children run in their own process group, so a terminal's Ctrl-C
reaches only ``up``. When either child exits, the other is stopped too and
``up`` exits with the first one's code (0 for a stop by SIGTERM/SIGINT,
128 + n for a child killed by signal n), so a container restarts cleanly
instead of running half an appliance. A signal that arrives before the
console started stops serve, and the console is never started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import appliance
from appliance.config import Settings

_GRACE_SECONDS = 15.0


def console_dir() -> Path:
    """The Streamlit app: packaged as ``appliance/_console`` in the wheel, ``ui/`` in a checkout."""
    pkg = Path(appliance.__file__).parent
    for candidate in (pkg / "_console", pkg.parent / "ui"):
        if (candidate / "Home.py").exists():
            return candidate
    raise FileNotFoundError("the console (ui/Home.py) is not installed")


def console_command(settings: Settings) -> tuple[list[str], dict[str, str]]:
    ui = console_dir()
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(ui / "Home.py"),
        "--server.port", str(settings.console_port),
        "--server.address", settings.host,
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
    ]
    env = {**os.environ, "APPLIANCE_API_URL": settings.resolved_api_url,
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
           # Streamlit's start-up banner looks up "External URL" (an HTTP GET to
           # checkip.amazonaws.com) when bound to 0.0.0.0, as in the container.
           # An environment variable, not a flag: older releases ignore it.
           "STREAMLIT_LOGGER_HIDE_WELCOME_MESSAGE": "true"}
    return cmd, env


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], stop_requested: Callable[[], bool]) -> bool:
    """Wait until serve answers ``/healthz``; False once it exits or a stop is requested.

    No deadline: serve finishes unfinished claims before it listens, which can
    take a while after a crash; a serve that dies is noticed at once.
    """
    import httpx

    started = time.monotonic()
    noted = False
    while proc.poll() is None and not stop_requested():
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        if not noted and time.monotonic() - started > 30:
            print(f"appliance up: still waiting for serve at {url}/healthz", file=sys.stderr, flush=True)
            noted = True
        time.sleep(0.2)
    return False


class _Children:
    """The supervised children; each is sent at most one stop signal by ``up``.

    A second SIGTERM/SIGINT makes serve give up its clean shutdown (uvicorn
    and ``appliance serve`` treat it as "force quit"), so a child that was
    already sent a stop signal is left to finish, then killed after the grace.
    """

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.stop_signal: int | None = None
        self._signalled: set[int] = set()

    def spawn(self, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        # Own process group: a terminal's Ctrl-C reaches only `up`, which forwards it once.
        child = subprocess.Popen(cmd, env=env, process_group=0)
        self.procs.append(child)
        if self.stop_signal is not None:  # the signal came while the child was starting
            self._send(child, signal.SIGTERM)
        return child

    def forward(self, signum: int, _frame: FrameType | None = None) -> None:
        """The SIGTERM/SIGINT handler: remember the stop and pass it on as SIGTERM.

        Always SIGTERM: a SIGINT that reaches a child still initialising Python
        makes it die with "Fatal Python error" and status 1, where SIGTERM just
        ends it (and both serve and streamlit take SIGTERM as a clean stop).
        """
        if self.stop_signal is None:
            self.stop_signal = signum
        for child in self.procs:
            self._send(child, signal.SIGTERM)

    def _send(self, child: subprocess.Popen[bytes], signum: int) -> None:
        if child.pid not in self._signalled and child.poll() is None:
            self._signalled.add(child.pid)
            child.send_signal(signum)

    def wait_first(self) -> int:
        """Block until any child exits; return its code."""
        while True:
            for child in self.procs:
                code = child.poll()
                if code is not None:
                    return code
            time.sleep(0.3)

    def stop_all(self) -> None:
        for child in self.procs:
            self._send(child, signal.SIGTERM)
        deadline = time.monotonic() + _GRACE_SECONDS
        for child in self.procs:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def preflight(settings: Settings) -> str | None:
    """Why ``up`` cannot start on this home and these ports, or None.

    Checked before anything is seeded or spawned, so a second ``up`` (or
    ``./scripts/demo``) on a running appliance stops at once with a reason
    instead of printing "appliance is up" and then losing a race for the lock.
    """
    from appliance.store.db import ProcessLock

    pid = ProcessLock.holder(settings.lock_path)
    if pid is not None:
        who = f"PID {pid}" if pid > 0 else "another process"
        return (f"an appliance is already running on {settings.home.resolve()} ({who} holds "
                f"{settings.lock_path.name}); its API is {settings.resolved_api_url}. "
                "Stop it first, or pick another APPLIANCE_HOME")
    for what, variable, port in (("API", "APPLIANCE_PORT", settings.port),
                                 ("console", "APPLIANCE_CONSOLE_PORT", settings.console_port)):
        problem = port_problem(settings.host, port)
        if problem:
            return (f"the {what} port {port} on {settings.host} is not free ({problem}); another "
                    f"appliance or program uses it. Stop it, or set {variable}")
    return None


def port_problem(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on right now, or None (port 0 is always free)."""
    import socket

    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # as uvicorn does: a socket of a just-stopped server in TIME_WAIT does not count
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def run_up(settings: Settings, *, demo: bool) -> int:
    problem = preflight(settings)
    if problem:
        print(f"appliance up: {problem}", file=sys.stderr, flush=True)
        return 3
    env = {**os.environ, "APPLIANCE_HOME": str(settings.home)}
    children = _Children()
    previous = {sig: signal.signal(sig, children.forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    feeder = None
    try:
        if demo:
            from appliance.demo import seed_home

            settings.ensure_dirs()
            for line in seed_home(settings, demo=True):
                print(line, flush=True)
        if children.stop_signal is not None:
            return 0
        serve = children.spawn([sys.executable, "-m", "appliance", "serve"], env)

        def stopping() -> bool:
            return children.stop_signal is not None

        if _wait_healthy(settings.resolved_api_url, serve, stopping) and not stopping():
            cmd, cenv = console_command(settings)
            children.spawn(cmd, cenv)
            print(f"appliance is up: API {settings.resolved_api_url}  "
                  f"console http://{settings.host}:{settings.console_port}", flush=True)
            if demo:
                import logging

                from appliance.demo import DemoFeeder

                # the feeder runs in this process: its lines go where serve's do
                logging.basicConfig(level=settings.log_level.upper(),
                                    format="%(asctime)s %(levelname)s %(name)s: %(message)s")
                feeder = DemoFeeder(settings.inbox_dir)
                feeder.start()
        return _supervise(children)
    finally:
        if feeder is not None:
            feeder.stop()
        children.stop_all()  # a no-op after _supervise; stops serve if anything above raised
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _supervise(children: _Children) -> int:
    """Wait for the first child to exit, stop the others, and return the exit status for `up`."""
    first_code = children.wait_first()
    children.stop_all()
    if first_code in (0, -signal.SIGTERM, -signal.SIGINT):
        return 0
    # A child killed by signal n reads -n; report it the way a shell does (128 + n).
    return 128 - first_code if first_code < 0 else first_code
