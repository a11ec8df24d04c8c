"""Numbered schema migrations, applied in order at start or by ``appliance migrate``.

Each ``NNNN_name.sql`` runs once, in its own transaction, and is recorded in
``schema_migrations``. DDL stays here, off hot paths.

A store that records a migration this package does not ship (a number it
does not know, or a known number under another name) was written by a newer
appliance: it is refused before anything runs, never migrated "down" or
guessed at.

On PostgreSQL (several hosts, one database) the whole run holds an advisory
lock on a connection of its own: a second migrator waits for the first, then
reads the record again and finds nothing left to do. The DDL is portable
(``DOUBLE PRECISION``, not DuckDB's ``DOUBLE``; both engines read it the same).
Only the number and the name of a migration are recorded, no checksum: 0001-0007
were edited in place from ``DOUBLE`` to ``DOUBLE PRECISION``, which DuckDB
spells the same type, so stores migrated before read exactly as new ones.

A server never migrates a shared database that has a schema: it refuses an old one
(``appliance migrate`` is the way). The one exception is an empty database, a fresh
install, which ``migrate_empty`` migrates under the same lock, as the embedded store
migrates a fresh home.

This package sits below ``appliance.store.db``: it knows the migration files and
applies them on an engine; opening a store (and ``migrate``, which opens one
for ``appliance migrate``) is ``db``'s business.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from appliance.errors import StoreUnavailable

_CREATE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    number: int
    name: str

    def __str__(self) -> str:
        return f"{self.number:04d}_{self.name}"


@dataclass(frozen=True)
class MigrationReport:
    """What ``appliance migrate`` did to one store."""

    path: str
    level_before: int | None  # None: the store had no schema_migrations table
    level: int
    applied: tuple[Migration, ...]
    known: tuple[Migration, ...]  # every migration this appliance ships


def migration_files() -> list[tuple[int, str, str]]:
    """(number, name, sql) for every numbered migration shipped in this package."""
    out = []
    for entry in resources.files(__name__).iterdir():
        m = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if m:
            out.append((int(m.group(1)), m.group(2), entry.read_text()))
    return sorted(out)


def known_migrations() -> list[Migration]:
    return [Migration(number, name) for number, name, _sql in migration_files()]


def _recorded(conn: Connection) -> list[Migration]:
    rows = conn.execute(text("SELECT version, name FROM schema_migrations ORDER BY version"))
    return [Migration(int(v), str(n)) for v, n in rows]


def check_known(recorded: list[Migration], path: object) -> None:
    """Refuse a store whose migration record names a migration this appliance does not ship."""
    from appliance import __version__

    known = {m.number: m for m in known_migrations()}
    unknown = [m for m in recorded if known.get(m.number) != m]
    if not unknown:
        return
    newest = max(known.values(), key=lambda m: m.number) if known else None
    raise StoreUnavailable(
        f"the store at {path} was written by a newer appliance: it records schema migration"
        f"{'s' if len(unknown) > 1 else ''} {', '.join(map(str, unknown))}, which appliance "
        f"{__version__} does not know (it ships up to {newest}). Install the appliance release "
        "that wrote it (or newer), or restore a backup made by this one; a store is never "
        "migrated down.",
        detail={"store_migrations": [str(m) for m in recorded], "unknown": [str(m) for m in unknown],
                "appliance_version": __version__, "known_up_to": str(newest)},
    )


@contextlib.contextmanager
def _exclusive(engine: Engine) -> Iterator[None]:
    """PostgreSQL: one migrator at a time, across hosts (a session advisory lock on a
    connection of its own, released before it goes back to the pool). DuckDB: the process
    lock already makes the opener the only one."""
    if engine.dialect.name != "postgresql":
        yield
        return
    from appliance.store.dialect import MIGRATIONS_LOCK

    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATIONS_LOCK})
        holder.commit()
        try:
            yield
        finally:
            holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATIONS_LOCK})
            holder.commit()


def apply_migrations(engine: Engine, path: object) -> list[int]:
    """Apply every shipped migration the store at ``path`` has not recorded; the numbers
    applied."""
    with _exclusive(engine):
        return _apply(engine, path)


def migrate_empty(engine: Engine, path: object) -> list[int] | None:
    """A server's start on PostgreSQL: under the migrations lock, give an empty database
    (no table but, at most, an empty migration record: a fresh install) every migration;
    None when it is not empty (the caller then checks its level, and refuses an old one).

    A second server starting at the same moment waits on the lock, then finds the
    database no longer empty and returns None: the schema is migrated exactly once.
    """
    with _exclusive(engine):
        with engine.connect() as conn:
            if not _is_empty(conn):
                return None
        return _apply(engine, path)


def _is_empty(conn: Connection) -> bool:
    others = conn.execute(text(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
        "AND table_name <> 'schema_migrations'")).scalar()
    return not others and not recorded_migrations(conn)


def _apply(engine: Engine, path: object) -> list[int]:
    with engine.begin() as conn:
        conn.execute(text(_CREATE))
        recorded = _recorded(conn)
    check_known(recorded, path)
    done = {m.number for m in recorded}
    applied: list[int] = []
    for number, name, sql in migration_files():
        if number in done:
            continue
        with engine.begin() as conn:
            for statement in _statements(sql):
                conn.execute(text(statement))
            conn.execute(
                text("INSERT INTO schema_migrations VALUES (:v, :n, now())"),
                {"v": number, "n": name},
            )
        applied.append(number)
    return applied


def recorded_migrations(conn: Connection) -> list[Migration] | None:
    """What the store records, or None when it has no ``schema_migrations`` table."""
    has_table = bool(conn.execute(text(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    )).scalar())
    return _recorded(conn) if has_table else None


def _statements(sql: str) -> list[str]:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
