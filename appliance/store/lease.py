"""The leader lease's SQL: a session-level PostgreSQL advisory lock on a connection of its own.

The lock belongs to the database session, not to a transaction: it is held for as
long as that one connection lives and released by PostgreSQL the moment the
session ends (a clean close, ``pg_terminate_backend``, or the holder's process
killed: the server sees the socket close). ``LeaseConnection`` is that connection,
outside the store's pool, so nothing else ever runs on it or returns it to a pool.
"""

from __future__ import annotations

import contextlib
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from appliance.store import dialect

# The advisory lock whose holder is the leader ("app_ld"); fixed forever, like the
# writers' and migrators' keys in ``appliance.store.dialect``.
LEADER_LOCK = 0x617070_5F6C64

# A dead peer (a pulled cable rather than a killed process) is noticed by TCP keepalives
# within about keepalives_idle + interval * count seconds; a connection attempt gives up
# after connect_timeout.
_CONNECT_ARGS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 5,
                 "keepalives_interval": 2, "keepalives_count": 2}


class LeaseConnection:
    """One dedicated connection that tries for, holds and checks the leader lock."""

    def __init__(self, url: str, *, key: int = LEADER_LOCK) -> None:
        self.key = key
        self._engine = create_engine(dialect.sqlalchemy_url(url), poolclass=NullPool,
                                     connect_args=_CONNECT_ARGS)
        self._conn: Any = None

    def try_acquire(self) -> bool:
        """True when this session holds the lock now (it may have held it already)."""
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                 {"k": self.key}).scalar_one()
        return bool(got)

    def still_held(self) -> bool:
        """Whether the session holding the lock is alive and still holds it (raises
        nothing: a dead connection is simply False)."""
        if self._conn is None:
            return False
        try:
            held = self._conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                     "AND pid = pg_backend_pid() AND granted AND objsubid = 1 "
                     "AND ((classid::bigint << 32) | objid::bigint) = :k"),
                {"k": self.key}).scalar_one()
        except Exception:
            return False
        return bool(held)

    def backend_pid(self) -> int | None:
        """The PostgreSQL backend of this connection (what ``pg_terminate_backend`` takes)."""
        if self._conn is None:
            return None
        return int(self._conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def close(self) -> None:
        """End the session: PostgreSQL releases the lock with it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already dead
                conn.invalidate()
        self._engine.dispose()

    def reset(self) -> None:
        """Drop a dead connection so the next try opens a fresh one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
