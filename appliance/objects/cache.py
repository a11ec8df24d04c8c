"""A host's bounded cache of objects fetched from a remote store.

Objects are immutable (write-once keys), so a cached copy never goes stale: it is named
by the sha256 of its store and key (``<cache>/ab/<hex>``), and a key whose last part is a
bare sha256 (an artifact: its bytes' own hash) is verified against it when fetched. When the cache grows past
its bound the least recently used files go first; the file just fetched never does.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO

from appliance.errors import StoreUnavailable

log = logging.getLogger(__name__)
_CONTENT = re.compile(r"([0-9a-f]{64})")


class ObjectCache:
    def __init__(self, root: Path, *, max_bytes: int, namespace: str) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        self.namespace = namespace
        self._lock = threading.Lock()

    def path_for(self, key: str) -> Path:
        name = hashlib.sha256(f"{self.namespace}\0{key}".encode()).hexdigest()
        return self.root / name[:2] / name

    def get(self, key: str) -> Path | None:
        path = self.path_for(key)
        try:
            os.utime(path)  # recently used: the last to be evicted
        except FileNotFoundError:
            return None
        return path

    def fill(self, key: str, write: Callable[[IO[bytes]], object]) -> Path:
        """Cache ``key`` by calling ``write`` on a temporary file, checked and renamed in."""
        tmp_dir = self.root / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                write(out)
            self._verify(key, tmp)
            return self.adopt(key, tmp)
        finally:
            tmp.unlink(missing_ok=True)

    def adopt(self, key: str, src: Path) -> Path:
        """Move ``src`` (same filesystem, or copied) in as the cached copy of ``key``."""
        final = self.path_for(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, final)
        except OSError:  # another filesystem
            import shutil

            shutil.copyfile(src, final)
        os.chmod(final, 0o444)
        self.evict(keep=final)
        return final

    def _verify(self, key: str, path: Path) -> None:
        m = _CONTENT.fullmatch(key.rsplit("/", 1)[-1])
        if m is None:
            return
        from appliance.objects.base import sha256_file

        if sha256_file(path) != m.group(1):
            raise StoreUnavailable(f"object {key!r} is corrupt: its bytes do not match its sha256",
                                   detail={"key": key})

    def size(self) -> int:
        return sum(p.stat().st_size for p in self._files())

    def _files(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")
                for p in d.iterdir() if p.is_file()]

    def evict(self, keep: Path | None = None) -> int:
        """Remove least recently used files until the cache is within its bound."""
        with self._lock:
            files = []
            for p in self._files():
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                files.append((st.st_mtime, st.st_size, p))
            total = sum(size for _, size, _ in files)
            removed = 0
            for _, size, path in sorted(files, key=lambda f: f[0]):
                if total <= self.max_bytes:
                    break
                if path == keep:
                    continue
                path.unlink(missing_ok=True)
                total -= size
                removed += 1
            if removed:
                log.info("object cache: evicted %d files, %d bytes left", removed, total)
            return removed
