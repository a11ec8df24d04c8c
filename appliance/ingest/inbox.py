"""The inbox folder: which entries are complete, which are hostile, and claiming.

Completion rules (DESIGN §4): hidden files and ``*.part``/``*.tmp`` are
ignored; a file is complete once renamed into place (an inotify IN_MOVED_TO
hint), when a sibling ``<file>.done`` marker exists, or when its size and
mtime are unchanged over two polls and it is older than a minimum age.

Anything that is not a plain regular file with one link (a symlink, FIFO,
device, socket, directory or hardlink) and any name outside the allowed
patterns is never opened: it is moved straight to quarantine with a reason.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.domain.ingest import Reason
from appliance.domain.names import DATASET_NAME, check_file_name
from appliance.errors import InvalidName

IGNORED_SUFFIXES = (".part", ".tmp", ".done")
INVALID_DATASET_FOLDER = "_invalid"
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=,@-]")


@dataclass(frozen=True)
class Claim:
    """A file moved into ``claimed/<dataset>/`` under a fresh id."""

    id: str
    dataset: str
    name: str   # the original file name, as dropped
    path: Path

    @staticmethod
    def parse(path: Path) -> Claim | None:
        claim_id, sep, name = path.name.partition("__")
        if not sep or len(claim_id) != 32:
            return None
        return Claim(id=claim_id, dataset=path.parent.name, name=name, path=path)


@dataclass(frozen=True)
class Hostile:
    path: Path
    dataset: str | None   # None when the dataset folder itself is bad
    reason: Reason
    message: str


@dataclass
class Scan:
    ready: list[tuple[str, Path]] = field(default_factory=list)  # (dataset, path)
    hostile: list[Hostile] = field(default_factory=list)


def entry_problem(st: os.stat_result) -> str | None:
    mode = st.st_mode
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if not stat.S_ISREG(mode):
        return "not a regular file"
    if st.st_nlink > 1:
        return "a hard link (it has other names on this disk)"
    return None


class InboxScanner:
    """Stateful poller: remembers each file's (size, mtime) between polls."""

    def __init__(self, inbox: Path, *, min_age_seconds: float) -> None:
        self.inbox = inbox
        self.min_age = min_age_seconds
        self._last: dict[Path, tuple[int, int]] = {}
        self._hinted: set[Path] = set()

    def hint_renamed(self, path: Path) -> None:
        """inotify saw ``path`` renamed into place: complete without waiting."""
        self._hinted.add(path)

    def poll(self) -> Scan:
        scan = Scan()
        seen: dict[Path, tuple[int, int]] = {}
        now = time.time()
        try:
            top = sorted(os.scandir(self.inbox), key=lambda e: e.name)
        except FileNotFoundError:
            return scan
        for folder in top:
            if folder.name.startswith("."):
                continue
            st = folder.stat(follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                scan.hostile.append(Hostile(Path(folder.path), None, Reason.invalid_name,
                                            "files go into inbox/<dataset>/, not the inbox itself"))
                continue
            if not DATASET_NAME.fullmatch(folder.name):
                for entry in os.scandir(folder.path):
                    if not entry.name.startswith("."):
                        scan.hostile.append(Hostile(
                            Path(entry.path), None, Reason.invalid_name,
                            f"dataset folder {folder.name!r} is not a valid dataset name "
                            f"(1-64 of a-z, 0-9, '_' and '-')"))
                continue
            self._scan_dataset(folder.name, Path(folder.path), now, scan, seen)
        self._last = seen
        self._hinted &= set(seen)
        return scan

    def _scan_dataset(
        self, dataset: str, folder: Path, now: float, scan: Scan, seen: dict[Path, tuple[int, int]]
    ) -> None:
        entries = list(os.scandir(folder))
        names = {e.name for e in entries}
        for entry in sorted(entries, key=lambda e: e.name):
            name = entry.name
            if name.startswith(".") or name.endswith(IGNORED_SUFFIXES):
                continue
            path = Path(entry.path)
            st = entry.stat(follow_symlinks=False)
            problem = entry_problem(st)
            if problem:
                scan.hostile.append(Hostile(path, dataset, Reason.not_regular_file,
                                            f"{name!r} is {problem}; only regular files are read"))
                continue
            try:
                check_file_name(name)
            except InvalidName as exc:
                scan.hostile.append(Hostile(path, dataset, Reason.invalid_name, exc.message))
                continue
            sig = (st.st_size, st.st_mtime_ns)
            seen[path] = sig
            complete = (
                path in self._hinted
                or f"{name}.done" in names
                or (self._last.get(path) == sig and now - st.st_mtime >= self.min_age)
            )
            if complete:
                scan.ready.append((dataset, path))


def safe_name(name: str) -> str:
    cleaned = _UNSAFE.sub("_", name).lstrip(".") or "unnamed"
    return cleaned[:150]


def claim(path: Path, dataset: str, claimed_dir: Path) -> Claim:
    """Atomically move ``path`` into the claimed area under a fresh id."""
    claim_id = uuid.uuid4().hex
    folder = claimed_dir / dataset
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{claim_id}__{path.name}"
    os.rename(path, target)
    done = path.with_name(path.name + ".done")
    if done.exists():
        done.unlink(missing_ok=True)
    return Claim(id=claim_id, dataset=dataset, name=path.name, path=target)


def unique_target(folder: Path, name: str, claim_id: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / safe_name(name)
    if target.exists() or target.is_symlink():
        stem = safe_name(name)
        target = folder / f"{claim_id[:8]}-{stem}"
    return target


def quarantine(
    path: Path,
    *,
    quarantine_dir: Path,
    dataset: str | None,
    name: str,
    reason: Reason | str,
    message: str,
    claim_id: str | None = None,
    detail: Any = None,
) -> Path:
    """Write ``<file>.reason.json`` first, then move the entry beside it (never opening it)."""
    folder = quarantine_dir / (dataset or INVALID_DATASET_FOLDER)
    cid = claim_id or uuid.uuid4().hex
    target = unique_target(folder, name, cid)
    reason_doc = {
        "file": name,
        "dataset": dataset,
        "reason": Reason(reason).value,
        "message": message,
        "detail": detail,
        "claim_id": cid,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    reason_path = target.with_name(target.name + ".reason.json")
    tmp = reason_path.with_name("." + reason_path.name + ".tmp")
    tmp.write_text(json.dumps(reason_doc, indent=2, default=str))
    os.replace(tmp, reason_path)
    os.rename(path, target)
    return target


def archive(claim: Claim, archive_dir: Path) -> Path:
    target = unique_target(archive_dir / claim.dataset, claim.name, claim.id)
    os.rename(claim.path, target)
    return target


def pending_claims(claimed_dir: Path) -> list[Claim]:
    """Claimed files left by a crash, oldest first."""
    out: list[Claim] = []
    if not claimed_dir.exists():
        return out
    for folder in sorted(claimed_dir.iterdir()):
        if not folder.is_dir() or not DATASET_NAME.fullmatch(folder.name):
            continue
        for path in folder.iterdir():
            c = Claim.parse(path)
            if c is not None:
                out.append(c)
    out.sort(key=lambda c: c.path.stat(follow_symlinks=False).st_mtime_ns)
    return out
