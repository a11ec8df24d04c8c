"""Backup and restore: a consistent, checksummed snapshot of a home, and its way back.

A backup is a folder::

    manifest.json          written last: format, versions, counts, sha256 + size of every file
    db/                    DuckDB's EXPORT DATABASE (one Parquet file per table)
    artifacts/ datasets/ jobs/   copies of the home's trees (content-addressed or immutable)
    audit.head             the audit chain's anchor, as it was at the export

The export and the listing of files happen under the store's write lock, so
they describe one moment; the copies happen after it (the files are never
rewritten in place). A backup is built in ``PATH.partial`` and renamed to
``PATH`` once its manifest is written: a folder without a manifest is not a
backup. ``restore`` checks the manifest and every checksum before it writes
anything, rebuilds the store in a temporary folder inside the target home,
moves it into place and verifies the audit chain.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.audit import Auditor
from appliance.config import Settings
from appliance.domain.principal import SYSTEM, Principal
from appliance.domain.roles import Role
from appliance.durable import fsync_dir, write_synced
from appliance.errors import ApplianceError, Conflict, InsufficientDisk, InvalidInput, NotFound
from appliance.store import backup as q
from appliance.store.db import ProcessLock, Store, migration_files

log = logging.getLogger(__name__)

FORMAT = "appliance-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
DB_DIR = "db"
TREES = ("artifacts", "datasets", "jobs")  # folders of the home that are copied whole
HEAD = "audit.head"
DB_FILE = "appliance.duckdb"
_TOP = {DB_DIR, *TREES, HEAD}
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_STAMP = re.compile(r"\d{8}T\d{6}Z(-\d+)?")
_CHUNK = 4 * 1024 * 1024
_MAX_MANIFEST = 256 * 1024 * 1024
_DISK_MARGIN = 64 * 1024 * 1024

# (stage, bytes done, bytes total): how the CLI draws its progress bar.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class FileEntry:
    path: str  # POSIX, relative to the backup root
    sha256: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


class BackupService:
    """Writes backups of the home this process owns (the server or a local CLI)."""

    def __init__(self, store: Store, settings: Settings, auditor: Auditor) -> None:
        self.store = store
        self.settings = settings
        self.auditor = auditor
        self._lock = threading.RLock()  # one backup at a time per process

    @property
    def backups_dir(self) -> Path:
        return self.settings.home / "backups"

    # -- creating --------------------------------------------------------------

    def create(self, dest: Path, *, by: Principal | str,
               progress: Progress | None = None) -> dict[str, Any]:
        """Back the home up into ``dest``, which must not exist or be an empty folder."""
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
                manifest = self._build(partial, progress)
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
                                    after={k: v for k, v in summary.items() if k != "counts"})
        else:
            log.warning("store is degraded: backup %s written but not audited", dest)
        log.info("backup written to %s (%d files, %d bytes)", dest, summary["files"],
                 summary["bytes"])
        return summary

    def create_in_home(self, *, by: Principal | str,
                       progress: Progress | None = None) -> dict[str, Any]:
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
            return self.create(dest, by=by, progress=progress)

    def create_scheduled(self, keep: int | None = None) -> dict[str, Any]:
        """The housekeeping job: a backup in the home, then keep only the newest ``keep``."""
        keep = self.settings.backup_keep if keep is None else keep
        if keep < 1:
            raise InvalidInput("keep must be at least 1")
        out = self.create_in_home(by=SYSTEM)
        out["pruned"] = self.prune(keep)
        return out

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` complete backups in the home (and stale partials)."""
        with self._lock:
            complete = [b for b in self._home_backups() if (b / MANIFEST).is_file()]
            doomed = complete[:-keep] if keep > 0 else complete
            if self.backups_dir.is_dir():  # no backup runs now (we hold the lock)
                doomed += [p for p in self.backups_dir.iterdir()
                           if p.is_dir() and p.name.endswith(".partial")]
            for path in doomed:
                shutil.rmtree(path)
            return [p.name for p in doomed]

    def list_backups(self) -> list[dict[str, Any]]:
        """The backups in ``$APPLIANCE_HOME/backups``, newest first, with their manifest summary."""
        out = []
        for path in reversed(self._home_backups()):
            try:
                out.append(summarize(path, read_manifest(path)))
            except InvalidInput as exc:
                out.append({"name": path.name, "path": str(path.resolve()), "complete": False,
                            "problem": exc.message})
        return out

    def _home_backups(self) -> list[Path]:
        if not self.backups_dir.is_dir():
            return []
        return sorted((p for p in self.backups_dir.iterdir()
                       if p.is_dir() and not p.is_symlink() and _STAMP.fullmatch(p.name)),
                      key=_stamp_key)

    def _build(self, out: Path, progress: Progress | None) -> dict[str, Any]:
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
        if missing:
            log.warning("the store refers to %d file(s) the home does not have", len(missing))
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "appliance_version": __version__,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
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


