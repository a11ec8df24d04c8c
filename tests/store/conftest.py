"""The store's tests run on both engines: the embedded DuckDB file and a real PostgreSQL.

``engine`` is a fixture parameter; its PostgreSQL runs are marked ``postgres`` (a
server from pgserver, or Debian's binaries; skipped with the reason when neither is
present; see tests/support/pg_testing.py: as root, pgserver adds a system user). The
server and the migrated template are tests/conftest.py's session fixtures.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_testing import PgServer, fresh_database, store_at

from appliance.store.db import Store

ENGINES = ["duckdb", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """An empty PostgreSQL database of this test's own."""
    with fresh_database(pg_server) as url:
        yield url


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
