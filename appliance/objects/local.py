"""The default object store: files under the home, at exactly the paths used before.

A key is a path relative to the root (``datasets/<name>/<sha>.parquet`` is
``$APPLIANCE_HOME/datasets/<name>/<sha>.parquet``). Write-once is atomic: the bytes are
hard-linked into place, which fails if the key exists, so two writers never both win.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import IO

from appliance.errors import Conflict, NotFound
from appliance.objects.base import ObjectInfo, Stored, check_key, sha256_file


class LocalObjectStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put_bytes(self, key: str, data: bytes) -> Stored:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".put-")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return self.put_file(key, Path(tmp), move=True)

    def put_file(self, key: str, src: Path, *, move: bool = False) -> Stored:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        sha = sha256_file(src)
        size = src.stat().st_size
        tmp: Path | None = None
        if not move:  # a private copy beside the key, so the link below is the only step
            fd, name = tempfile.mkstemp(dir=final.parent, prefix=".put-")
            os.close(fd)
            tmp = Path(name)
            shutil.copyfile(src, tmp)
        staged = src if tmp is None else tmp
        try:
            try:
                os.link(staged, final)
            except FileExistsError:
                return self._existing(key, final, sha, size)
            except OSError:  # no hard links here (another filesystem): check, then rename
                if final.exists():
                    return self._existing(key, final, sha, size)
                os.replace(staged, final)
                return Stored(key, sha, size, written=True)
            return Stored(key, sha, size, written=True)
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
            elif move:
                src.unlink(missing_ok=True)

    def _existing(self, key: str, final: Path, sha: str, size: int) -> Stored:
        if sha256_file(final) != sha:
            raise Conflict(f"object {key!r} already exists with other bytes: keys are write-once",
                           detail={"key": key})
        return Stored(key, sha, size, written=False)

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"object {key!r} does not exist", detail={"key": key})
        return path

    def open(self, key: str) -> IO[bytes]:
        return self.local_path(key).open("rb")

    def get_bytes(self, key: str) -> bytes:
        return self.local_path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        base = self.root / check_key(prefix.rstrip("/")) if prefix.strip("/") else self.root
        if base.is_file():
            return [ObjectInfo(prefix, base.stat().st_size)]
        found = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.startswith("."):
                    continue
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                found.append(ObjectInfo(key, path.stat().st_size))
        return found

    def delete(self, key: str) -> bool:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True
