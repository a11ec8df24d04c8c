"""The object store's contract: keys, results, and the interface both stores implement.

Keys are write-once: a second ``put`` of a key with the same bytes is a no-op, with
different bytes a :class:`~appliance.errors.Conflict`. Content-addressed things carry
their sha256 in the key, so every host that reads a key reads the same bytes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

from appliance.errors import InvalidInput

MAX_KEY = 1024
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._=-]{0,254}")
_CHUNK = 4 * 1024 * 1024


def check_key(key: object) -> str:
    """``key`` if it is a safe relative key: '/'-separated segments of letters, digits,
    ``. _ = -`` (no empty, ``.`` or ``..`` segment, no leading '/', no control character,
    no backslash). Refused keys never reach a path or a bucket."""
    if not isinstance(key, str) or not key or len(key) > MAX_KEY:
        raise InvalidInput(f"not an object key: {str(key)[:80]!r}", detail={"key": str(key)[:80]})
    for seg in key.split("/"):
        if not _SEGMENT.fullmatch(seg) or seg.strip(".") == "":
            raise InvalidInput(f"not an object key: {key[:80]!r} (segment {seg[:40]!r})",
                               detail={"key": key[:80]})
    return key


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Stored:
    """What a ``put`` stored: the key, its bytes' sha256 and size, and whether this call
    wrote it (False: the same bytes were already there)."""

    key: str
    sha256: str
    size: int
    written: bool


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


class ObjectStore(Protocol):
    """Where shared files live. Every method checks its key with :func:`check_key`."""

    @property
    def location(self) -> str:
        """Where the objects are, for messages and docs (no credentials)."""
        ...

    def put_file(self, key: str, src: Path, *, move: bool = False) -> Stored:
        """Store ``src``'s bytes under ``key`` (write-once); ``move`` lets the store take
        the file itself (a rename on local disk) instead of copying it."""
        ...

    def put_bytes(self, key: str, data: bytes) -> Stored: ...

    def local_path(self, key: str) -> Path:
        """A local file holding the object's bytes (the file itself, or its cached copy);
        :class:`~appliance.errors.NotFound` if there is no such object."""
        ...

    def open(self, key: str) -> IO[bytes]: ...

    def get_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a key or a folder of keys)."""
        ...

    def delete(self, key: str) -> bool:
        """Housekeeping only: remove ``key``; False if it was not there."""
        ...
