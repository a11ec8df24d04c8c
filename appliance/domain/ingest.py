"""Ingestion vocabulary: version statuses, outcomes, rejection reason codes, the ledger entry."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class VersionStatus(StrEnum):
    accepted = "accepted"  # passed its contract; usable for training
    rejected = "rejected"  # failed its contract; kept for inspection, never trained on
    erased = "erased"  # rewritten by an erasure: reads the new version's file, never trained on


class IngestOutcome(StrEnum):
    accepted = "accepted"
    rejected = "rejected"        # became a rejected version (contract failed)
    quarantined = "quarantined"  # no version at all: unreadable, duplicate, unsafe, too big
    recovered = "recovered"      # finished after a restart (already recorded before a crash)


class Reason(StrEnum):
    """Stable machine codes written to ``<file>.reason.json``."""

    unsupported_format = "unsupported_format"
    not_regular_file = "not_regular_file"   # symlink, FIFO, device, directory, hardlink
    invalid_name = "invalid_name"
    too_big = "too_big"                     # file or decompressed stream past its cap
    empty = "empty"                         # zero bytes or header only
    encoding = "encoding"                   # not UTF-8 (Latin-1, UTF-16 BOM, ...)
    malformed = "malformed"                 # ragged rows, unclosed quote, bad value for type
    too_many_columns = "too_many_columns"   # more columns than APPLIANCE_MAX_COLUMNS
    header_too_long = "header_too_long"     # the CSV header line does not end within 1 MiB
    changed_while_reading = "changed_while_reading"  # a writer changed the file after the claim
    contract_failed = "contract_failed"
    duplicate = "duplicate"                 # the same bytes are already a version
    parser_crashed = "parser_crashed"       # the child died: a signal, a bad reply
    parser_failed = "parser_failed"         # the parser child could not start
    out_of_memory = "out_of_memory"         # the parser went past APPLIANCE_PARSE_MEMORY_MB
    timeout = "timeout"
    internal = "internal"


class Ingest(BaseModel):
    """One file taken (from the inbox or an upload), whatever its fate: the ingest ledger."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="The claim id (32 hex digits).")
    dataset: str
    file_name: str
    sha256: str | None
    size_bytes: int | None
    outcome: IngestOutcome
    reason: str | None = Field(description="A reason code (quarantine/<file>.reason.json) "
                                           "when the file was not accepted.")
    message: str
    version: int | None = Field(description="The dataset version it became, if any.")
    at: str
    duration_ms: float | None
    labels: dict[str, Any] | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="Only for a labels file (inbox/<model>__labels/): what the feedback "
                    "matched (received, matched, unknown_request_ids).")
