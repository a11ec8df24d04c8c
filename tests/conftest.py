"""Shared fixtures: real DuckDB files in tmp_path, real serve processes on free ports, and
the engines of scale-out (one PostgreSQL and one moto S3 server per session)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import (
    ServerProcess,
    drop_file,
    logged_in,
    make_settings,
    start_server,
)
from pg_testing import PgServer, migrated_template, session_server, why_no_postgres
from s3_testing import moto_server


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
        logged_in(c)
        yield c


@pytest.fixture
def settings_for() -> Any:
    """Build test Settings for a home folder (the same knobs the servers get)."""
    return make_settings


@pytest.fixture
def drop() -> Any:
    """Drop a file into an inbox the way the protocol asks (write .part, rename)."""
    return drop_file


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A real PostgreSQL for the session (pgserver's, or Debian's binaries; skipped with the
    reason when neither is present; as root, pgserver adds a system user)."""
    reason = why_no_postgres()
    if reason:
        pytest.skip(reason)
    with session_server() as server:
        yield server


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database `appliance migrate` brought to the current schema, to copy per test."""
    return migrated_template(pg_server, tmp_path_factory.mktemp("tpl"))


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto S3 server with the test bucket in it."""
    pytest.importorskip("moto.server",
                        reason="moto[server] is not installed (it is in the `test` extra)")
    with moto_server() as endpoint:
        yield endpoint
