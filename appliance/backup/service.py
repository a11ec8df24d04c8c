"""Taking backups: into a given folder, or into the home's backups/ with pruning."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.audit import Auditor
from appliance.backup.manifest import (
    _DISK_MARGIN,
    _STAMP,
    DB_DIR,
    FORMAT,
    FORMAT_VERSION,
    HEAD,
    MANIFEST,
    TREES,
    FileEntry,
    Progress,
    _artifact_rel,
    _copy_hashed,
    _hash_file,
    _inside,
    _list_home_files,
    _manifest_digest,
    _stamp_key,
    check_destination,
    read_manifest,
    summarize,
)
from appliance.config import Settings
from appliance.domain.backup import Backup, BackupEntry, BackupProblem, ScheduledBackup
from appliance.domain.principal import SYSTEM, Principal
from appliance.durable import fsync_dir, write_synced
from appliance.errors import Conflict, InsufficientDisk, InvalidInput
from appliance.objects import LocalObjectStore, ObjectStore
from appliance.store import dump as q
from appliance.store.db import Store

log = logging.getLogger(__name__)
MANUAL, SCHEDULED = "manual", "scheduled"  # a backup's origin, in its manifest


class BackupService:
    """Writes backups of the home this process owns (the server or a local CLI)."""

    def __init__(self, store: Store, settings: Settings, auditor: Auditor, *,
                 objects: ObjectStore | None = None) -> None:
        self.store = store
        self.settings = settings
        self.auditor = auditor
        # Remote (S3): snapshots and artifacts are in the bucket, not in the home's trees,
        # and a backup made in the home is also put there, under backups/<name>/.
        self.objects = None if isinstance(objects, LocalObjectStore | None) else objects
        self._lock = threading.RLock()  # one backup at a time per process

    @property
    def backups_dir(self) -> Path:
        return self.settings.home / "backups"

    # -- creating --------------------------------------------------------------

    def create(self, dest: Path, *, by: Principal | str, progress: Progress | None = None,
               origin: str = MANUAL) -> Backup:
        """Back the home up into ``dest``, which must not exist or be an empty folder.

        ``origin`` goes into the manifest: only ``scheduled`` backups are ever pruned.
        """
        dest = Path(dest).absolute()
        check_destination(dest)
        home = self.settings.home.resolve()
        for tree in TREES:
            if _inside(dest.resolve(), home / tree):
                raise InvalidInput(f"a backup cannot be written inside the home's {tree}/ folder, "
                                   "which it copies")
        partial = dest.with_name(dest.name + ".partial")
        with self._lock:
            if partial.exists():
                raise Conflict(f"{partial} exists: a backup is running there or one failed; "
                               "remove it and try again")
            try:
                manifest = self._build(partial, progress, origin)
                fsync_dir(partial)
                if dest.exists():
                    dest.rmdir()  # empty, checked above; os.replace needs it gone or empty
                os.replace(partial, dest)
                fsync_dir(dest.parent)
            except BaseException:
                shutil.rmtree(partial, ignore_errors=True)
                raise
        summary = summarize(dest, manifest)
        if not self.store.degraded:
            with self.store.write() as s:
                self.auditor.record(s, by, "backup.create", str(dest),
                                    after=summary.model_dump(mode="json", exclude={"counts"}))
        else:
            log.warning("store is degraded: backup %s written but not audited", dest)
        log.info("backup written to %s (%d files, %d bytes)", dest, summary.files,
                 summary.bytes)
        return summary

    def create_in_home(self, *, by: Principal | str, progress: Progress | None = None,
                       origin: str = MANUAL) -> Backup:
        """A backup in ``$APPLIANCE_HOME/backups/<UTC stamp>/``: a path the server picks."""
        with self._lock:
            self.backups_dir.mkdir(parents=True, exist_ok=True)
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            # Names sort in the order backups were made: a second backup within the same
            # second gets -2, -3, ... above the highest suffix still there for that second.
            taken = [_stamp_key(Path(p.name.removesuffix(".partial")))
                     for p in self.backups_dir.iterdir()
                     if _STAMP.fullmatch(p.name.removesuffix(".partial"))]
            n = max((k[1] for k in taken if k[0] == stamp), default=0) + 1
            dest = self.backups_dir / (stamp if n == 1 else f"{stamp}-{n}")
            made = self.create(dest, by=by, progress=progress, origin=origin)
            if self.objects is not None:
                publish_backup(self.objects, dest)
            return made

    def create_scheduled(self, keep: int | None = None) -> ScheduledBackup:
        """The housekeeping job: a backup in the home, then keep only the newest ``keep``
        scheduled ones (a backup someone made on purpose is never pruned)."""
        keep = self.settings.backup_keep if keep is None else keep
        if keep < 1:
            raise InvalidInput("keep must be at least 1")
        out = self.create_in_home(by=SYSTEM, origin=SCHEDULED)
        return ScheduledBackup(**dict(out), pruned=self.prune(keep))

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` scheduled backups in the home (and stale partials).

        Only a backup whose manifest (checked against its digest) says it was
        scheduled is a candidate: one made by ``POST /api/v1/backups``, or older
        than the ``origin`` field, or unreadable, stays.
        """
        with self._lock:
            scheduled = [b for b in self._home_backups() if _origin(b) == SCHEDULED]
            doomed = scheduled[:-keep] if keep > 0 else scheduled
            if self.backups_dir.is_dir():  # no backup runs now (we hold the lock)
                doomed += [p for p in self.backups_dir.iterdir()
                           if p.is_dir() and p.name.endswith(".partial")]
            for path in doomed:
                shutil.rmtree(path)
            return [p.name for p in doomed]

    def list_backups(self) -> list[BackupEntry]:
        """The backups in ``$APPLIANCE_HOME/backups``, newest first, with their manifest summary."""
        out: list[BackupEntry] = []
        for path in reversed(self._home_backups()):
            try:
                out.append(summarize(path, read_manifest(path)))
            except InvalidInput as exc:
                out.append(BackupProblem(name=path.name, path=str(path.resolve()),
                                         problem=exc.message))
        return out

    def _home_backups(self) -> list[Path]:
        if not self.backups_dir.is_dir():
            return []
        return sorted((p for p in self.backups_dir.iterdir()
                       if p.is_dir() and not p.is_symlink() and _STAMP.fullmatch(p.name)),
                      key=_stamp_key)

    def _build(self, out: Path, progress: Progress | None, origin: str) -> dict[str, Any]:
        home = self.settings.home
        out.mkdir(parents=True)
        db_dir = out / DB_DIR

        def on_locked() -> tuple[list[tuple[str, Path, int]], list[dict[str, str]], bytes | None]:
            files, skipped = _list_home_files(home)
            head = home / HEAD
            return files, skipped, head.read_bytes() if head.is_file() else None

        snap = q.export_snapshot(self.store, db_dir, on_locked)
        files, skipped, head_bytes = snap.extra
        total = sum(size for _, _, size in files)
        free = shutil.disk_usage(out).free
        if free < total + _DISK_MARGIN:
            raise InsufficientDisk(f"the backup needs {total} bytes and only {free} are free at "
                                   f"{out.parent}", detail={"needed": total, "free": free})
        entries: list[FileEntry] = []
        for path in sorted(db_dir.iterdir()):
            entries.append(FileEntry(f"{DB_DIR}/{path.name}", *_hash_file(path)))
        if head_bytes is not None:
            (out / HEAD).write_bytes(head_bytes)
            entries.append(FileEntry(HEAD, hashlib.sha256(head_bytes).hexdigest(),
                                     len(head_bytes)))
        done = 0
        copied: set[str] = set()
        for rel, src, size in files:
            try:
                sha, written = _copy_hashed(src, out / rel)
            except FileNotFoundError:  # removed after the listing: the snapshot never needed it
                skipped.append({"path": rel, "reason": "removed while the backup ran"})
                continue
            entries.append(FileEntry(rel, sha, written))
            copied.add(rel)
            done += size
            if progress:
                progress("copying", done, total)
        missing = [p for p in snap.parquet_paths if p not in copied]
        missing += [a for a in snap.artifact_shas if _artifact_rel(a) not in copied]
        if self.objects is not None:  # in the bucket: write-once, so the backup needs no copy
            missing = [m for m in missing if not self.objects.exists(
                m if "/" in m else _artifact_rel(m))]
        if missing:
            log.warning("the store refers to %d file(s) the home does not have", len(missing))
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "appliance_version": __version__,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "origin": origin,
            "home": str(home.resolve()),
            "migration_level": max((v for v, _ in snap.migrations), default=0),
            "migrations": [[v, n] for v, n in snap.migrations],
            "tables": snap.tables,
            "counts": snap.counts,
            "audit_head": json.loads(head_bytes) if head_bytes else None,
            "degraded": self.store.degraded,
            "skipped": skipped,
            "missing_references": missing,
            "files": [e.as_dict() for e in sorted(entries, key=lambda e: e.path)],
        }
        manifest["manifest_sha256"] = _manifest_digest(manifest)
        write_synced(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True).encode())
        return manifest


def _origin(path: Path) -> str | None:
    """The origin a complete backup's manifest records; None when it has none or is unreadable."""
    try:
        origin = read_manifest(path).get("origin")
    except InvalidInput:
        return None
    return origin if isinstance(origin, str) else None


def publish_backup(objects: ObjectStore, folder: Path) -> int:
    """Put every file of a finished backup under ``backups/<folder name>/`` (write-once),
    so it outlives the host that made it; the number of files put."""
    put = 0
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            objects.put_file(f"backups/{folder.name}/{path.relative_to(folder).as_posix()}", path)
            put += 1
    log.info("backup %s put in the object store %s (%d files)", folder.name, objects.location,
             put)
    return put

