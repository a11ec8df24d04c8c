"""Live traffic and labelled metrics over time, per model version: typed results."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from appliance.domain.results import Timestamp


class TrafficVersion(BaseModel):
    """One version's requests and latency (ms) over the whole window; ``shadow`` rows are
    shadow scores, never counted as traffic."""

    model_config = ConfigDict(frozen=True)

    version: int
    shadow: bool
    requests: int
    canary: int = Field(description="requests routed to this version as the canary")
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    requests_per_second: float | None


class TrafficBucket(BaseModel):
    """One version's requests and latency (ms) in one time bucket."""

    model_config = ConfigDict(frozen=True)

    bucket: Timestamp = Field(description="the bucket's start, aligned to the epoch")
    version: int
    shadow: bool
    requests: int
    canary: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    requests_per_second: float | None
    classes: dict[str, int] | None = Field(description="class -> predictions, for a classifier")


class TrafficTotal(BaseModel):
    """Requests served in one bucket (every bucket of the window, shadow scores left out)."""

    model_config = ConfigDict(frozen=True)

    bucket: Timestamp
    requests: int
    requests_per_second: float | None


class Traffic(BaseModel):
    """Requests, requests/s and latency per time bucket and version over the last ``minutes``."""

    model_config = ConfigDict(frozen=True)

    model: str
    minutes: int
    bucket_seconds: int
    since: Timestamp
    until: Timestamp
    requests: int
    requests_per_second: float | None
    versions: list[TrafficVersion]
    totals: list[TrafficTotal]
    series: list[TrafficBucket]


class MetricVersion(BaseModel):
    """One version's accuracy (classifier) or RMSE (regressor) from delayed labels."""

    model_config = ConfigDict(frozen=True)

    version: int
    shadow: bool
    metric: str = Field(description="accuracy or rmse")
    predictions: int
    labelled: int
    label_coverage: float | None
    accuracy: float | None
    rmse: float | None
    mean_label_delay_s: float | None


class MetricBucket(BaseModel):
    """The same, for the predictions made in one bucket of time."""

    model_config = ConfigDict(frozen=True)

    bucket: Timestamp
    version: int
    shadow: bool
    metric: str
    predictions: int
    labelled: int
    label_coverage: float | None
    accuracy: float | None
    rmse: float | None
    mean_label_delay_s: float | None


class LiveMetrics(BaseModel):
    """Labelled metrics per bucket of prediction time and version over the last ``hours``."""

    model_config = ConfigDict(frozen=True)

    model: str
    hours: int
    bucket_hours: int
    since: Timestamp
    until: Timestamp
    buckets: list[Timestamp] = Field(description="every bucket start of the window")
    versions: list[MetricVersion]
    series: list[MetricBucket]