# -- reading and checking a backup --------------------------------------------------


def read_manifest(src: Path) -> dict[str, Any]:
    """The manifest of the backup at ``src``, checked for shape; InvalidInput otherwise."""
    src = Path(src)
    if not src.is_dir():
        raise NotFound(f"{src} is not a folder: no backup there")
    path = src / MANIFEST
    if path.is_symlink() or not path.is_file():
        raise InvalidInput(f"{src} is not a complete backup: it has no {MANIFEST} "
                           "(a backup that did not finish has none)")
    if path.stat().st_size > _MAX_MANIFEST:
        raise InvalidInput(f"{path} is too big to be a manifest")
    try:
        manifest = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InvalidInput(f"{path} is not an appliance backup manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise InvalidInput(f"backup format version {version!r} is not supported "
                           f"(this appliance reads version {FORMAT_VERSION})")
    if manifest.get("manifest_sha256") != _manifest_digest(manifest):
        raise InvalidInput(f"{path} was edited or is corrupt: its digest does not match "
                           "its content")
    _check_manifest_fields(manifest)
    return manifest


def verify_backup(src: Path, manifest: dict[str, Any] | None = None,
                  progress: Progress | None = None) -> dict[str, Any]:
    """Check every file of the backup against its manifest; nothing is written.

    Refuses a missing, changed or extra file, a link or anything not a
    regular file. Returns the manifest.
    """
    src = Path(src)
    manifest = manifest if manifest is not None else read_manifest(src)
    entries = {e["path"]: e for e in manifest["files"]}
    for rel in _walk_backup(src):
        if rel != MANIFEST and rel not in entries:
            raise InvalidInput(f"the backup holds a file its manifest does not list: {rel}",
                               detail={"path": rel})
    total = sum(int(e["size"]) for e in entries.values())
    done = 0
    for rel, e in sorted(entries.items()):
        path = src / rel
        if path.is_symlink() or not path.is_file():
            raise InvalidInput(f"the backup is missing {rel}", detail={"path": rel})
        if path.stat().st_size != e["size"]:
            raise InvalidInput(f"{rel} in the backup has the wrong size: it is corrupt",
                               detail={"path": rel})
        sha, _ = _hash_file(path)
        if sha != e["sha256"]:
            raise InvalidInput(f"{rel} in the backup does not match its checksum: it is corrupt",
                               detail={"path": rel})
        done += int(e["size"])
        if progress:
            progress("verifying", done, total)
    return manifest


