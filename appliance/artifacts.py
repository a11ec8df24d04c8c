"""Content-addressed files under the object store's ``artifacts/`` keys (sha256).

An artifact's name is the sha256 of its bytes, so the same bytes are stored
once, a path can never be chosen by a user (only a checked hex digest is ever
joined into one), and every read can be verified against its name. Files are
written to a temporary name, fsync'd, made read-only and handed to the object
store (:mod:`appliance.objects`): by default a rename to
``$APPLIANCE_HOME/artifacts/ab/cd/<sha>``, in scale-out an upload to the bucket.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from appliance.errors import InvalidInput, NotFound, StoreUnavailable
from appliance.objects import LocalObjectStore, ObjectStore

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Artifact:
    sha256: str
    size: int
    path: Path


class ArtifactStore:
    """Artifacts in ``objects`` under ``artifacts/``; given only a folder, in that folder
    (``root/ab/cd/<sha>``). Temporary files go to ``root/.tmp`` in both cases."""

    def __init__(self, root: Path, *, objects: ObjectStore | None = None) -> None:
        self.root = root
        self.objects: ObjectStore = objects if objects is not None else LocalObjectStore(root)
        self._prefix = "" if objects is None else "artifacts/"

    def key_for(self, sha256: str) -> str:
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise InvalidInput(f"not a sha256 digest: {sha256!r}")
        return f"{self._prefix}{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def path_for(self, sha256: str) -> Path:
        """A local file with the artifact's bytes (the cached copy in scale-out)."""
        return self.objects.local_path(self.key_for(sha256))

    def put_bytes(self, data: bytes) -> Artifact:
        import io

        return self.put_stream(io.BytesIO(data))

    def put_file(self, src: Path) -> Artifact:
        with src.open("rb") as fh:
            return self.put_stream(fh)

    def put_stream(self, stream: IO[bytes]) -> Artifact:
        tmp_dir = self.root / ".tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(_CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            key = self.key_for(sha)
            os.chmod(tmp, 0o444)
            self.objects.put_file(key, tmp, move=True)  # same bytes: stored once
            return Artifact(sha, size, self.objects.local_path(key))
        finally:
            tmp.unlink(missing_ok=True)

    def exists(self, sha256: str) -> bool:
        return self.objects.exists(self.key_for(sha256))

    def read_bytes(self, sha256: str) -> bytes:
        """The artifact's bytes, refused if they no longer match their name."""
        try:
            path = self.path_for(sha256)
            data = path.read_bytes()
        except (FileNotFoundError, NotFound):
            raise NotFound(f"artifact {sha256} does not exist") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StoreUnavailable(
                f"artifact {sha256} is corrupt: its bytes no longer match its sha256",
                detail={"sha256": sha256, "path": str(path)},
            )
        return data

    def verify(self, sha256: str) -> bool:
        try:
            path = self.path_for(sha256)
        except (NotFound, StoreUnavailable):  # missing, or fetched and found corrupt
            return False
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest() == sha256
