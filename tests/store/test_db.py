"""The store: real DuckDB files (and a real PostgreSQL), numbered migrations, the
one-writer lock."""

from __future__ import annotations

from pathlib import Path

import pytest
from pg_testing import store_at
from sqlmodel import SQLModel

from appliance.errors import StoreLocked
from appliance.store.db import ProcessLock, Store
from appliance.store.migrations import migration_files
from appliance.store.tables import DatasetRow


def test_open_store_applies_every_migration_once(tmp_path: Path, store_url: str | None) -> None:
    db = tmp_path / "a.duckdb"
    with store_at(db, store_url) as store:
        first = store.execute("SELECT version FROM schema_migrations ORDER BY version")
    with store_at(db, store_url) as store:
        again = store.execute("SELECT version FROM schema_migrations ORDER BY version")
    assert [r[0] for r in first] == [n for n, _, _ in migration_files()]
    assert again == first


def test_migrated_schema_matches_table_classes(tmp_path: Path, store_url: str | None) -> None:
    with store_at(tmp_path / "a.duckdb", store_url) as store:
        for table in SQLModel.metadata.sorted_tables:
            rows = store.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = :t",
                {"t": table.name},
            )
            assert {r[0] for r in rows} == {c.name for c in table.columns}, table.name


def test_open_store_twice_fails_fast_naming_the_pid(tmp_path: Path) -> None:
    db = tmp_path / "a.duckdb"
    with Store(db):
        with pytest.raises(StoreLocked, match=r"store is locked by PID \d+"):
            Store(db).open()
        assert ProcessLock.holder(db.with_suffix(".lock")) is not None
    assert ProcessLock.holder(db.with_suffix(".lock")) is None


def test_write_rolls_back_the_whole_transaction_on_error(tmp_path: Path,
                                                        store_url: str | None) -> None:
    with store_at(tmp_path / "a.duckdb", store_url) as store:
        with pytest.raises(RuntimeError), store.write() as s:
            s.add(DatasetRow(name="half"))
            s.flush()
            raise RuntimeError("boom")
        assert store.execute("SELECT count(*) FROM datasets") == [(0,)]


def test_committed_rows_survive_a_reopen(tmp_path: Path, store_url: str | None) -> None:
    db = tmp_path / "a.duckdb"
    with store_at(db, store_url) as store, store.write() as s:
        s.add(DatasetRow(name="kept"))
    with store_at(db, store_url) as store:
        assert store.execute("SELECT name FROM datasets") == [("kept",)]
