"""Inbox file formats: which suffixes we take and how they are named."""

from __future__ import annotations

from appliance.domain.ingest import Reason
from appliance.errors import IngestRejected

# Longest suffix first, so ``x.csv.gz`` is not taken for a plain ``.gz``.
FORMATS: tuple[str, ...] = ("csv.gz", "csv", "parquet", "jsonl")


def detect_format(file_name: str) -> str:
    """Name the format of ``file_name`` from its suffix (case-insensitive).

    Returns one of ``"csv"``, ``"csv.gz"``, ``"parquet"``, ``"jsonl"``; anything
    else raises :class:`IngestRejected` with ``Reason.unsupported_format``.
    """
    lowered = file_name.lower()
    for fmt in FORMATS:
        stem = lowered[: -(len(fmt) + 1)]
        if lowered.endswith("." + fmt) and stem and not stem.endswith("/"):
            return fmt
    raise IngestRejected(
        Reason.unsupported_format.value,
        f"unsupported file type {file_name!r}: expected .csv, .csv.gz, .parquet or .jsonl",
        detail={"file": file_name},
    )
