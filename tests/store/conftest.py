"""The store's tests run on both engines: the embedded DuckDB file and a real PostgreSQL.

``engine`` is a fixture parameter; its PostgreSQL runs are marked ``postgres`` (a
server from pgserver, or Debian's binaries; skipped with the reason when neither is
present; see tests/support/pg_testing.py: as root, pgserver adds a system user).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_testing import (
    PgServer,
    fresh_database,
    migrated_template,
    start,
    store_at,
    why_no_postgres,
)

from appliance.store.db import Store

ENGINES = ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    reason = why_no_postgres()
    if reason:
        pytest.skip(reason)
    # not under pytest's basetemp: it is 0700 (the server runs as another user when we are
    # root) and other pytest runs of this user prune old basetemps while we run
    base = Path(tempfile.mkdtemp(prefix="appliance-pg-"))
    server = start(base)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """An empty PostgreSQL database of this test's own."""
    with fresh_database(pg_server) as url:
        yield url


@pytest.fixture(scope="session")
def pg_template(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated_template(pg_server, tmp_path_factory.mktemp("tpl"))


@pytest.fixture(params=ENGINES)
def store_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """None: the embedded DuckDB file; else a PostgreSQL database of this test's own,
    already at the current schema (a copy of a database `appliance migrate` migrated)."""
    if request.param == "duckdb":
        yield None
        return
    server = request.getfixturevalue("pg_server")
    with fresh_database(server, request.getfixturevalue("pg_template")) as url:
        yield url


@pytest.fixture
def store(store_url: str | None, tmp_path: Path) -> Iterator[Store]:
    opened = store_at(tmp_path / "a.duckdb", store_url).open()
    yield opened
    opened.close()
