"""Compacting the embedded store: rewrite ``appliance.duckdb`` without its freed pages.

After an erasure (or a retention pass) the deleted rows' bytes stay in the
store file's freed pages: DuckDB does not zero them. ``compact`` copies the
store into a fresh file (``store.compact``: ATTACH + COPY FROM DATABASE),
checks the copy (rows per table, indexes, views, sequences, the audit chain),
then swaps it in with one atomic rename. Offline only, like ``restore`` and
``migrate``: it holds the home's process lock for the whole run.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path
from typing import Any

from appliance.audit import Auditor
from appliance.backup.manifest import HEAD, Progress
from appliance.config import Settings
from appliance.domain.backup import Compacted
from appliance.domain.principal import Principal
from appliance.domain.roles import Role
from appliance.durable import fsync_dir, require_free_disk
from appliance.errors import ApplianceError, Conflict, InvalidInput, NotFound, StoreUnavailable
from appliance.store import compact as q
from appliance.store.db import ProcessLock, Store


def compact(settings: Settings, *, keep_old: bool = False, actor: str = "system",
            progress: Progress | None = None) -> Compacted:
    """Rewrite the store file of ``settings.home`` without the pages deleted rows left.

    Order: refuse PostgreSQL, a missing store and a running server; take the
    home's lock; open the store (pending migrations apply, as on any start),
    verify its audit chain and close it (the WAL is folded in); copy it into
    ``.compact-<stamp>.duckdb`` beside it and check the copy; rename the old
    file aside (``--keep-old``) or let the rename replace it; audit
    ``store.compact`` in the new file. Any failure before the rename leaves
    the store as it was and removes the copy (a copy a crash left is removed by the
    next run).
    """
    if settings.store_url:
        raise Conflict("`appliance compact` rewrites the embedded DuckDB store; with "
                       "APPLIANCE_STORE_URL on PostgreSQL run `VACUUM FULL` on the database "
                       "instead (it rewrites each table without its dead rows)")
    db = settings.db_path
    if not db.is_file():
        raise NotFound(f"there is no store at {db}: nothing to compact")
    lock = ProcessLock(settings.lock_path)
    try:
        lock.acquire()
    except ApplianceError as exc:
        pid = exc.detail.get("pid") if isinstance(exc.detail, dict) else None
        who = f" (PID {pid})" if pid else ""
        raise Conflict(f"the store is in use by a running server{who}; compact is offline "
                       "only: stop the server first (`appliance stop`, or end the "
                       "`appliance serve` process), then run `appliance compact` again",
                       detail={"pid": pid}) from None
    started = time.perf_counter()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    tmp = db.with_name(f".compact-{stamp}.duckdb")
    side_lock = db.with_name(f".compact-{stamp}.lock")  # our Store handles: we hold the real one
    wal = Path(str(db) + ".wal")
    try:
        for stray in db.parent.glob(".compact-*"):  # a copy an interrupted compact left
            if stray != side_lock and stray.is_file():
                stray.unlink()
        events = _verified_events(db, side_lock, settings.home / HEAD, "the store")
        if wal.exists():
            raise StoreUnavailable(f"the store's WAL {wal.name} was not folded into the file "
                                   "at close; nothing compacted (see `appliance audit verify` "
                                   "and the server log)")
        before = db.stat().st_size
        require_free_disk(db.parent, floor_mb=settings.min_free_disk_mb, extra_bytes=before,
                          doing="compacting the store")
        try:
            tables = q.copy_database(db, tmp, progress=progress)
            if progress:
                progress("verifying the audit chain", 0, 1)
            if _verified_events(tmp, side_lock, settings.home / HEAD, "the copy") != events:
                raise InvalidInput("the compacted copy's audit chain differs; nothing swapped")
            _fsync(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            Path(str(tmp) + ".wal").unlink(missing_ok=True)
            raise
        kept: Path | None = None
        if keep_old:
            kept = db.with_name(f"{db.name}.pre-compact-{stamp}")
            os.link(db, kept)  # the old file stays whole under its new name
        os.replace(tmp, db)  # atomic: the store is the old file or the new one, never neither
        fsync_dir(db.parent)
        copied = db.stat().st_size
        kept_name = str(kept) if kept else None
        _audit(db, side_lock, settings.home / HEAD, actor, before={"bytes": before}, after={
            "bytes": copied, "tables": len(tables), "rows": sum(tables.values()),
            "audit_events": events, "kept_old": kept_name})
        result = Compacted(path=str(db.resolve()), bytes_before=before,
                           bytes_after=db.stat().st_size, tables=tables, audit_events=events,
                           kept_old=kept_name, seconds=round(time.perf_counter() - started, 3))
        return result
    finally:
        side_lock.unlink(missing_ok=True)
        lock.release()


def _verified_events(db: Path, lock_path: Path, head: Path, what: str) -> int:
    store = Store(db, lock_path=lock_path).open(migrate=what == "the store")
    try:
        if store.degraded:
            raise StoreUnavailable(f"{what} opens read-only: {store.degraded_reason}; "
                                   "nothing compacted")
        chain = Auditor(store, head).verify()
    finally:
        store.close()
    if not chain.ok:
        raise Conflict(f"the audit chain of {what} does not verify: nothing compacted; run "
                       "`appliance audit verify` first", detail={"events": chain.events})
    return chain.events


def _audit(db: Path, lock_path: Path, head: Path, actor: str, *, before: dict[str, Any],
           after: dict[str, Any]) -> None:
    store = Store(db, lock_path=lock_path).open(migrate=False)
    try:
        auditor = Auditor(store, head)
        with store.write() as s:
            auditor.record(s, Principal(username=actor, role=Role.admin), "store.compact",
                           str(db.resolve()), before=before, after=after)
    finally:
        store.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
