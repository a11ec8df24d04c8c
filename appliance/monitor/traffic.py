"""Live traffic and labelled metrics over time, per model version, from the prediction log.

``traffic`` answers the serving dashboard: per time bucket and version, the
requests logged, requests per second, latency percentiles (p50/p95/p99) and,
for a classifier, how many of each class it predicted. ``metrics`` answers the
monitoring dashboard: per bucket of prediction time and version, accuracy (a
classifier) or RMSE (a regressor) over the predictions whose delayed label has
arrived, and the label coverage. Shadow scores are reported apart (``shadow``
true) and never counted as served traffic.

Windows end now and are bounded; a bad window is ``InvalidInput`` (400) and an
unknown model ``NotFound`` (404).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

from appliance.domain.traffic import (
    LiveMetrics,
    MetricBucket,
    MetricVersion,
    Traffic,
    TrafficBucket,
    TrafficTotal,
    TrafficVersion,
)
from appliance.errors import InvalidInput
from appliance.store import traffic as q
from appliance.store.db import Store
from appliance.store.traffic import LabelledRow

MAX_MINUTES = 7 * 24 * 60
MAX_BUCKET_SECONDS = 24 * 3600
MAX_HOURS = 366 * 24
MAX_BUCKETS = 1440
MAX_CLASSES = 50


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TrafficService:
    def __init__(self, store: Store, registry: Any, *,
                 flush: Callable[[], object] | None = None,
                 clock: Callable[[], dt.datetime] = _now) -> None:
        self.store = store
        self.registry = registry
        self.flush = flush  # drains the prediction log's queue before a window is read
        self.clock = clock

    # -- serving: requests, latency, classes -------------------------------------------

    def traffic(self, model: str, *, minutes: int = 60, bucket_seconds: int = 60) -> Traffic:
        """Requests and latency per ``bucket_seconds`` and version over the last ``minutes``."""
        _bounded("minutes", minutes, 1, MAX_MINUTES)
        _bounded("bucket_seconds", bucket_seconds, 1, MAX_BUCKET_SECONDS)
        span = minutes * 60
        _fits("bucket_seconds", bucket_seconds, span, "minutes")
        self.registry.aliases(model)  # NotFound for an unknown model
        until = self.clock()
        since = until - dt.timedelta(seconds=span)
        if self.flush is not None:
            self.flush()
        with self.store.analytics() as s:
            buckets = q.latency(s, model, since, until, bucket_seconds)
            window = q.latency(s, model, since, until, None)
            classes = q.class_counts(s, model, since, until, bucket_seconds,
                                     max_classes=MAX_CLASSES)
        starts = _starts(since, until, bucket_seconds)
        width = {b: _overlap(b, bucket_seconds, since, until) for b in starts}
        counts: dict[tuple[float, int, bool], dict[str, int]] = {}
        for b, v, sh, cls, n in classes:
            counts.setdefault((b, v, sh), {})[cls] = n
        classifiers = {v for _, v, _, _, _ in classes}
        series = [
            TrafficBucket(
                **row._asdict() | {"bucket": _time(row.bucket)},
                requests_per_second=_rate(row.requests, width.get(row.bucket, 0.0)),
                classes=counts.get((row.bucket, row.version, row.shadow), {})
                if row.version in classifiers else None)
            for row in buckets
        ]
        served: dict[float, int] = {b: 0 for b in starts}
        for row in buckets:
            if not row.shadow:
                served[row.bucket] = served.get(row.bucket, 0) + row.requests
        totals = [TrafficTotal(bucket=_time(b), requests=n, requests_per_second=_rate(n, width[b]))
                  for b, n in sorted(served.items()) if b in width]
        # the window's rows: their ``bucket`` (0.0) is no field of TrafficVersion, so dropped
        versions = [TrafficVersion(**row._asdict(), requests_per_second=_rate(row.requests, span))
                    for row in window]
        total = sum(row.requests for row in window if not row.shadow)
        return Traffic(
            model=model, minutes=minutes, bucket_seconds=bucket_seconds, since=since,
            until=until, requests=total, requests_per_second=_rate(total, span),
            versions=versions, totals=totals, series=series,
        )

    # -- monitoring: metrics from delayed labels -------------------------------------------

    def metrics(self, model: str, *, hours: int = 168, bucket_hours: int = 24) -> LiveMetrics:
        """Accuracy or RMSE and label coverage per ``bucket_hours`` of prediction time and
        version over the last ``hours``."""
        _bounded("hours", hours, 1, MAX_HOURS)
        _bounded("bucket_hours", bucket_hours, 1, MAX_HOURS)
        _fits("bucket_hours", bucket_hours * 3600, hours * 3600, "hours", unit=3600)
        self.registry.aliases(model)  # NotFound for an unknown model
        until = self.clock()
        since = until - dt.timedelta(hours=hours)
        if self.flush is not None:
            self.flush()
        with self.store.analytics() as s:
            buckets = q.labelled(s, model, since, until, bucket_hours * 3600)
            window = q.labelled(s, model, since, until, None)
        classifiers = {row.version for row in window if row.classification}
        series = [MetricBucket(bucket=_time(row.bucket), **dict(_metric(row, classifiers)))
                  for row in buckets]
        versions = [_metric(row, classifiers) for row in window]
        return LiveMetrics(
            model=model, hours=hours, bucket_hours=bucket_hours, since=since, until=until,
            buckets=[_time(b) for b in _starts(since, until, bucket_hours * 3600)],
            versions=versions, series=series,
        )


# -- helpers ------------------------------------------------------------------------------


def _bounded(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}",
                           detail={"field": name, "value": value if isinstance(value, int)
                                   else str(value)[:100]})


def _fits(name: str, width: int, span: int, window: str, *, unit: int = 1) -> None:
    if width > span:
        raise InvalidInput(f"{name} is wider than the window of {span // unit} {window}",
                           detail={"field": name})
    if math.ceil(span / width) + 1 > MAX_BUCKETS:
        raise InvalidInput(f"at most {MAX_BUCKETS} buckets a window: widen {name} or shorten "
                           f"{window}", detail={"field": name, "max_buckets": MAX_BUCKETS})


def _starts(since: dt.datetime, until: dt.datetime, width: float) -> list[float]:
    """Every bucket start (epoch seconds, aligned to ``width``) overlapping [since, until)."""
    first = math.floor(since.timestamp() / width) * width
    end = until.timestamp()
    out: list[float] = []
    b = first
    while b < end:
        out.append(float(b))
        b += width
    return out


def _overlap(start: float, width: float, since: dt.datetime, until: dt.datetime) -> float:
    """Seconds of the bucket inside the window: the first and the current one are partial."""
    return max(0.0, min(start + width, until.timestamp()) - max(start, since.timestamp()))


def _rate(n: int, seconds: float) -> float | None:
    return n / seconds if seconds > 0 else None


def _time(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, dt.UTC)


def _metric(row: LabelledRow, classifiers: set[int]) -> MetricVersion:
    """One store row's metric (the fields a ``MetricBucket`` shares, less its bucket)."""
    classification = row.version in classifiers
    n, k = row.predictions, row.labelled
    return MetricVersion(
        version=row.version, shadow=row.shadow, metric="accuracy" if classification else "rmse",
        predictions=n, labelled=k, label_coverage=k / n if n else None,
        accuracy=row.accuracy if classification else None,
        rmse=None if classification else row.rmse, mean_label_delay_s=row.mean_label_delay_s,
    )
