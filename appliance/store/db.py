"""Opening the store: the one DuckDB file (process lock, engine, migrations, recovery), or
PostgreSQL when ``APPLIANCE_STORE_URL`` names one.

``Store`` is the single write path of a process; writes are serialised through
``Store.write()`` (DuckDB allows one writer and has no SAVEPOINT, so one
transaction at a time keeps it simple and honest). On PostgreSQL several
processes on several hosts write at once: what the one writer guaranteed is
guaranteed by constraints and advisory locks instead (``store.dialect``), and
the schema changes only through ``appliance migrate``: a server refuses to
open an older schema (an empty database, a fresh install, it migrates under the
same advisory lock as ``appliance migrate``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import duckdb
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, create_engine

from appliance.errors import Conflict, NotFound, StoreLocked, StoreUnavailable
from appliance.store import dialect
from appliance.store.migrations import (
    MigrationReport,
    apply_migrations,
    check_known,
    known_migrations,
    migrate_empty,
    recorded_migrations,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from appliance.store.parts import PartsLog
    from appliance.store.partsread import PartsReader

_PID_IN_LOCK_ERROR = re.compile(r"PID (\d+)")


class ProcessLock:
    """An advisory ``flock`` on ``appliance.lock`` holding the owner's PID.

    DuckDB takes its own lock too; ours comes first so the message can name
    the PID and so nothing is opened before we know we are the only writer.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            raw = fh.read().strip()
            fh.close()
            raise StoreLocked(int(raw) if raw.isdigit() else None, str(self.path)) from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.seek(0)
                self._fh.truncate()
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    @staticmethod
    def holder(path: Path) -> int | None:
        """The PID holding the lock, or None when nobody does."""
        if not path.exists():
            return None
        with path.open("a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.seek(0)
                raw = fh.read().strip()
                return int(raw) if raw.isdigit() else -1
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            return None


class Store:
    """The metadata store: one DuckDB file, one writer.

    ``degraded`` is set when the write-ahead log could not be replayed (the
    WAL is copied aside and the database opens read-only), or by
    :meth:`degrade` when a start-up check finds something an operator must
    look at (the audit log against its anchor). Then every write raises
    :class:`StoreUnavailable` until the operator has dealt with it.
    """

    def __init__(self, db_path: Path, *, lock_path: Path | None = None,
                 url: str | None = None) -> None:
        """``url``: a ``postgresql+psycopg://`` URL puts the metadata on PostgreSQL; None
        (the default) is the embedded DuckDB file at ``db_path``."""
        if url is not None and not dialect.is_postgres_url(url):
            raise StoreUnavailable(f"APPLIANCE_STORE_URL must be a postgresql+psycopg:// URL "
                                   f"(or unset for the embedded store), not {redact(url)!r}")
        self.db_path = db_path
        self.url = url
        self.postgres = url is not None
        self.where = redact(url) if url is not None else str(db_path)
        self.lock = ProcessLock(lock_path or db_path.with_suffix(".lock"))
        self.engine: Engine | None = None
        self.degraded_reason: str | None = None
        self._write_lock = threading.RLock()
        # scale-out: the prediction log and labels live in Parquet parts (use_parts)
        self.parts: PartsLog | None = None
        self.parts_reader: PartsReader | None = None
        self._exclusive = threading.Lock()

    # -- lifecycle -------------------------------------------------------

    def open(self, *, migrate: bool = True) -> Store:
        """Open the store; ``migrate``: bring the schema up to date (the embedded store), or
        refuse an out-of-date schema (PostgreSQL: only `appliance migrate` changes it; an
        empty database is migrated here, under the migrations lock)."""
        if self.postgres:
            return self._open_postgres(check_schema=migrate)
        self.lock.acquire()
        try:
            try:
                self.engine = self._connect(read_only=False)
            except StoreUnavailable as exc:
                if "WAL" not in exc.message:
                    raise
                self.engine = self._recover_wal(exc.message)
        except BaseException:
            self.lock.release()
            raise
        if migrate and not self.degraded:
            try:
                apply_migrations(self._engine(), self.db_path)  # refuses a store from a newer appliance
            except BaseException:
                self.close()
                raise
        return self

    def _open_postgres(self, *, check_schema: bool) -> Store:
        assert self.url is not None
        engine = create_engine(dialect.sqlalchemy_url(self.url), pool_pre_ping=True)
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                current = not check_schema or _schema_current(conn, self.where)
            if not current:
                # an empty database (a fresh install) is migrated here, under the migrations
                # lock; a server starting beside this one waits on the lock, then finds the
                # schema current. An old schema is refused: only `appliance migrate` moves it.
                applied = migrate_empty(engine, self.where)
                if applied:
                    log.warning("the PostgreSQL store %s was empty: applied %d migrations "
                                "(%04d-%04d)", self.where, len(applied), applied[0], applied[-1])
                with engine.connect() as conn:
                    _refuse_old_schema(conn, self.where)
        except DBAPIError as exc:
            engine.dispose()
            raise StoreUnavailable(f"cannot open the PostgreSQL store {self.where}: "
                                   f"{str(exc.orig).strip().splitlines()[0][:300]}",
                                   detail={"url": self.where}) from exc
        except BaseException:
            engine.dispose()
            raise
        self.engine = engine
        return self

    def close(self) -> None:
        if self.engine is not None and self.postgres:
            self.engine.dispose()
            self.engine = None
            return
        if self.engine is not None:
            if not self.degraded:
                with contextlib.suppress(Exception), self.engine.begin() as conn:
                    conn.execute(text("CHECKPOINT"))
            self.engine.dispose()
            self.engine = None
        self.lock.release()

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def degraded(self) -> bool:
        return self.degraded_reason is not None

    def degrade(self, reason: str) -> None:
        """Refuse every write from now on, for ``reason`` (kept beside an earlier one)."""
        self.degraded_reason = reason if self.degraded_reason is None \
            else f"{self.degraded_reason}; and {reason}"

    def _connect(self, *, read_only: bool) -> Engine:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            f"duckdb:///{self.db_path}",
            # no ICU offline: TIMESTAMPTZ is UTC. DuckDB would otherwise download a "known"
            # extension a query needs from extensions.duckdb.org: nothing calls out.
            connect_args={"read_only": read_only, "config": {"autoinstall_known_extensions": False}},
        )
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except DBAPIError as exc:
            engine.dispose()
            raise _translate(exc, self.db_path) from exc
        return engine

    def _recover_wal(self, error: str) -> Engine:
        wal = Path(str(self.db_path) + ".wal")
        if not wal.exists():
            raise StoreUnavailable(error, detail={"path": str(self.db_path)})
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = wal.with_name(f"{wal.name}.unreplayable-{stamp}")
        os.replace(wal, aside)
        self.degraded_reason = (
            f"the write-ahead log could not be replayed ({error.splitlines()[0][:200]}); it was "
            f"moved to {aside.name} and the store opened read-only at its last checkpoint. "
            "Nothing was deleted: restore from a backup, or ask for help before writing again."
        )
        return self._connect(read_only=True)

    # -- sessions ----------------------------------------------------------

    def _engine(self) -> Engine:
        if self.engine is None:
            raise StoreUnavailable("the store is not open")
        return self.engine

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with Session(self._engine(), expire_on_commit=False) as session:
            yield session

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        """One serialised read-write transaction; commits on success, rolls back on error."""
        if self.degraded:
            raise StoreUnavailable(f"the store is read-only: {self.degraded_reason}")
        with self._write_lock, Session(self._engine(), expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except IntegrityError as exc:
                session.rollback()
                # a unique index (migration 0018) fenced a second writer: nothing was kept
                raise Conflict("another writer recorded the same thing first (a unique "
                               f"constraint refused it): {_first_line(exc)}; nothing was "
                               "written, try again") from exc
            except BaseException:
                session.rollback()
                raise
            for callback in session.info.pop("after_commit", []):
                callback()

    def use_parts(self, parts: PartsLog) -> None:
        """Keep the prediction log and labels in ``parts`` instead of the tables (scale-out)."""
        from appliance.store.partsread import PartsReader

        self.parts, self.parts_reader = parts, PartsReader(parts)

    @contextlib.contextmanager
    def analytics(self) -> Iterator[Session]:
        """A read session for the queries over ``predictions`` and ``labels``: the store's
        own (embedded), or DuckDB over this host's view of the parts (scale-out)."""
        if self.parts_reader is None:
            with self.read() as s:
                yield s
        else:
            with self.parts_reader.session() as s:
                yield s

    @contextlib.contextmanager
    def exclusive(self, key: int) -> Iterator[None]:
        """Hold ``key`` against every process on this store (PostgreSQL: a session advisory
        lock on a connection of its own; embedded: one process, a lock in it)."""
        if not self.postgres:
            with self._exclusive:
                yield
            return
        with self._engine().connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Raw SQL for maintenance (CHECKPOINT) and tests; never for request paths."""
        with self._write_lock, self._engine().begin() as conn:
            res = conn.execute(text(sql), params or {})
            return list(res.fetchall()) if res.returns_rows else []

    def checkpoint(self) -> None:
        if not self.degraded and not self.postgres:
            self.execute("CHECKPOINT")


def _translate(exc: DBAPIError, path: Path) -> Exception:
    orig = exc.orig
    msg = str(orig)
    if isinstance(orig, duckdb.IOException) and "lock" in msg.lower():
        m = _PID_IN_LOCK_ERROR.search(msg)
        return StoreLocked(int(m.group(1)) if m else None, str(path))
    return StoreUnavailable(f"cannot open {path}: {msg}", detail={"path": str(path)})


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0][:300]


def redact(url: str) -> str:
    """A store URL without its password, for messages and reports."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def _schema_current(conn: Any, where: str) -> bool:
    """Whether the schema is this appliance's (a newer one is refused here)."""
    recorded = recorded_migrations(conn)
    check_known(recorded or [], where)
    done = {m.number for m in recorded or []}
    return all(m.number in done for m in known_migrations())


def _refuse_old_schema(conn: Any, where: str) -> None:
    """PostgreSQL: refuse a schema from a newer appliance, or one `appliance migrate` has
    not brought up to this appliance's (a server migrates only an empty database)."""
    recorded = recorded_migrations(conn)
    check_known(recorded or [], where)
    known = known_migrations()
    done = {m.number for m in recorded or []}
    missing = [m for m in known if m.number not in done]
    if missing:
        level = max(done, default=0)
        raise StoreUnavailable(
            f"the PostgreSQL store {where} is at schema {level:04d}; this appliance needs "
            f"{known[-1]}: run `appliance migrate` (once, from any host, with the same "
            "APPLIANCE_STORE_URL), then start the server again",
            detail={"level": level, "missing": [str(m) for m in missing],
                    "command": "appliance migrate"})


def migrate(db_path: Path, lock_path: Path, url: str | None = None) -> MigrationReport:
    """Open an existing store as its one writer and bring its schema up to this appliance's.

    Raises NotFound when there is no store file (a new home needs no
    migration), StoreLocked while a server holds it, StoreUnavailable for a
    store from a newer appliance or one that only opens read-only. With a
    PostgreSQL ``url`` the database is migrated in place, an empty one
    included, under an advisory lock: a second ``migrate`` at the same time
    waits, then finds nothing to do.
    """
    if url is not None:
        return _migrate_postgres(Store(db_path, url=url))
    if not db_path.is_file():
        raise NotFound(f"there is no store at {db_path}: nothing to migrate")
    store = Store(db_path, lock_path=lock_path).open(migrate=False)
    try:
        if store.degraded:
            raise StoreUnavailable(f"nothing migrated: {store.degraded_reason}")
        with store._engine().begin() as conn:
            before = recorded_migrations(conn)
        numbers = apply_migrations(store._engine(), store.db_path)
        with store._engine().begin() as conn:
            after = recorded_migrations(conn) or []
    finally:
        store.close()
    known = known_migrations()
    by_number = {m.number: m for m in known}
    return MigrationReport(
        path=str(db_path),
        level_before=max((m.number for m in before), default=0) if before is not None else None,
        level=max((m.number for m in after), default=0),
        applied=tuple(by_number[n] for n in numbers),
        known=tuple(known),
    )


def _migrate_postgres(store: Store) -> MigrationReport:
    store.open(migrate=False)
    try:
        engine = store._engine()
        with engine.connect() as conn:
            before = recorded_migrations(conn)
        try:
            numbers = apply_migrations(engine, store.where)  # under the migrations lock
        except DBAPIError as exc:
            raise StoreUnavailable(f"migrating {store.where} failed (nothing of the failed "
                                   f"migration was kept): {str(exc.orig).strip()[:300]}") from exc
        with engine.connect() as conn:
            after = recorded_migrations(conn) or []
    finally:
        store.close()
    known = known_migrations()
    by_number = {m.number: m for m in known}
    return MigrationReport(
        path=store.where,
        level_before=max((m.number for m in before), default=0) if before is not None else None,
        level=max((m.number for m in after), default=0),
        applied=tuple(by_number[n] for n in numbers),
        known=tuple(known),
    )
