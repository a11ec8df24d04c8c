"""SQL for backups: a consistent export of the store and a checked re-import.

The export is DuckDB's own ``EXPORT DATABASE ... (FORMAT PARQUET)``: one
Parquet file per table plus ``schema.sql``/``load.sql``, so an operator can
also ``IMPORT DATABASE`` the folder by hand. The restore does not run the SQL
files a backup carries (a backup is data, not code): it builds the schema from
this package's own numbered migrations, up to the level the backup was taken
at, and loads each table it knows by column name from ``<table>.parquet``.
``Store.open()`` then applies any newer migrations as on any start.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from appliance.errors import Conflict, InvalidInput
from appliance.store import dialect
from appliance.store.db import Store
from appliance.store.migrations import migration_files

MIGRATIONS_TABLE = "schema_migrations"
_TABLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


@dataclass
class Snapshot:
    """What the export saw, all from one transaction."""

    migrations: list[tuple[int, str]]
    tables: dict[str, int]  # table -> rows
    parquet_paths: list[str]  # dataset versions' files, relative to the home
    artifact_shas: list[str]  # every artifact a row refers to
    extra: Any = None  # whatever the caller's on_locked returned
    counts: dict[str, int] = field(default_factory=dict)


def export_snapshot(store: Store, out_dir: Path, on_locked: Callable[[], Any]) -> Snapshot:
    """Export every table to ``out_dir`` and run ``on_locked`` before any writer can commit.

    The store's write lock is held throughout (no other transaction commits in
    between), so the export, the row counts, the files the rows refer to and
    whatever ``on_locked`` records (the file listing, ``audit.head``) all
    describe the same moment. A degraded store is read-only: no lock needed.
    """
    if store.postgres:
        raise Conflict(
            "`appliance backup` exports the embedded DuckDB store; with APPLIANCE_STORE_URL "
            "on PostgreSQL, back up with pg_dump plus the files (docs/scale-out.md)")
    lock: Any = contextlib.nullcontext() if store.degraded else store._write_lock
    with lock, _begin(store) as conn:
        conn.execute(text(f"EXPORT DATABASE {_literal(out_dir)} (FORMAT PARQUET)"))
        tables = {name: _count(conn, name) for name in _tables(conn)}
        for name in tables:
            if not (out_dir / f"{name}.parquet").is_file():
                raise InvalidInput(f"the export wrote no {name}.parquet; backup abandoned")
        migrations = [(int(v), str(n)) for v, n in conn.execute(
            text(f"SELECT version, name FROM {MIGRATIONS_TABLE} ORDER BY version"))]
        snap = Snapshot(migrations=migrations, tables=tables,
                        parquet_paths=_referenced_parquet(conn),
                        artifact_shas=_referenced_artifacts(conn),
                        counts=_counts(conn))
        snap.extra = on_locked()
    return snap


def import_snapshot(db_path: Path, db_dir: Path, *, level: int,
                    expected_rows: dict[str, int]) -> dict[str, int]:
    """Build a new store file at ``db_path`` from an export in ``db_dir``.

    The schema comes from this package's migrations 1..``level``; each table is
    filled from ``db_dir/<table>.parquet`` by column name and its row count
    checked against ``expected_rows``. Returns the rows loaded per table.
    Raises InvalidInput when the export does not fit the schema.
    """
    known = {n for n, _, _ in migration_files()}
    if level not in known:
        raise InvalidInput(f"the backup is at schema migration {level}, which this version "
                           "of the appliance does not know (newer backup?)")
    store = Store(db_path, lock_path=db_path.with_name(db_path.name + ".lock"))
    store.open(migrate=False)
    try:
        engine = store._engine()
        with engine.begin() as conn:
            _apply_migrations_upto(conn, level)
            tables = _tables(conn)
            missing = sorted(set(tables) - set(expected_rows))
            unknown = sorted(set(expected_rows) - set(tables))
            if missing or unknown:
                raise InvalidInput(
                    "the backup's tables do not match its schema level",
                    detail={"missing": missing, "unknown": unknown, "level": level})
            loaded: dict[str, int] = {}
            for name in tables:
                parquet = db_dir / f"{name}.parquet"
                columns = _columns(conn, name)
                cols = ", ".join(f'"{c}"' for c in columns)
                try:
                    conn.execute(text(f'INSERT INTO "{name}" ({cols}) SELECT {cols} '
                                      f"FROM read_parquet({_literal(parquet)})"))
                except DBAPIError as exc:
                    raise InvalidInput(f"table {name} cannot be loaded from the backup: "
                                       f"{str(exc.orig).splitlines()[0][:300]}") from exc
                loaded[name] = _count(conn, name)
                if loaded[name] != expected_rows[name]:
                    raise InvalidInput(f"table {name} has {loaded[name]} rows in the backup; "
                                       f"its manifest says {expected_rows[name]}")
            versions = [int(v) for (v,) in conn.execute(
                text(f"SELECT version FROM {MIGRATIONS_TABLE} ORDER BY version"))]
            want = [n for n, _, _ in migration_files() if n <= level]
            if versions != want:
                raise InvalidInput(f"the backup's migration record {versions} does not match "
                                   f"its schema level {level}")
        with engine.begin() as conn:
            conn.execute(text("CHECKPOINT"))
    finally:
        store.close()
        store.lock.path.unlink(missing_ok=True)
    return loaded


def references(store: Store) -> tuple[list[str], list[str]]:
    """(dataset Parquet paths, artifact sha256s) the store's rows refer to."""
    with _begin(store) as conn:
        return _referenced_parquet(conn), _referenced_artifacts(conn)


