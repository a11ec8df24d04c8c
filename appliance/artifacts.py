"""Content-addressed files under ``$APPLIANCE_HOME/artifacts`` (sha256).

An artifact's name is the sha256 of its bytes, so the same bytes are stored
once, a path can never be chosen by a user (only a checked hex digest is ever
joined into one), and every read can be verified against its name. Files are
written to a temporary name, fsync'd, renamed into place and made read-only.
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

_SHA256 = re.compile(r"[0-9a-f]{64}")
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Artifact:
    sha256: str
    size: int
    path: Path


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise InvalidInput(f"not a sha256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

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
            final = self.path_for(sha)
            if final.exists():
                return Artifact(sha, size, final)  # same bytes: stored once
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
            return Artifact(sha, size, final)
        finally:
            tmp.unlink(missing_ok=True)

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def read_bytes(self, sha256: str) -> bytes:
        """The artifact's bytes, refused if they no longer match their name."""
        path = self.path_for(sha256)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"artifact {sha256} does not exist") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StoreUnavailable(
                f"artifact {sha256} is corrupt: its bytes no longer match its sha256",
                detail={"sha256": sha256, "path": str(path)},
            )
        return data

    def verify(self, sha256: str) -> bool:
        path = self.path_for(sha256)
        if not path.is_file():
            return False
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        return digest.hexdigest() == sha256
