"""Delayed labels dropped in ``inbox/<model>__labels/``: a file of request_id,label rows.

Parsed by the same child as any inbox file; :class:`IngestService` hands the
rows to the serving side's feedback, then archives the file, or quarantines it
with a reason.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from appliance.domain.ingest import Reason
from appliance.errors import IngestRejected
from appliance.ingest import inbox
from appliance.ingest.files import check_unchanged
from appliance.ingest.worker import ParserPool

LABELS_SUFFIX = "__labels"  # inbox/<model>__labels/: delayed ground truth, not a dataset


def read_labels(pool: ParserPool, claim: inbox.Claim, *, fmt: str, staging: Path,
                before: os.stat_result) -> list[dict[str, Any]]:
    """The rows of a labels file as ``{"request_id": str, "label": ...}``, or a refusal."""
    import polars as pl

    try:
        result = pool.parse(claim.path, staging, fmt=fmt, dataset=claim.dataset,
                            contract_yaml=None, contract_version=None)
        check_unchanged(claim.path, claim.name, before, discard=staging)
        if not result.ok:
            raise IngestRejected(Reason(result.reason or Reason.internal), result.message)
        frame = pl.read_parquet(staging)
    finally:
        staging.unlink(missing_ok=True)
    if sorted(frame.columns) != ["label", "request_id"]:
        raise IngestRejected(Reason.contract_failed,
                             f"a labels file has exactly the columns request_id,label; "
                             f"found {', '.join(frame.columns)}")
    records: list[dict[str, Any]] = frame.with_columns(
        pl.col("request_id").cast(pl.String)).to_dicts()
    return records
