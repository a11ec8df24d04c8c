"""Backup and restore: a consistent, checksummed snapshot of a home, and its way back.

A backup is a folder::

    manifest.json          written last: format, versions, counts, sha256 + size of every file
    db/                    DuckDB's EXPORT DATABASE (one Parquet file per table)
    artifacts/ datasets/ jobs/   copies of the home's trees (content-addressed or immutable)
    audit.head             the audit chain's anchor, as it was at the export

The export and the listing of files happen under the store's write lock, so
they describe one moment; the copies happen after it (the files are never
rewritten in place). A backup is built in ``PATH.partial`` and renamed to
``PATH`` once its manifest is written: a folder without a manifest is not a
backup. ``restore`` checks the manifest and every checksum before it writes
anything, rebuilds the store in a temporary folder inside the target home,
moves it into place and verifies the audit chain.
"""

from appliance.backup.manifest import (
    _manifest_digest,
    check_destination,
    copy_backup,
    read_manifest,
    summarize,
    verify_backup,
)
from appliance.backup.restore import restore
from appliance.backup.service import BackupService

__all__ = [
    "BackupService",
    "_manifest_digest",
    "check_destination",
    "copy_backup",
    "read_manifest",
    "restore",
    "summarize",
    "verify_backup",
]
