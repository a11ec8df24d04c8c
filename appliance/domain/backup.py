"""What backups answer: a backup's summary, an unreadable one, a restore's checks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.domain.audit import AuditVerification


class Backup(BaseModel):
    """A complete backup: its manifest in numbers."""

    model_config = ConfigDict(frozen=True)

    name: str
    path: str
    complete: Literal[True] = True
    created_at: str
    origin: str | None = Field(
        description="`scheduled` (the housekeeping.backup job: the only kind ever pruned), "
                    "`manual`, or null (made before backups recorded it).")
    appliance_version: str
    format_version: int
    migration_level: int
    files: int
    bytes: int
    counts: dict[str, Any] = Field(description="Rows per kind: datasets, runs, models, ...")
    audit_head: dict[str, Any] | None = Field(description="The audit anchor: seq and hash.")
    skipped: int = Field(description="Files of the home left out (not regular files, ...).")
    missing_references: int = Field(
        description="Files the store refers to that the home did not have.")
    manifest_sha256: str


class ScheduledBackup(Backup):
    """A backup taken by the housekeeping job, and the old scheduled ones it pruned."""

    pruned: list[str]


class BackupProblem(BaseModel):
    """A folder in backups/ that is not a readable, complete backup."""

    model_config = ConfigDict(frozen=True)

    name: str
    path: str
    complete: Literal[False] = False
    problem: str


BackupEntry = Annotated[Backup | BackupProblem, Field(discriminator="complete")]


class Restored(BaseModel):
    """A restore's checks: the audit chain, the files the rows refer to, the counts."""

    model_config = ConfigDict(frozen=True)

    home: str
    backup_created_at: str
    migration_level: int
    counts: dict[str, int]
    audit: AuditVerification
    missing_files: list[str]
    bad_artifacts: list[str]
    ok: bool


class Compacted(BaseModel):
    """What ``appliance compact`` did: the store copied into a fresh file, checked, swapped."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="the store file, now compacted")
    bytes_before: int = Field(description="the store file plus its WAL before")
    bytes_after: int
    tables: dict[str, int] = Field(description="rows per table: the same before and after")
    audit_events: int = Field(description="events in the audit chain, verified on both files")
    kept_old: str | None = Field(description="the old file, kept with --keep-old (it still "
                                             "holds the freed pages' bytes); None: removed")
    seconds: float

    @property
    def rows(self) -> int:
        return sum(self.tables.values())
