"""Restoring a backup into an empty home: verify everything first, then rebuild."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from appliance.audit import Auditor
from appliance.backup.manifest import (
    DB_DIR,
    DB_FILE,
    HEAD,
    TREES,
    Progress,
    _copy_checked,
    read_manifest,
    verify_backup,
)
from appliance.config import Settings
from appliance.domain.backup import Restored
from appliance.domain.principal import Principal
from appliance.domain.roles import Role
from appliance.durable import fsync_dir
from appliance.errors import ApplianceError, Conflict
from appliance.store import dump as q
from appliance.store.db import ProcessLock, Store

log = logging.getLogger(__name__)


def restore(settings: Settings, src: Path, *, actor: str = "system",
            progress: Progress | None = None) -> Restored:
    """Restore the backup at ``src`` into ``settings.home``, which must be empty and unowned.

    Order: check the manifest, the target home and every checksum (nothing
    written yet); take the home's lock; copy and re-check every file into a
    temporary folder inside the home; rebuild the store there; move it all
    into place; open the store (newer migrations apply), verify the audit
    chain and the files the rows refer to, and audit the restore.
    """
    if settings.store_url:
        raise Conflict("`appliance restore` rebuilds the embedded DuckDB store; with "
                       "APPLIANCE_STORE_URL on PostgreSQL restore with pg_restore plus the "
                       "files (docs/scale-out.md)")
    src = Path(src)
    manifest = read_manifest(src)
    home = settings.home
    _check_target_home(settings)
    verify_backup(src, manifest, progress)

    created_home = not home.exists()
    lock = ProcessLock(settings.lock_path)
    try:
        lock.acquire()
    except ApplianceError:
        raise Conflict("the target home is in use by a running server; restore is offline "
                       "only: stop it first") from None
    tmp: Path | None = None
    placed: list[Path] = []
    try:
        _check_target_home(settings, check_lock=False)  # again, now that we hold the lock
        tmp = Path(tempfile.mkdtemp(prefix=".restore-", dir=home))
        entries = {e["path"]: e for e in manifest["files"]}
        total = sum(int(e["size"]) for e in entries.values())
        done = 0
        for rel, e in sorted(entries.items()):
            _copy_checked(src / rel, tmp / rel, e)
            done += int(e["size"])
            if progress:
                progress("restoring", done, total)
        q.import_snapshot(tmp / DB_FILE, tmp / DB_DIR, level=int(manifest["migration_level"]),
                          expected_rows={k: int(v) for k, v in manifest["tables"].items()})
        shutil.rmtree(tmp / DB_DIR)
        for path in (tmp / "artifacts").rglob("*"):
            if path.is_file():
                os.chmod(path, 0o444)
        for name in (*TREES, HEAD, DB_FILE, DB_FILE + ".wal"):
            if (tmp / name).exists():
                target = home / name
                os.replace(tmp / name, target)  # an empty folder left by `init` is replaced
                placed.append(target)
        fsync_dir(home)
    except BaseException:
        for target in placed:  # only reached before the store was opened: nothing is used yet
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        lock.release()
        if created_home:
            settings.lock_path.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                home.rmdir()
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    lock.release()
    return _check_restored(settings, manifest, actor)


def _check_restored(settings: Settings, manifest: dict[str, Any], actor: str) -> Restored:
    from appliance.artifacts import ArtifactStore

    store = Store(settings.db_path, lock_path=settings.lock_path).open()
    try:
        auditor = Auditor(store, settings.home / HEAD)
        chain = auditor.verify()
        parquet, shas = q.references(store)
        from appliance.objects import open_object_store

        objects = open_object_store(settings)  # the home, or the bucket in scale-out
        artifacts = ArtifactStore(settings.artifacts_dir, objects=objects)
        missing = [p for p in parquet if not objects.exists(Path(p).as_posix())]
        bad = [a for a in shas if not artifacts.verify(a)]
        counts = q.counts(store)
        result = Restored(
            home=str(settings.home.resolve()),
            backup_created_at=manifest["created_at"],
            migration_level=manifest["migration_level"],
            counts=counts,
            audit=chain,
            missing_files=missing,
            bad_artifacts=bad,
            ok=chain.ok and not missing and not bad,
        )
        who = Principal(username=actor, role=Role.admin)
        with store.write() as s:
            auditor.record(s, who, "backup.restore", str(settings.home.resolve()), after={
                "backup_created_at": manifest["created_at"],
                "manifest_sha256": manifest["manifest_sha256"],
                "audit_ok": chain.ok, "events": chain.events})
    finally:
        store.close()
    return result


def _check_target_home(settings: Settings, *, check_lock: bool = True) -> None:
    home = settings.home
    pid = ProcessLock.holder(settings.lock_path) if check_lock else None
    if pid is not None:
        raise Conflict(f"the target home is in use by a running server (PID {pid}); restore "
                       "is offline only: stop the server first", detail={"pid": pid})
    if home.is_symlink() or (home.exists() and not home.is_dir()):
        raise Conflict(f"the target home {home} is not a folder")
    if not home.exists():
        return
    found = []
    for root, dirs, names in os.walk(home):
        for name in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            path = Path(root) / name
            if path == settings.lock_path:
                continue
            found.append(str(path.relative_to(home)))
            if len(found) >= 5:
                break
        if len(found) >= 5:
            break
    if found:
        raise Conflict(f"the target home {home} is not empty (it holds {', '.join(found)}); "
                       "restore only into an empty home", detail={"found": found})
