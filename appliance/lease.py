"""The leader lease: which host runs the inbox watcher, the scheduler and housekeeping.

Embedded (DuckDB): the one process that owns the store is always the leader
(``SoleLease``): nothing changes. On PostgreSQL several hosts serve one
database; exactly one holds a session-level advisory lock on a connection of
its own (``PostgresLease``, SQL in ``appliance.store.lease``) and runs the
leader's work. The others try again every ``retry_seconds`` and take over when
the leader's session ends: a clean stop, a killed process (PostgreSQL drops
the session and its lock when the socket closes) or a terminated backend.
A leader that finds its own session gone steps down at its next check
(``retry_seconds`` later); whatever it still does in that window is fenced by
the job ledger's one-row-per-slot constraint (docs/scale-out.md, "Leader lease").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

Hook = Callable[[], None]


class Lease(Protocol):
    shared: bool  # several hosts compete (PostgreSQL) or this host is the only one

    @property
    def leader(self) -> bool: ...

    def start(self, on_gain: Hook, on_lose: Hook) -> None: ...

    def stop(self) -> None: ...


class SoleLease:
    """The embedded store's lease: this process is the leader from start to stop."""

    shared = False
    leader = True  # nobody else can run anything on this store (its process lock)

    def start(self, on_gain: Hook, on_lose: Hook) -> None:
        on_gain()

    def stop(self) -> None:
        pass


class PostgresLease:
    """Hold the leader lock, or try for it every ``retry_seconds``, in a thread of its own.

    ``start`` makes the first try before it returns (one host alone starts as the
    leader, as on the embedded store); ``on_gain`` and ``on_lose`` run on the lease's
    thread after that. ``stop`` steps down and closes the session (the lock goes with it).
    """

    shared = True

    def __init__(self, url: str, *, retry_seconds: float = 1.0, key: int | None = None,
                 on_change: Callable[[bool], None] | None = None) -> None:
        from appliance.store.lease import LEADER_LOCK, LeaseConnection

        self.retry_seconds = retry_seconds
        self.on_change = on_change
        self._conn = LeaseConnection(url, key=LEADER_LOCK if key is None else key)
        self._leader = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._on_gain: Hook = lambda: None
        self._on_lose: Hook = lambda: None

    @property
    def leader(self) -> bool:
        return self._leader

    def start(self, on_gain: Hook, on_lose: Hook) -> None:
        self._on_gain, self._on_lose = on_gain, on_lose
        self._stop.clear()
        self.check()
        self._thread = threading.Thread(target=self._run, name="leader-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.retry_seconds + 10)
            self._thread = None
        if self._leader:
            self._step_down("stopping")
        self._conn.close()

    def check(self) -> bool:
        """One round: keep the lock (step down if the session is gone) or try for it."""
        if self._leader:
            if not self._conn.still_held():
                self._conn.reset()
                self._step_down("its PostgreSQL session ended")
            return self._leader
        try:
            got = self._conn.try_acquire()
        except Exception as exc:
            log.warning("leader lease: cannot reach PostgreSQL (%s); trying again in %g s",
                        str(exc).strip().splitlines()[0][:200] if str(exc).strip() else
                        type(exc).__name__, self.retry_seconds)
            self._conn.reset()
            return False
        if got:
            self._leader = True
            log.info("leader lease taken: this host runs the inbox watcher, the scheduler "
                     "and housekeeping")
            self._notify(True)
            try:
                self._on_gain()
            except Exception:
                log.exception("starting the leader's work failed")
        return self._leader

    def backend_pid(self) -> int | None:
        """The lease session's PostgreSQL backend (tests terminate it)."""
        return self._conn.backend_pid()

    def _run(self) -> None:
        while not self._stop.wait(self.retry_seconds):
            try:
                self.check()
            except Exception:  # never let the lease thread die
                log.exception("leader lease check failed")

    def _step_down(self, why: str) -> None:
        self._leader = False
        log.warning("leader lease lost (%s): stopping the inbox watcher and the scheduler",
                    why)
        self._notify(False)
        try:
            self._on_lose()
        except Exception:
            log.exception("stopping the leader's work failed")

    def _notify(self, leader: bool) -> None:
        if self.on_change is not None:
            try:
                self.on_change(leader)
            except Exception:
                log.exception("reporting the lease state failed")


def lease_for(store_url: str | None, *, retry_seconds: float,
              on_change: Callable[[bool], None] | None = None) -> Lease:
    """The lease for a store: shared on PostgreSQL, sole on the embedded file."""
    if store_url is None:
        return SoleLease()
    return PostgresLease(store_url, retry_seconds=retry_seconds, on_change=on_change)
