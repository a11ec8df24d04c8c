"""Several real `appliance serve` processes sharing one PostgreSQL (and an S3 bucket):
the scale-out tests' hosts (docs/scale-out.md).

Each host has a home of its own (its lock, cache, claimed files and audit anchor); what
they share comes in as settings: the store URL, the object store, the jobs folder. A
new home gets the audit anchor of a running host before its first start, as the
operator is told to copy it (docs/scale-out.md, limits of the lease).
"""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from appliance_test_support import ADMIN_PASSWORD, ServerProcess, start_server


@dataclass
class Hosts:
    """The hosts of one installation: ``start(name)`` starts (or restarts) the host whose
    home is ``root/<name>/home`` with the shared ``env``."""

    root: Path
    env: dict[str, str]
    running: dict[str, ServerProcess] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def home(self, name: str) -> Path:
        return self.root / name / "home"

    def start(self, name: str) -> ServerProcess:
        """Start host ``name``; a restart keeps its home and its port (the load balancer's
        address for it)."""
        home = self.home(name)
        if not (home / "audit.head").exists() and self.running:
            anchor = next(iter(self.running.values())).home / "audit.head"
            home.mkdir(parents=True, exist_ok=True)
            shutil.copy(anchor, home / "audit.head")
        server = start_server(home, port=self.ports.get(name), env=self.env)
        self.ports[name] = server.port
        self.running[name] = server
        return server

    def kill(self, name: str) -> float:
        """kill -9 host ``name``; the monotonic time it was dead."""
        server = self.running.pop(name)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(10)
        return time.monotonic()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def stop_all(self) -> None:
        for server in self.running.values():
            server.stop(signal.SIGKILL)
        self.running.clear()


def is_leader(url: str) -> bool:
    """What the host's ``/healthz`` says (False when it does not answer)."""
    try:
        answer = httpx.get(url + "/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200 and bool(answer.json()["leader"])


def token(url: str) -> str:
    """An admin bearer token: stored in the shared database, so it works on every host."""
    answer = httpx.post(url + "/api/v1/auth/token",
                        json={"username": "admin", "password": ADMIN_PASSWORD}, timeout=10)
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def wait_until(check: Callable[[], Any], timeout: float, what: str, *,
               poll: float = 0.1) -> Any:
    """``check()``'s first truthy value; fails naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        out = check()
        if out:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)
