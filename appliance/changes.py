"""The change feed: what one host changed, seen by every other host within a bound.

Each host keeps in memory what serving and authentication read on every request: the
alias maps and sessions of the models it served, their canary/shadow routing, and
token checks. On one host (the embedded store) a change invalidates those in-process
(the ``AliasMoved`` event, direct calls): ``LocalFeed`` does nothing more. In scale-out
(PostgreSQL) the change also appends a row to the ``changes`` table in its own
transaction (``appliance.store.changes.note``), and every host runs a ``PolledFeed``:
a thread that reads the rows after the last seq it saw, every ``poll_seconds`` and at
once when PostgreSQL delivers the NOTIFY sent with the change, and calls the handlers
registered for each row's topic (``appliance.domain.changes``; wired in ``runtime``).

**The bound.** A change committed at time T is read by a poll that starts after T, so
by T + ``poll_seconds`` + one poll's round trip, and acted on then (an alias move also
loads the new version's session before the map is swapped). With the default 1 s
interval the documented bound is ``CHANGE_BOUND_SECONDS`` (2 s, ``appliance.config``);
with LISTEN/NOTIFY working it is typically milliseconds.

**Staleness.** ``fresh()`` is true only while the last successful poll started within
the bound: a host whose poller is stuck (the database unreachable, the process paused)
stops trusting its token cache and checks every token in the database, so a revoked
token is never accepted past the bound (``AuthService``). A host that could not poll
for longer than ``reset_after_seconds`` (rows it missed may have been pruned) drops
everything the feed covers (``on_reset``) instead of replaying rows.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

KeyHandler = Callable[[str], object]
ResetHandler = Callable[[], object]
RETENTION = dt.timedelta(hours=1)  # the leader prunes rows older than this
_PRUNE_EVERY = 60.0  # seconds between prunes (the leader's sweep runs more often)
_BATCH = 1000
_SLICE = 0.5  # the longest the thread waits without looking at stop()


class ChangeFeed(Protocol):
    shared: bool  # other hosts' changes arrive through the feed (PostgreSQL)

    def on(self, topic: str, handler: KeyHandler) -> None: ...

    def on_reset(self, handler: ResetHandler) -> None: ...

    def fresh(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def prune(self) -> int: ...


class LocalFeed:
    """The embedded store: one process, in-process invalidation; no thread, no rows."""

    shared = False

    def on(self, topic: str, handler: KeyHandler) -> None:
        pass

    def on_reset(self, handler: ResetHandler) -> None:
        pass

    def fresh(self) -> bool:
        return True  # nothing can change behind this process's back

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def prune(self) -> int:
        return 0


class PolledFeed:
    """Scale-out: poll the ``changes`` table on a connection of this host's own."""

    shared = True

    def __init__(self, url: str, *, poll_seconds: float, bound_seconds: float,
                 reset_after_seconds: float = 300.0, connection: Any = None) -> None:
        from appliance.store.changes import FeedConnection

        self.poll_seconds = poll_seconds
        self.bound_seconds = bound_seconds
        self.reset_after_seconds = reset_after_seconds
        self._conn = connection if connection is not None else FeedConnection(url)
        self._handlers: dict[str, tuple[KeyHandler, ...]] = {}
        self._resets: tuple[ResetHandler, ...] = ()
        self._seq: int | None = None  # the last seq acted on; None: not read yet
        self._last_ok: float | None = None  # monotonic start of the last successful poll
        self._last_prune = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._poll_lock = threading.Lock()

    def on(self, topic: str, handler: KeyHandler) -> None:
        self._handlers[topic] = (*self._handlers.get(topic, ()), handler)

    def on_reset(self, handler: ResetHandler) -> None:
        self._resets = (*self._resets, handler)

    def fresh(self) -> bool:
        last = self._last_ok
        return last is not None and time.monotonic() - last <= self.bound_seconds

    @property
    def seq(self) -> int | None:
        return self._seq

    def start(self) -> None:
        self._stop.clear()
        try:
            self.poll()
        except Exception as exc:
            log.warning("change feed: cannot read it yet (%s); trying every %g s", _first(exc),
                        self.poll_seconds)
            self._conn.reset()
        self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.poll_seconds + 10)
            self._thread = None
        self._conn.close()

    def poll(self) -> int:
        """One round: act on every row after the last seq; how many rows were read."""
        with self._poll_lock:
            started = time.monotonic()
            if self._seq is None:
                # caches filled before the first read may predate a change: drop them
                self._seq = self._conn.newest()
                self._reset(None)
                self._last_ok = started
                return 0
            if self._last_ok is not None and started - self._last_ok > self.reset_after_seconds:
                newest = self._conn.newest()
                self._reset(f"the feed was not read for {started - self._last_ok:.0f} s")
                self._seq, self._last_ok = newest, started
                return 0
            read = 0
            while True:
                rows = self._conn.since(self._seq, limit=_BATCH)
                read += len(rows)
                self._dispatch(rows)
                if rows:
                    self._seq = rows[-1].seq
                if len(rows) < _BATCH:
                    break
            self._last_ok = started
            return read

    def prune(self) -> int:
        """Delete rows older than ``RETENTION`` (the leader, at most once a minute)."""
        now = time.monotonic()
        if now - self._last_prune < _PRUNE_EVERY:
            return 0
        self._last_prune = now
        return int(self._conn.prune(dt.datetime.now(dt.UTC) - RETENTION))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sleep()
            except Exception:
                self._conn.reset()  # the poll below reconnects (and LISTENs again)
            if self._stop.is_set():
                return
            try:
                self.poll()
            except Exception as exc:
                log.warning("change feed: poll failed (%s); token checks go to the database "
                            "until it reads again", _first(exc))
                self._conn.reset()
                self._stop.wait(self.poll_seconds)

    def _sleep(self) -> None:
        """Until a NOTIFY arrives or the interval passes, in slices (``stop`` is prompt)."""
        deadline = time.monotonic() + self.poll_seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0 or self._conn.wait(min(left, _SLICE)):
                return

    def _dispatch(self, rows: list[Any]) -> None:
        seen: set[tuple[str, str]] = set()
        for row in rows:
            if (row.topic, row.key) in seen:
                continue  # one reload per key and batch: the handlers read the current state
            seen.add((row.topic, row.key))
            handlers = self._handlers.get(row.topic, ())
            if not handlers:
                log.debug("change feed: no handler for %s", row.topic)
            for handler in handlers:
                try:
                    handler(row.key)
                except Exception:
                    log.exception("change feed: the %s handler failed for %r", row.topic,
                                  row.key)

    def _reset(self, why: str | None) -> None:
        if why is not None:
            log.warning("change feed: %s; dropping every cached alias map, routing and "
                        "token check", why)
        for handler in self._resets:
            try:
                handler()
            except Exception:
                log.exception("change feed: a reset handler failed")


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def feed_for(store_url: str | None, *, poll_seconds: float, bound_seconds: float) -> ChangeFeed:
    """The feed for a store: polled on PostgreSQL, local on the embedded file."""
    if store_url is None:
        return LocalFeed()
    return PolledFeed(store_url, poll_seconds=poll_seconds, bound_seconds=bound_seconds)
