"""``appliance up``: serve and the console as supervised children.

Signals (SIGTERM, SIGINT) are forwarded to both children; when either child
exits, the other is stopped too and ``up`` exits with the first one's code,
so a container restarts cleanly instead of running half an appliance.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
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
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    return cmd, env


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> bool:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(url + "/healthz", timeout=1.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def run_up(settings: Settings, *, demo: bool) -> int:
    env = {**os.environ, "APPLIANCE_HOME": str(settings.home)}
    if demo:
        from appliance.demo import seed_home

        settings.ensure_dirs()
        for line in seed_home(settings, demo=True):
            print(line, flush=True)
    serve = subprocess.Popen([sys.executable, "-m", "appliance", "serve"], env=env)
    children: list[subprocess.Popen[bytes]] = [serve]
    stopping = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    feeder = None
    if _wait_healthy(settings.resolved_api_url, serve):
        cmd, cenv = console_command(settings)
        children.append(subprocess.Popen(cmd, env=cenv))
        print(f"appliance is up: API {settings.resolved_api_url}  "
              f"console http://{settings.host}:{settings.console_port}", flush=True)
        if demo:
            from appliance.demo import DemoFeeder

            feeder = DemoFeeder(settings.inbox_dir)
            feeder.start()
    code = _supervise(children, lambda: stopping)
    if feeder is not None:
        feeder.stop()
    return code


def _supervise(children: list[subprocess.Popen[bytes]], stopping: object) -> int:
    first_code: int | None = None
    while first_code is None:
        for child in children:
            code = child.poll()
            if code is not None:
                first_code = code
                break
        else:
            time.sleep(0.3)
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + _GRACE_SECONDS
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
    return 0 if first_code in (0, -signal.SIGTERM, -signal.SIGINT) else int(first_code)
