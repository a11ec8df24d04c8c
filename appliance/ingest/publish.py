"""Publishing a new version's Parquet snapshot to the object store (the ingest's last step).

The key is ``datasets/<name>/<source sha256>.parquet`` (``$APPLIANCE_HOME/datasets/...``
by default). It is named by the *source file's* hash, which the duplicate check has
just proved no recorded version of the dataset holds: an object already under that key
is left over from an attempt that crashed before its commit, so it is replaced.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from appliance.errors import Conflict, NotFound
from appliance.objects import ObjectStore

log = logging.getLogger(__name__)


def snapshot_key(dataset: str, source_sha256: str) -> str:
    return f"datasets/{dataset}/{source_sha256}.parquet"


def publish_snapshot(objects: ObjectStore, dataset: str, source_sha256: str,
                     staging: Path) -> tuple[str, Path]:
    """Move ``staging`` in under the version's key: (the key, a local path to read it)."""
    key = snapshot_key(dataset, source_sha256)
    try:
        objects.put_file(key, staging, move=True)
    except Conflict:  # an uncommitted attempt's snapshot: no version refers to it
        log.warning("replacing %s, left by an ingest that did not commit", key)
        objects.delete(key)
        objects.put_file(key, staging, move=True)
    return key, objects.local_path(key)


def readable(objects: ObjectStore, pending: list[tuple[uuid.UUID, str]]
             ) -> list[tuple[uuid.UUID, Path]]:
    """Local paths of the snapshots of ``pending`` versions; a missing one is logged."""
    found = []
    for version_id, key in pending:
        try:
            found.append((version_id, objects.local_path(Path(key).as_posix())))
        except NotFound:
            log.warning("snapshot %s is missing: its summary cannot be made", key)
    return found
