"""Retention windows for the prediction log, the labels and the job-run history.

The ``housekeeping.retention`` job calls :meth:`RetentionService.enforce` on its
schedule: rows strictly older than ``now - window`` are deleted (a row exactly at
the cut-off is kept), in one transaction with one audit event carrying the counts
and cut-offs. A window of 0 keeps those rows forever. After a pass that deleted
anything the store is CHECKPOINTed, so the WAL is folded and the freed blocks are
reused by DuckDB.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from appliance.audit import Auditor
from appliance.domain.privacy import RetentionPass
from appliance.store import erasures as eq
from appliance.store import jobs as jq
from appliance.store.db import Store

Clock = Callable[[], dt.datetime]
SYSTEM = "scheduler"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class RetentionService:
    def __init__(self, store: Store, auditor: Auditor, *, predictions_days: float = 0.0,
                 labels_days: float = 0.0, job_runs_days: float = 0.0,
                 clock: Clock = utcnow) -> None:
        self.store = store
        self.auditor = auditor
        self.windows = (predictions_days, labels_days, job_runs_days)
        self.clock = clock

    def describe(self) -> str:
        names = ("predictions", "labels", "job runs")
        kept = [f"{n} older than {d:g} days" for n, d in zip(names, self.windows, strict=True)
                if d > 0]
        return "delete " + ", ".join(kept) if kept else "no retention window is set"

    def enforce(self) -> RetentionPass:
        now = self.clock()
        cut = [now - dt.timedelta(days=d) if d > 0 else None for d in self.windows]
        predictions = labels = 0
        if self.store.parts is not None:  # scale-out: rewrite the log's parts first
            salt = f"retention-{now.isoformat()}"
            if cut[0]:
                predictions = eq.delete_in_parts_before(self.store, "predictions", cut[0], salt)
            if cut[1]:
                labels = eq.delete_in_parts_before(self.store, "labels", cut[1], salt)
        with self.store.write() as s:
            if self.store.parts is None:
                predictions = eq.delete_predictions_before(s, cut[0]) if cut[0] else 0
                labels = eq.delete_labels_before(s, cut[1]) if cut[1] else 0
            job_runs = jq.delete_finished_before(s, cut[2]) if cut[2] else 0
            result = RetentionPass(
                predictions_deleted=predictions, labels_deleted=labels, job_runs_deleted=job_runs,
                predictions_before=_iso(cut[0]), labels_before=_iso(cut[1]),
                job_runs_before=_iso(cut[2]), checkpointed=bool(predictions + labels + job_runs),
                at=now.isoformat())
            self.auditor.record(s, SYSTEM, "retention.enforce", "housekeeping.retention",
                                after=result.model_dump(exclude={"at", "checkpointed"}))
        if result.checkpointed:
            self.store.checkpoint()
        return result


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.isoformat()