def copy_backup(src: Path, dest: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Copy a backup folder to ``dest`` (not existing or empty), checking every checksum.

    Used by the CLI to fetch a backup the server wrote into its home.
    """
    src, dest = Path(src), Path(dest).absolute()
    manifest = read_manifest(src)
    check_destination(dest)
    partial = dest.with_name(dest.name + ".partial")
    if partial.exists():
        raise Conflict(f"{partial} exists: remove it and try again")
    entries = {e["path"]: e for e in manifest["files"]}
    for rel in _walk_backup(src):
        if rel != MANIFEST and rel not in entries:
            raise InvalidInput(f"the backup holds a file its manifest does not list: {rel}")
    total = sum(int(e["size"]) for e in entries.values())
    done = 0
    try:
        partial.mkdir(parents=True)
        for rel, e in sorted(entries.items()):
            _copy_checked(src / rel, partial / rel, e)
            done += int(e["size"])
            if progress:
                progress("copying", done, total)
        write_synced(partial / MANIFEST, (src / MANIFEST).read_bytes())
        if read_manifest(partial) != manifest:
            raise InvalidInput("the manifest changed while the backup was copied")
        fsync_dir(partial)
        if dest.exists():
            dest.rmdir()
        os.replace(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return summarize(dest, manifest)


def summarize(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    files = manifest["files"]
    return {
        "name": path.name,
        "path": str(path.resolve()),
        "complete": True,
        "created_at": manifest["created_at"],
        "appliance_version": manifest["appliance_version"],
        "format_version": manifest["format_version"],
        "migration_level": manifest["migration_level"],
        "files": len(files),
        "bytes": sum(int(e["size"]) for e in files),
        "counts": manifest.get("counts") or {},
        "audit_head": manifest.get("audit_head"),
        "skipped": len(manifest.get("skipped") or []),
        "missing_references": len(manifest.get("missing_references") or []),
        "manifest_sha256": manifest["manifest_sha256"],
    }


# -- restoring ------------------------------------------------------------------------


def restore(settings: Settings, src: Path, *, actor: str = "system",
            progress: Progress | None = None) -> dict[str, Any]:
    """Restore the backup at ``src`` into ``settings.home``, which must be empty and unowned.

    Order: check the manifest, the target home and every checksum (nothing
    written yet); take the home's lock; copy and re-check every file into a
    temporary folder inside the home; rebuild the store there; move it all
    into place; open the store (newer migrations apply), verify the audit
    chain and the files the rows refer to, and audit the restore.
    """
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


def _check_restored(settings: Settings, manifest: dict[str, Any], actor: str) -> dict[str, Any]:
    from appliance.artifacts import ArtifactStore

    store = Store(settings.db_path, lock_path=settings.lock_path).open()
    try:
        auditor = Auditor(store, settings.home / HEAD)
        chain = auditor.verify()
        parquet, shas = q.references(store)
        artifacts = ArtifactStore(settings.artifacts_dir)
        missing = [p for p in parquet if not (settings.home / p).is_file()]
        bad = [a for a in shas if not artifacts.verify(a)]
        counts = q.counts(store)
        result = {
            "home": str(settings.home.resolve()),
            "backup_created_at": manifest["created_at"],
            "migration_level": manifest["migration_level"],
            "counts": counts,
            "audit": chain,
            "missing_files": missing,
            "bad_artifacts": bad,
            "ok": bool(chain["ok"]) and not missing and not bad,
        }
        who = Principal(username=actor, role=Role.admin)
        with store.write() as s:
            auditor.record(s, who, "backup.restore", str(settings.home.resolve()), after={
                "backup_created_at": manifest["created_at"],
                "manifest_sha256": manifest["manifest_sha256"],
                "audit_ok": chain["ok"], "events": chain["events"]})
    finally:
        store.close()
    return result


# -- helpers ----------------------------------------------------------------------------


def check_destination(dest: Path) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise Conflict(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()):
        raise Conflict(f"{dest} exists and is not empty; a backup goes into a new or empty folder")
    if not dest.parent.is_dir():
        raise NotFound(f"{dest.parent} does not exist")


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


def _check_manifest_fields(m: dict[str, Any]) -> None:
    files = m.get("files")
    if not isinstance(files, list):
        raise InvalidInput("the manifest lists no files")
    seen: set[str] = set()
    for e in files:
        if not isinstance(e, dict):
            raise InvalidInput("a manifest file entry is not an object")
        rel, sha, size = e.get("path"), e.get("sha256"), e.get("size")
        _check_rel(rel)
        assert isinstance(rel, str)
        if rel in seen:
            raise InvalidInput(f"the manifest lists {rel} twice")
        seen.add(rel)
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise InvalidInput(f"the manifest's checksum for {rel} is not a sha256")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput(f"the manifest's size for {rel} is not a byte count")
    level = m.get("migration_level")
    known = [n for n, _, _ in migration_files()]
    if not isinstance(level, int) or isinstance(level, bool) or level < 1:
        raise InvalidInput("the manifest has no valid migration_level")
    if level > max(known):
        raise InvalidInput(f"the backup is at schema migration {level}; this appliance "
                           f"({__version__}) knows up to {max(known)}: restore with a newer one")
    tables = m.get("tables")
    if not isinstance(tables, dict) or not tables:
        raise InvalidInput("the manifest lists no tables")
    for name, rows in tables.items():
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name) or not isinstance(rows, int) \
                or isinstance(rows, bool) or rows < 0:
            raise InvalidInput(f"the manifest's table entry {name!r} is not valid")
        if f"{DB_DIR}/{name}.parquet" not in seen:
            raise InvalidInput(f"the backup has no export of table {name}")
    if not isinstance(m.get("created_at"), str) or not isinstance(m.get("appliance_version"), str):
        raise InvalidInput("the manifest has no created_at or appliance_version")


def _check_rel(rel: Any) -> None:
    """A manifest path: relative, POSIX, under a known top folder, no '..' or hidden parts."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\x00" in rel:
        raise InvalidInput(f"the manifest names an invalid path: {rel!r}")
    parts = rel.split("/")
    if rel.startswith("/") or any(p in ("", ".", "..") or not _PART.fullmatch(p) for p in parts):
        raise InvalidInput(f"the manifest names a path outside the backup: {rel!r}")
    if parts[0] not in _TOP or (parts[0] == HEAD) != (len(parts) == 1) \
            or (parts[0] == DB_DIR and len(parts) != 2):
        raise InvalidInput(f"the manifest names a path a backup never holds: {rel!r}")


def _list_home_files(home: Path) -> tuple[list[tuple[str, Path, int]], list[dict[str, str]]]:
    """Regular files under the copied trees as (relative path, path, size); and what was left out."""
    files: list[tuple[str, Path, int]] = []
    skipped: list[dict[str, str]] = []
    for tree in TREES:
        root = home / tree
        if not root.is_dir() or root.is_symlink():
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            base = Path(dirpath)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))  # artifacts/.tmp
            for name in sorted(filenames):
                path = base / name
                rel = path.relative_to(home).as_posix()
                if name.startswith("."):
                    continue
                try:
                    _check_rel(rel)
                except InvalidInput:
                    skipped.append({"path": rel, "reason": "a name a backup cannot hold"})
                    continue
                st = path.lstat()
                if not _is_regular(st.st_mode):
                    skipped.append({"path": rel, "reason": "not a regular file"})
                    continue
                files.append((rel, path, st.st_size))
    return files, skipped


