"""The backup format: its manifest, checksums, and the checks that guard a restore."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance import __version__
from appliance.domain.backup import Backup
from appliance.durable import fsync_dir, write_synced
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.store.migrations import migration_files

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

# -- reading and checking a backup --------------------------------------------------

# -- restoring ------------------------------------------------------------------------

# -- helpers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    path: str  # POSIX, relative to the backup root
    sha256: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}


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


def copy_backup(src: Path, dest: Path, progress: Progress | None = None) -> Backup:
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


def summarize(path: Path, manifest: dict[str, Any]) -> Backup:
    """A checked manifest (``read_manifest``) in numbers."""
    files = manifest["files"]
    origin = manifest.get("origin")
    return Backup(
        name=path.name,
        path=str(path.resolve()),
        created_at=manifest["created_at"],
        origin=origin if isinstance(origin, str) else None,
        appliance_version=manifest["appliance_version"],
        format_version=manifest["format_version"],
        migration_level=manifest["migration_level"],
        files=len(files),
        bytes=sum(int(e["size"]) for e in files),
        counts=manifest.get("counts") or {},
        audit_head=manifest.get("audit_head"),
        skipped=len(manifest.get("skipped") or []),
        missing_references=len(manifest.get("missing_references") or []),
        manifest_sha256=manifest["manifest_sha256"],
    )


def check_destination(dest: Path) -> None:
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise Conflict(f"{dest} exists and is not a folder")
    if dest.is_dir() and any(dest.iterdir()):
        raise Conflict(f"{dest} exists and is not empty; a backup goes into a new or empty folder")
    if not dest.parent.is_dir():
        raise NotFound(f"{dest.parent} does not exist")


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
