"""Helpers shared by the test modules and conftest.py: real servers, real files.

pytest's ``pythonpath`` setting puts ``tests/support`` on sys.path, so tests
import this as ``appliance_test_support`` in either import mode, while
``import appliance`` still resolves to the installed wheel under CI.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

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


def tiny_onnx(bias: float = 1.0) -> bytes:
    """y = x + bias: a real, checker-clean ONNX model of one float input."""
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Add", ["x", "b"], ["y"])
    graph = helper.make_graph(
        [node], "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[helper.make_tensor("b", TensorProto.FLOAT, [1], [bias])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def logged_in(client: Any) -> Any:
    """Log a TestClient in as admin (the bearer header rides on every later request)."""
    token = client.post("/api/v1/auth/token",
                        json={"username": "admin", "password": ADMIN_PASSWORD}).json()
    client.headers["Authorization"] = f"Bearer {token['access_token']}"
    return client


def train_and_wait(client: Any, job_text: str, timeout: float = 120) -> dict[str, Any]:
    """POST a job file to /api/v1/runs, wait for the run to end and require it succeeded."""
    run = client.post("/api/v1/runs", json={"job": job_text}).json()
    deadline = time.monotonic() + timeout
    while (run := client.get(f"/api/v1/runs/{run['id']}").json())["status"] not in (
            "succeeded", "failed", "interrupted"):
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
    assert run["status"] == "succeeded", run["error"]
    return dict(run)