def _walk_backup(src: Path) -> Iterator[str]:
    """Every file in a backup, as a POSIX relative path; a link or device is refused."""
    for dirpath, dirnames, filenames in os.walk(src):
        base = Path(dirpath)
        for name in dirnames:
            if (base / name).is_symlink():
                raise InvalidInput(f"the backup holds a link: {(base / name).relative_to(src)}")
        for name in filenames:
            path = base / name
            rel = path.relative_to(src).as_posix()
            if not _is_regular(path.lstat().st_mode):
                raise InvalidInput(f"the backup holds something that is not a regular file: {rel}")
            yield rel


def _is_regular(mode: int) -> bool:
    return stat.S_ISREG(mode)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _artifact_rel(sha: str) -> str:
    return f"artifacts/{sha[:2]}/{sha[2:4]}/{sha}"


def _stamp_key(p: Path) -> tuple[str, int]:
    base, _, n = p.name.partition("-")
    return base, int(n or 1)


def _manifest_digest(m: dict[str, Any]) -> str:
    body = {k: v for k, v in m.items() if k != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _copy_hashed(src: Path, dst: Path) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` (fsync'd), returning the sha256 and size of what was written."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    with src.open("rb") as fin, dst.open("xb") as fout:
        while chunk := fin.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return digest.hexdigest(), size


def _copy_checked(src: Path, dst: Path, entry: dict[str, Any]) -> None:
    if src.is_symlink() or not src.is_file():
        raise InvalidInput(f"the backup is missing {entry['path']}")
    sha, size = _copy_hashed(src, dst)
    if sha != entry["sha256"] or size != entry["size"]:
        raise InvalidInput(f"{entry['path']} changed while it was copied: it no longer matches "
                           "its checksum", detail={"path": entry["path"]})
