"""The change feed's SQL: rows that tell other hosts what to drop from their caches.

``note`` appends a row inside the transaction of the change it announces (an alias
move, a routing change, a token revocation): the row commits with the change or not
at all. Only on PostgreSQL: the embedded store has no other host, and its in-process
events already invalidate (``note`` writes nothing there). The append takes the
writers' advisory lock (``dialect.serialize_writers``) before the sequence hands out
its number, so ``seq`` order is commit order: a reader that sees seq n has seen every
row below it, and a host reading ``seq > last`` never skips a row committed late.
It also sends a NOTIFY on ``CHANNEL`` (delivered at commit) that wakes the pollers at
once; the poll every interval is the guarantee, the notification only a fast path.

``FeedConnection`` is a host's dedicated connection (outside the store's pool, like the
leader lease's) that listens on the channel and reads the rows after a seq.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool
from sqlmodel import Session

from appliance.store import dialect

CHANNEL = "appliance_changes"
_CONNECT_ARGS = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 5,
                 "keepalives_interval": 2, "keepalives_count": 2}


@dataclass(frozen=True)
class Change:
    seq: int
    topic: str
    key: str
    changed_at: dt.datetime


def note(s: Session, topic: str, key: str) -> None:
    """Announce a change to the other hosts, in the caller's transaction (PostgreSQL only)."""
    if not dialect.of(s).shared:
        return
    append(s, topic, key, dt.datetime.now(dt.UTC))
    s.execute(text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})


def append(s: Session, topic: str, key: str, at: dt.datetime) -> None:
    """A row on either engine (tests, and the portable part of ``note``)."""
    dialect.of(s).serialize_writers(s)  # before nextval: seq order is commit order
    s.execute(text("INSERT INTO changes (topic, key, changed_at) VALUES (:t, :k, :at)"),
              {"t": topic, "k": key, "at": at})


def newest(s: Session | Any) -> int:
    """The highest seq written so far (0 for an empty feed)."""
    return int(s.execute(text("SELECT coalesce(max(seq), 0) FROM changes")).scalar_one())


def since(s: Session | Any, seq: int, *, limit: int = 1000) -> list[Change]:
    """Rows after ``seq``, oldest first, at most ``limit``."""
    rows = s.execute(text("SELECT seq, topic, key, changed_at FROM changes WHERE seq > :n "
                          "ORDER BY seq LIMIT :l"), {"n": seq, "l": limit}).all()
    return [Change(int(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]


def prune(s: Session, before: dt.datetime) -> int:
    """Delete rows written before ``before`` (the leader's housekeeping); how many."""
    res = s.execute(text("DELETE FROM changes WHERE changed_at < :b"), {"b": before})
    return int(getattr(res, "rowcount", 0) or 0)


class FeedConnection:
    """One host's own connection to the feed: LISTEN for the fast path, then read rows."""

    def __init__(self, url: str) -> None:
        self._engine = create_engine(dialect.sqlalchemy_url(url), poolclass=NullPool,
                                     connect_args=_CONNECT_ARGS)
        self._conn: Any = None

    def _open(self) -> Any:
        if self._conn is None:
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text(f"LISTEN {CHANNEL}"))
            self._conn = conn
        return self._conn

    def newest(self) -> int:
        return newest(self._open())

    def since(self, seq: int, *, limit: int = 1000) -> list[Change]:
        return since(self._open(), seq, limit=limit)

    def prune(self, before: dt.datetime) -> int:
        res = self._open().execute(text("DELETE FROM changes WHERE changed_at < :b"),
                                   {"b": before})
        return int(res.rowcount or 0)

    def wait(self, timeout: float) -> bool:
        """Block until a NOTIFY arrives on the channel or ``timeout`` passes; True when one
        arrived. Raises on a dead connection (the caller resets it)."""
        driver = self._open().connection.driver_connection
        got = False
        for _ in driver.notifies(timeout=timeout, stop_after=1):
            got = True
        return got

    def reset(self) -> None:
        """Drop a dead connection; the next call opens a fresh one (and LISTENs again)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()

    def backend_pid(self) -> int | None:
        """The PostgreSQL backend of this connection (tests terminate it)."""
        if self._conn is None:
            return None
        return int(self._conn.execute(text("SELECT pg_backend_pid()")).scalar_one())

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already dead
                conn.invalidate()
        self._engine.dispose()
