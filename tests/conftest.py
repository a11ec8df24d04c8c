"""Shared fixtures: real DuckDB files in tmp_path, real serve processes on free ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from appliance.client import ApplianceClient
from appliance.config import Settings

ADMIN_PASSWORD = "admin-password-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_settings(home: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "home": home,
        "admin_password": ADMIN_PASSWORD,
        "inbox_poll_seconds": 0.2,
        "inbox_min_age_seconds": 0.5,
        "parse_timeout_seconds": 120,
    }
    base.update(overrides)
    return Settings(**base)


def drop_file(inbox: Path, dataset: str, name: str, content: bytes) -> Path:
    """Drop the way the protocol asks: write a hidden .part, then rename into place."""
    folder = inbox / dataset
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.part"
    tmp.write_bytes(content)
    final = folder / name
    os.rename(tmp, final)
    return final


@dataclass
class ServerProcess:
    home: Path
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    admin_password: str = ADMIN_PASSWORD
    _token: str | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> ApplianceClient:
        c = ApplianceClient(self.url, token=self._token)
        if self._token is None:
            c.login("admin", self.admin_password)
            self._token = c.token
        return c

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ingests(self, dataset: str | None = None) -> list[dict[str, Any]]:
        with self.client() as c:
            return c.ingests(dataset=dataset, limit=1000)

    def wait_for_ingest(self, name: str, *, known: set[str], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for row in self.ingests():
                if row["file_name"] == name and row["id"] not in known:
                    return row
            time.sleep(0.1)
        raise AssertionError(f"{name} was not ingested within {timeout}s\n{self.log()[-3000:]}")

    def wait_for_summaries(self, dataset: str, timeout: float = 60) -> None:
        """Column summaries follow a version by a moment: wait until all are ready."""
        deadline = time.monotonic() + timeout
        with self.client() as c:
            while time.monotonic() < deadline:
                pending = [v["number"] for v in c.versions(dataset)
                           if c.version(dataset, v["number"])["summary_status"] != "ready"]
                if not pending:
                    return
                time.sleep(0.05)
        raise AssertionError(f"{dataset} versions {pending} have no summary after {timeout}s")

    def drop(self, dataset: str, name: str, content: bytes, timeout: float = 60) -> dict[str, Any]:
        known = {r["id"] for r in self.ingests()}
        drop_file(self.home / "inbox", dataset, name, content)
        return self.wait_for_ingest(name, known=known, timeout=timeout)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def start_server(home: Path, *, port: int | None = None, env: dict[str, str] | None = None,
                 wait: bool = True) -> ServerProcess:
    port = port or free_port()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home.parent / f"serve-{port}.log"
    full_env = {
        **os.environ,
        "APPLIANCE_HOME": str(home),
        "APPLIANCE_PORT": str(port),
        "APPLIANCE_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "APPLIANCE_INBOX_POLL_SECONDS": "0.2",
        "APPLIANCE_INBOX_MIN_AGE_SECONDS": "0.5",
        "APPLIANCE_LOG_LEVEL": "warning",
        **(env or {}),
    }
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "appliance", "serve"], env=full_env,
                                stdout=log, stderr=subprocess.STDOUT)
    server = ServerProcess(home=home, port=port, proc=proc, log_path=log_path)
    if wait:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited with {proc.returncode}:\n{server.log()}")
            try:
                if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        server.stop(signal.SIGKILL)
        raise AssertionError(f"serve did not become healthy:\n{server.log()}")
    return server


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real `appliance serve` for the read-mostly tests of a session."""
    server = start_server(tmp_path_factory.mktemp("live") / "home")
    yield server
    server.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    """Start private servers (for crash, lock and ingestion tests); all stopped at the end."""
    started: list[ServerProcess] = []

    def make(home: Path | None = None, **kwargs: Any) -> ServerProcess:
        s = start_server(home or tmp_path / "home", **kwargs)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop(signal.SIGKILL)


@pytest.fixture
def appliance_app(tmp_path: Path) -> Iterator[Any]:
    """An in-process appliance on a real DuckDB file (no watcher thread running)."""
    from appliance.runtime import build

    app = build(make_settings(tmp_path / "home"))
    yield app
    app.close()


@pytest.fixture
def api(appliance_app: Any) -> Iterator[Any]:
    """A TestClient over the real app factory, logged in as admin."""
    from fastapi.testclient import TestClient

    from appliance.api.app import create_app

    with TestClient(create_app(appliance_app)) as c:
        token = c.post("/api/v1/auth/token",
                       json={"username": "admin", "password": ADMIN_PASSWORD}).json()
        c.headers["Authorization"] = f"Bearer {token['access_token']}"
        yield c


@pytest.fixture
def settings_for() -> Any:
    """Build test Settings for a home folder (the same knobs the servers get)."""
    return make_settings


@pytest.fixture
def drop() -> Any:
    """Drop a file into an inbox the way the protocol asks (write .part, rename)."""
    return drop_file
