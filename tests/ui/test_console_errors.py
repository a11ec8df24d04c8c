"""The console says what really happened: only a refused connection is an outage.

The Models page once showed a red "API is not reachable" banner while the API
was healthy. The cause: the Markdown card answered 500, Starlette re-raised the
handled error to uvicorn, uvicorn closed the kept-alive connection, and the
page's next request on it (the JSON card) failed with "connection reset", which
the client reported as status 0 and the console as an outage. These tests use
real sockets and a real uvicorn server for each failure.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import ADMIN_PASSWORD, free_port, make_settings, tiny_onnx
from streamlit.testing.v1 import AppTest

from appliance.client import CONNECTION_DROPPED, CONNECTION_REFUSED, TIMEOUT, ApplianceClient
from appliance.domain.principal import SYSTEM
from appliance.errors import RemoteError

from .console_testing import MODELS_PAGE, console_lib, log_in, new_console, open_page, texts

UNREACHABLE = "not reachable"


@contextmanager
def raw_server(behaviour: str) -> Iterator[str]:
    """A loopback socket that accepts, reads a request, then never answers ("silent"), hangs
    up ("hangup"), or hangs up on the first connection only and answers ``[]`` after."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.recv(65536)
            if behaviour == "hangup" or (behaviour == "hangup-once" and not held):
                conn.close()
                held.append(conn)
            elif behaviour == "hangup-once":
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: 2\r\n\r\n[]")
                held.append(conn)
            else:
                held.append(conn)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        listener.close()


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """``app`` served by a real uvicorn on a free port, in a thread, the way `serve` runs it."""
    import uvicorn

    from appliance.api.edge import keep_alive_after_errors

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(keep_alive_after_errors(app), host="127.0.0.1",
                                           port=port, log_level="critical", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def failure(url: str, **kwargs: Any) -> RemoteError:
    with ApplianceClient(url, **kwargs) as client, pytest.raises(RemoteError) as caught:
        client.get("/datasets")
    return caught.value


def test_error_text_calls_a_refused_connection_unreachable() -> None:
    exc = failure(f"http://127.0.0.1:{free_port()}")
    assert (exc.status, exc.remote_kind) == (0, CONNECTION_REFUSED)
    assert UNREACHABLE in console_lib().error_text(exc)


def test_error_text_reports_a_slow_api_as_a_timeout_not_an_outage() -> None:
    with raw_server("silent") as url:
        exc = failure(url, timeout=0.5)
    assert (exc.status, exc.remote_kind) == (0, TIMEOUT)
    text = console_lib().error_text(exc)
    assert "timed out" in text and UNREACHABLE not in text


def test_error_text_reports_a_dropped_connection_not_an_outage() -> None:
    with raw_server("hangup") as url:
        exc = failure(url, timeout=5)
    assert (exc.status, exc.remote_kind) == (0, CONNECTION_DROPPED)
    text = console_lib().error_text(exc)
    assert "broke before it answered" in text and UNREACHABLE not in text


def test_error_text_reports_a_server_error_with_its_status() -> None:
    exc = RemoteError(500, "internal", "internal error; see the server log")
    assert console_lib().error_text(exc) == (
        "The API failed on this request (HTTP 500): internal error; see the server log")


@pytest.fixture
def failing_card_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real API (uvicorn) with model ``boom`` v1 whose Markdown card raises."""
    from appliance.api.app import create_app
    from appliance.runtime import build

    app = build(make_settings(tmp_path / "home"))
    try:
        app.registry.register_upload("boom", tiny_onnx(), by=SYSTEM)

        def broken(*_: Any, **__: Any) -> str:
            raise RuntimeError("the renderer broke")

        monkeypatch.setattr(app.registry, "card_markdown", broken)
        with uvicorn_server(create_app(app)) as url:
            yield url
    finally:
        app.close()


def test_keep_connection_open_after_a_server_error(failing_card_api: str) -> None:
    import httpx

    token = ApplianceClient(failing_card_api).login("admin", ADMIN_PASSWORD)["access_token"]
    card = "/api/v1/models/boom/versions/1/card"
    with httpx.Client(base_url=failing_card_api, timeout=10,
                      headers={"Authorization": f"Bearer {token}"}) as plain:  # no retries
        for _ in range(10):
            assert plain.get(card, params={"format": "md"}).status_code == 500
            assert plain.get(card).json()["model"] == "boom"


@pytest.mark.parametrize(("method", "answered"), [("GET", True), ("POST", False)])
def test_client_resends_only_a_read_on_a_connection_dropped_unanswered(method: str,
                                                                       answered: bool) -> None:
    with raw_server("hangup-once") as url, ApplianceClient(url, timeout=5) as client:
        if answered:
            assert client.request(method, "/datasets") == []
        else:
            with pytest.raises(RemoteError) as caught:
                client.request(method, "/datasets")
            assert caught.value.remote_kind == CONNECTION_DROPPED


def test_models_page_shows_a_failing_card_as_a_failure_not_an_outage(
        failing_card_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APPLIANCE_API_URL", failing_card_api)
    at: AppTest = open_page(log_in(new_console(), "admin", ADMIN_PASSWORD), MODELS_PAGE)
    assert not at.exception, [e.message for e in at.exception]
    errors = texts(at.error)
    assert errors == ["The model card could not be loaded: The API failed on this request "
                      "(HTTP 500): internal error; see the server log"]
    assert all(UNREACHABLE not in e for e in errors)
    assert any('"model":"boom"' in j.value.replace(" ", "") for j in at.json)  # the JSON card
