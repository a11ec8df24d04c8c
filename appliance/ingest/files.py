"""Files on their way in: uploads written to the claimed area, content hashes, late writers."""

from __future__ import annotations

import hashlib
import os
import stat
import uuid
from pathlib import Path
from typing import IO

from appliance.domain.ingest import Reason
from appliance.domain.names import printable_name
from appliance.errors import IngestRejected, TooLarge
from appliance.ingest import inbox

_CHUNK = 4 * 1024 * 1024


class UploadSink:
    """Writes an incoming file to ``claimed/<dataset>/.<id>.part``; ``commit`` claims it.

    The size cap is enforced while writing, so a 2 GB upload is refused as
    soon as it passes the limit instead of after it has filled the disk.
    """

    def __init__(self, claimed_dir: Path, dataset: str, name: str, max_bytes: int) -> None:
        self.claim_id = uuid.uuid4().hex
        self.dataset = dataset
        self.name = name
        self.max_bytes = max_bytes
        folder = claimed_dir / dataset
        folder.mkdir(parents=True, exist_ok=True)
        self.target = folder / f"{self.claim_id}__{name}"
        self.tmp = folder / f".{self.claim_id}.part"
        self._fh: IO[bytes] | None = self.tmp.open("wb")
        self.written = 0

    def write(self, chunk: bytes) -> None:
        assert self._fh is not None
        self.written += len(chunk)
        if self.written > self.max_bytes:
            self.discard()
            raise TooLarge(f"the file is larger than the {self.max_bytes} byte limit",
                           detail={"limit_bytes": self.max_bytes})
        self._fh.write(chunk)

    def commit(self) -> inbox.Claim:
        assert self._fh is not None
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        os.rename(self.tmp, self.target)
        return inbox.Claim(id=self.claim_id, dataset=self.dataset, name=self.name,
                           path=self.target)

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self.tmp.unlink(missing_ok=True)


def sha256_file(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IngestRejected(Reason.not_regular_file, f"{path.name!r} is not a regular file")
        h = hashlib.sha256()
        with os.fdopen(fd, "rb", closefd=False) as fh:
            while chunk := fh.read(_CHUNK):
                h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


def check_unchanged(path: Path, name: str, before: os.stat_result, *, discard: Path) -> None:
    """Refuse a claimed file that changed while it was hashed and parsed.

    A writer that paused past the inbox's stability window and then wrote on
    (through the descriptor it still holds) changes the file under the reader:
    what was read may be half of it, and accepting it would keep the half. So
    the claim's stat before the read is compared with one after it; on a
    change ``discard`` (the staging Parquet) is removed and the file refused.
    """
    after = os.stat(path, follow_symlinks=False)
    if (after.st_ino, after.st_size, after.st_mtime_ns) == \
            (before.st_ino, before.st_size, before.st_mtime_ns):
        return
    discard.unlink(missing_ok=True)
    raise IngestRejected(
        Reason.changed_while_reading,
        f"'{printable_name(name)}' changed while it was being read ({before.st_size:,} then "
        f"{after.st_size:,} bytes): its writer was still writing after the file was taken, "
        "so none of it was accepted. Write the file under a .part (or hidden) name and "
        "rename it into place when it is complete.",
        detail={"size_before": before.st_size, "size_after": after.st_size,
                "mtime_ns_before": before.st_mtime_ns, "mtime_ns_after": after.st_mtime_ns},
    )