def counts(store: Store) -> dict[str, int]:
    """Headline counts, for reports: datasets, versions, runs, models, aliases, ..."""
    with _begin(store) as conn:
        return _counts(conn)


# -- helpers ------------------------------------------------------------------


@contextlib.contextmanager
def _begin(store: Store) -> Iterator[Connection]:
    with store._engine().begin() as conn:
        yield conn


def _literal(path: Path) -> str:
    """A path as a SQL string literal (DuckDB takes no parameter for EXPORT's target)."""
    return "'" + str(path).replace("'", "''") + "'"


def _tables(conn: Connection) -> list[str]:
    rows = conn.execute(text(
        "SELECT table_name FROM information_schema.tables "
        f"WHERE table_schema = {dialect.of(conn).schema} AND table_type = 'BASE TABLE' "
        "ORDER BY table_name"))
    names = [str(r[0]) for r in rows]
    for n in names:
        if not _TABLE_NAME.fullmatch(n):  # never expected: our migrations name the tables
            raise InvalidInput(f"unexpected table name {n!r} in the store")
    return names


def _columns(conn: Connection, table: str) -> list[str]:
    rows = conn.execute(text(
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = {dialect.of(conn).schema} "
        "AND table_name = :t ORDER BY ordinal_position"), {"t": table})
    return [str(r[0]).replace('"', '""') for r in rows]


def _count(conn: Connection, table: str) -> int:
    return int(conn.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one())


def _apply_migrations_upto(conn: Connection, level: int) -> None:
    from appliance.store.migrations import _statements

    conn.execute(text(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (version INTEGER PRIMARY KEY, "
        "name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"))
    for number, _name, sql in migration_files():
        if number > level:
            break
        for statement in _statements(sql):
            conn.execute(text(statement))


def _referenced_parquet(conn: Connection) -> list[str]:
    rows = conn.execute(text("SELECT DISTINCT parquet_path FROM dataset_versions "
                             "ORDER BY parquet_path"))
    return [str(r[0]) for r in rows]


def _referenced_artifacts(conn: Connection) -> list[str]:
    rows = conn.execute(text(
        "SELECT sha256 FROM run_artifacts UNION SELECT onnx_sha256 FROM model_versions "
        "UNION SELECT outlier_sha256 FROM model_versions WHERE outlier_sha256 IS NOT NULL "
        "ORDER BY 1"))
    return [str(r[0]) for r in rows]


def _counts(conn: Connection) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, table in (("datasets", "datasets"), ("dataset_versions", "dataset_versions"),
                       ("contracts", "contracts"), ("runs", "runs"),
                       ("models", "registered_models"), ("model_versions", "model_versions"),
                       ("alias_events", "alias_events"), ("predictions", "predictions"),
                       ("users", "users"), ("audit_events", "audit_events")):
        out[key] = _count(conn, table)
    return out
