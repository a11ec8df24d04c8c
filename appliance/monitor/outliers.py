"""The share of a model's live inputs its outlier detectors flagged, over a window.

Every served row of a version with an outlier detector is scored as it is predicted
(``appliance.serve.service``) and logged with its flag and score; this service reads
the log back: per version and per time bucket the rows checked and flagged, and the
most outlying rows as examples. ``/metrics`` carries the same counts as counters
(``appliance_prediction_outliers_total`` over ``appliance_prediction_outlier_checks_total``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from appliance.domain.outliers import (
    OutlierBucket,
    OutlierExample,
    OutlierReport,
    OutlierVersion,
    cut_cells,
)
from appliance.errors import InvalidInput
from appliance.store import outliers as q
from appliance.store.db import Store

MAX_WINDOW_HOURS = 366 * 24
MAX_BUCKETS = 1440
MAX_EXAMPLES = 200


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OutlierService:
    def __init__(self, store: Store, registry: Any, *,
                 flush: Callable[[], object] | None = None,
                 clock: Callable[[], dt.datetime] = _now) -> None:
        self.store = store
        self.registry = registry
        self.flush = flush  # drains the prediction log's queue before a window is read
        self.clock = clock

    def report(self, model: str, *, window_hours: float = 24.0, bucket_hours: float = 1.0,
               examples: int = 20) -> OutlierReport:
        """Outliers among ``model``'s served inputs over the last ``window_hours``."""
        _check(window_hours, bucket_hours, examples)
        versions = {v.number: v for v in self.registry.versions(model)}  # NotFound if unknown
        since = self.clock() - dt.timedelta(hours=window_hours)
        if self.flush is not None:
            self.flush()
        with self.store.analytics() as s:
            totals = q.counts(s, model, since, None)
            buckets = q.counts(s, model, since, bucket_hours * 3600)
            rows = q.flagged(s, model, since, examples) if examples else []
        per_version = [OutlierVersion(
            version=c.version, rows=c.rows, checked=c.checked, outliers=c.outliers,
            share=_share(c.outliers, c.checked),
            contamination=_contamination(versions.get(c.version))) for c in totals]
        checked = sum(v.checked for v in per_version)
        flagged = sum(v.outliers for v in per_version)
        return OutlierReport(
            model=model, window_hours=window_hours, bucket_hours=bucket_hours,
            rows=sum(v.rows for v in per_version), checked=checked, outliers=flagged,
            share=_share(flagged, checked), versions=per_version,
            series=[OutlierBucket(bucket=dt.datetime.fromtimestamp(c.bucket, dt.UTC),
                                  version=c.version, checked=c.checked, outliers=c.outliers,
                                  share=_share(c.outliers, c.checked))
                    for c in buckets if c.checked],
            examples=[OutlierExample(request_id=r.request_id, version=r.version, at=r.at,
                                     score=r.score, inputs=cut_cells(r.inputs)) for r in rows])


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _contamination(version: Any) -> float | None:
    detector = getattr(version, "outliers", None)
    return None if detector is None else detector.contamination


def _check(window_hours: float, bucket_hours: float, examples: int) -> None:
    if not 0 < window_hours <= MAX_WINDOW_HOURS:
        raise InvalidInput(f"window_hours is more than 0 and at most {MAX_WINDOW_HOURS}",
                           detail={"field": "window_hours"})
    if not 0 < bucket_hours <= window_hours:
        raise InvalidInput("bucket_hours is more than 0 and at most window_hours",
                           detail={"field": "bucket_hours"})
    if window_hours / bucket_hours > MAX_BUCKETS:
        raise InvalidInput(f"at most {MAX_BUCKETS} buckets: raise bucket_hours",
                           detail={"field": "bucket_hours"})
    if not 0 <= examples <= MAX_EXAMPLES:
        raise InvalidInput(f"examples is 0 to {MAX_EXAMPLES}", detail={"field": "examples"})
