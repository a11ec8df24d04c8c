"""``appliance up``: serve plus the console as supervised children, as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from appliance_test_support import ADMIN_PASSWORD, ServerProcess, free_port

from appliance.client import ApplianceClient


@dataclass
class UpProcess:
    home: Path
    port: int
    console_port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def console_url(self) -> str:
        return f"http://127.0.0.1:{self.console_port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def child(self, verb: str) -> psutil.Process:
        for p in psutil.Process(self.proc.pid).children():
            try:
                cmd = p.cmdline()
            except psutil.NoSuchProcess:
                continue
            if verb in cmd or (verb == "console" and "streamlit" in cmd):
                return p
        raise AssertionError(f"no {verb} child of up (PID {self.proc.pid})")

    def wait_exit(self, timeout: float = 20) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"up did not exit within {timeout}s\n{self.log()[-3000:]}") from None


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until(cond: Callable[[], bool], up: UpProcess, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        if up.proc.poll() is not None:
            raise AssertionError(f"up exited with {up.proc.returncode} waiting for {what}\n{up.log()}")
        time.sleep(0.1)
    raise AssertionError(f"{what} not within {timeout}s\n{up.log()[-3000:]}")


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[Callable[..., UpProcess]]:
    """Start `python -m appliance up ARGS` on free ports; whatever is left is killed at the end."""
    started: list[UpProcess] = []

    def start(*args: str, home: Path | None = None, port: int | None = None) -> UpProcess:
        home = home or tmp_path / "home"
        port, console_port = port or free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
        env.update({
            "APPLIANCE_HOME": str(home),
            "APPLIANCE_PORT": str(port),
            "APPLIANCE_CONSOLE_PORT": str(console_port),
            "APPLIANCE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "APPLIANCE_INBOX_POLL_SECONDS": "0.2",
            "APPLIANCE_INBOX_MIN_AGE_SECONDS": "0.5",
            "APPLIANCE_LOG_LEVEL": "warning",
        })
        log_path = tmp_path / f"up-{port}.log"
        with log_path.open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "appliance", "up", *args], env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
        up = UpProcess(home, port, console_port, proc, log_path)
        started.append(up)
        return up

    yield start
    for up in started:
        leftovers = up.children()
        if up.proc.poll() is None:
            up.proc.kill()
            up.proc.wait()
        for p in leftovers:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass


def wait_running(up: UpProcess) -> None:
    wait_until(lambda: _ok(up.api_url + "/healthz"), up, "the API's /healthz")
    wait_until(lambda: _ok(up.console_url + "/_stcore/health"), up, "the console's /_stcore/health")


def assert_all_gone(procs: list[psutil.Process]) -> None:
    _, alive = psutil.wait_procs(procs, timeout=5)
    assert not alive, f"children left running: {[(p.pid, p.cmdline()) for p in alive]}"


def test_run_up_serves_api_and_console_then_stops_both_on_sigterm(start_up: Callable[..., UpProcess],
                                                                  server_factory: Any) -> None:
    up = start_up()
    wait_running(up)
    assert _ok(up.console_url + "/")
    children = up.children()
    serve, console = up.child("serve"), up.child("console")
    assert {serve, console} <= set(children)

    started = time.monotonic()
    up.proc.send_signal(signal.SIGTERM)
    assert up.wait_exit(20) == 0, up.log()[-3000:]
    assert time.monotonic() - started < 20
    assert_all_gone(children)
    assert "Traceback" not in up.log()

    server: ServerProcess = server_factory(up.home)  # the store lock was released
    with server.client() as c:
        assert c.health()["status"] == "ok"


def test_stop_up_when_serve_child_dies_exits_nonzero(start_up: Callable[..., UpProcess]) -> None:
    up = start_up()
    wait_running(up)
    children = up.children()
    up.child("serve").kill()  # SIGKILL

    code = up.wait_exit(20)
    assert code == 128 + signal.SIGKILL, up.log()[-3000:]
    assert_all_gone(children)
    assert not _ok(up.console_url + "/_stcore/health")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_stop_up_on_signal_before_console_started(start_up: Callable[..., UpProcess],
                                                  sig: signal.Signals) -> None:
    up = start_up()
    deadline = time.monotonic() + 30
    while not any("serve" in _cmdline(p) for p in up.children()):
        assert time.monotonic() < deadline and up.proc.poll() is None, up.log()
        time.sleep(0.02)
    children = up.children()
    up.proc.send_signal(sig)  # serve is starting; /healthz does not answer yet

    assert up.wait_exit(20) == 0, up.log()[-3000:]
    assert_all_gone(children)
    assert "appliance is up" not in up.log()
    assert not any("streamlit" in _cmdline(p) for p in children)


def test_run_up_demo_ingests_customers(start_up: Callable[..., UpProcess]) -> None:
    up = start_up("--demo")
    wait_until(lambda: _ok(up.api_url + "/healthz"), up, "the API's /healthz")
    with ApplianceClient(up.api_url) as c:
        c.login("admin", ADMIN_PASSWORD)

        def customers_accepted() -> bool:
            return any(d["name"] == "customers" and d["current_version"] for d in c.datasets())

        wait_until(customers_accepted, up, "an accepted version of customers", timeout=30)
        versions = c.versions("customers")
    assert any(v["status"] == "accepted" for v in versions)
    assert (up.home / "jobs").is_dir() and list((up.home / "jobs").glob("*.yaml"))
    up.proc.send_signal(signal.SIGTERM)
    assert up.wait_exit(20) == 0, up.log()[-3000:]


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.NoSuchProcess:
        return []


def test_refuse_a_second_up_on_a_running_home_at_once(start_up: Callable[..., UpProcess]) -> None:
    first = start_up("--demo")
    wait_running(first)
    started = time.monotonic()
    second = start_up("--demo")
    assert second.wait_exit(20) == 3
    assert time.monotonic() - started < 15  # before any child is spawned or waited for
    log = second.log()
    assert "an appliance is already running on" in log, log
    assert f"PID {first.child('serve').pid} holds appliance.lock" in log, log
    assert "appliance is up" not in log and "demo data" not in log and "Traceback" not in log
    assert _ok(first.api_url + "/healthz")  # the first one is untouched


def test_refuse_up_when_the_api_port_is_taken_before_seeding(start_up: Callable[..., UpProcess],
                                                            tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        up = start_up("--demo", home=tmp_path / "other", port=port)
        assert up.wait_exit(20) == 3
    log = up.log()
    assert f"the API port {port} on 127.0.0.1 is not free" in log and "APPLIANCE_PORT" in log
    assert "appliance is up" not in log
    assert not (tmp_path / "other" / ".demo-seeded").exists()  # nothing was seeded
