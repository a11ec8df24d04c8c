"""What the benchmarks share: free ports and a real ``appliance serve`` to time against.

Imported by the sibling scripts as ``harness`` (``python bench/x.py`` puts
this folder on ``sys.path``); not a package and not a test.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

PASSWORD = "bench-password-123"
console = Console()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def appliance_command() -> list[str]:
    script = Path(sys.executable).with_name("appliance")
    if script.exists():
        return [str(script)]
    found = shutil.which("appliance")
    return [found] if found else [sys.executable, "-m", "appliance"]


@contextmanager
def running_server(home: Path, *, env: dict[str, str] | None = None,
                   log_name: str = "serve.log") -> Iterator[Any]:
    """``appliance serve`` on a free port over ``home``; yields a logged-in client."""
    from appliance.client import ApplianceClient
    from appliance.errors import ApplianceError

    port = free_port()
    full_env = {
        **os.environ,
        "APPLIANCE_HOME": str(home),
        "APPLIANCE_HOST": "127.0.0.1",
        "APPLIANCE_PORT": str(port),
        "APPLIANCE_ADMIN_PASSWORD": PASSWORD,
        **(env or {}),
    }
    home.mkdir(parents=True, exist_ok=True)
    log_path = home.parent / log_name
    console.print(f"  starting appliance serve on port {port} (log: {log_path})")
    with log_path.open("wb") as log:
        proc = subprocess.Popen([*appliance_command(), "serve"], env=full_env, stdout=log,
                                stderr=subprocess.STDOUT)
    client = ApplianceClient(f"http://127.0.0.1:{port}", timeout=60)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"appliance serve exited ({proc.returncode}):\n{log_path.read_text()}")
            try:
                if client.health().get("status") == "ok":
                    break
            except ApplianceError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"appliance serve not healthy in 120 s:\n{log_path.read_text()}")
            time.sleep(0.1)
        client.login("admin", PASSWORD)
        yield client
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
