"""Small durability helpers: make a rename or a new file survive a power cut."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(folder: Path) -> None:
    """Make renames into ``folder`` durable; not every platform lets a directory be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_synced(path: Path, data: bytes) -> None:
    """Create ``path`` (never overwrite) with ``data``, flushed to disk."""
    with path.open("xb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def require_free_disk(folder: Path, *, floor_mb: int, extra_bytes: int, doing: str) -> None:
    """The free-disk guard (DESIGN §7): ``floor_mb`` plus what the work will write, or
    :class:`~appliance.errors.InsufficientDisk` (507) before anything is written."""
    import shutil

    from appliance.errors import InsufficientDisk

    free = shutil.disk_usage(folder).free
    need = floor_mb * 1024 * 1024 + extra_bytes
    if free < need:
        raise InsufficientDisk(f"only {free // 2**20} MiB free; {doing} needs {need // 2**20} MiB",
                               detail={"free_bytes": free, "needed_bytes": need})
