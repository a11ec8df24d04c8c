"""An S3-compatible object store through pyarrow's S3 filesystem (no extra dependency).

Keys live under ``s3://<bucket>/<prefix>/``. S3 has no "create if absent", so write-once
is checked before the upload and again by reading the object back when it exists: the same
bytes are a no-op, other bytes a :class:`~appliance.errors.Conflict`. For content-addressed
keys (the sha256 is in the key) two hosts racing write the same bytes, so the check is
exact; for other keys a race between two first writers is the one case it cannot refuse.
Reads go through the host's :class:`~appliance.objects.cache.ObjectCache`.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from appliance.errors import Conflict, NotFound, StoreUnavailable
from appliance.objects.base import ObjectInfo, Stored, check_key
from appliance.objects.cache import ObjectCache

if TYPE_CHECKING:
    import pyarrow.fs

_CHUNK = 8 * 1024 * 1024


class S3ObjectStore:
    def __init__(self, fs: pyarrow.fs.FileSystem, bucket: str, prefix: str,
                 cache: ObjectCache, *, endpoint: str | None = None) -> None:
        self.fs = fs
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache = cache
        self.endpoint = endpoint

    @property
    def location(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint}" if self.endpoint else where

    def _path(self, key: str) -> str:
        check_key(key)
        return "/".join(p for p in (self.bucket, self.prefix, key) if p)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StoreUnavailable(f"object store {self.location}: {what} failed: {exc}",
                                   detail={"location": self.location}) from exc

    def _info(self, key: str) -> Any:
        import pyarrow.fs as pafs

        info = self._call(f"looking up {key!r}", self.fs.get_file_info, self._path(key))
        return info if info.type == pafs.FileType.File else None

    # -- writing ----------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes) -> Stored:
        stored = self._put(key, len(data), lambda: io.BytesIO(data))
        if stored.written:
            self.cache.fill(key, lambda out: out.write(data))
        return stored

    def put_file(self, key: str, src: Path, *, move: bool = False) -> Stored:
        stored = self._put(key, src.stat().st_size, lambda: src.open("rb"))
        if move:  # this host reads it next (a version's summary, a model's load): keep it
            if stored.written:
                self.cache.adopt(key, src)
            else:
                src.unlink(missing_ok=True)
        return stored

    def _put(self, key: str, size: int, reader: Any) -> Stored:
        if self._info(key) is not None:
            with reader() as src:
                sha = _sha256(src)
            with self._call(f"reading {key!r}", self.fs.open_input_stream, self._path(key)) as fh:
                if _sha256(fh) != sha:
                    raise Conflict(f"object {key!r} already exists with other bytes: keys are "
                                   "write-once", detail={"key": key})
            return Stored(key, sha, size, written=False)
        digest = hashlib.sha256()  # hashed as it is sent: one read of the source
        with reader() as src, self._call(f"writing {key!r}", self.fs.open_output_stream,
                                         self._path(key)) as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                self._call(f"writing {key!r}", out.write, chunk)
        return Stored(key, digest.hexdigest(), size, written=True)

    # -- reading ----------------------------------------------------------------

    def local_path(self, key: str) -> Path:
        cached = self.cache.get(check_key(key))
        if cached is not None:
            return cached

        def download(out: IO[bytes]) -> None:
            try:
                fh = self._call(f"reading {key!r}", self.fs.open_input_stream, self._path(key))
            except FileNotFoundError:
                raise NotFound(f"object {key!r} does not exist", detail={"key": key}) from None
            with fh:
                while chunk := fh.read(_CHUNK):
                    out.write(chunk)

        return self.cache.fill(key, download)

    def open(self, key: str) -> IO[bytes]:
        return self.local_path(key).open("rb")

    def get_bytes(self, key: str) -> bytes:
        return self.local_path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.cache.get(check_key(key)) is not None or self._info(key) is not None

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        import pyarrow.fs as pafs

        if prefix.strip("/"):
            check_key(prefix.rstrip("/"))
        base = "/".join(p for p in (self.bucket, self.prefix) if p)
        folder = "/".join(p for p in (base, prefix.rstrip("/")) if p)
        single = self._call("listing", self.fs.get_file_info, folder)
        if single.type == pafs.FileType.File:
            return [ObjectInfo(prefix.rstrip("/"), single.size)]
        if single.type == pafs.FileType.NotFound:
            return []
        infos = self._call("listing", self.fs.get_file_info,
                           pafs.FileSelector(folder, recursive=True, allow_not_found=True))
        return sorted((ObjectInfo(i.path[len(base) + 1:], i.size) for i in infos
                       if i.type == pafs.FileType.File), key=lambda o: o.key)

    def delete(self, key: str) -> bool:
        if self._info(key) is None:
            return False
        self._call(f"deleting {key!r}", self.fs.delete_file, self._path(key))
        cached = self.cache.get(key)
        if cached is not None:
            os.unlink(cached)
        return True


def _sha256(stream: Any) -> str:
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()

