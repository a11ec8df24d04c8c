"""Prometheus metrics, one registry per appliance (tests build many)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.ingest_files = Counter(
            "appliance_ingest_files", "Inbox and uploaded files taken, by outcome",
            ["outcome"], registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "appliance_ingest_seconds", "Time to ingest one file",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=self.registry,
        )
        self.http_latency = Histogram(
            "appliance_http_request_duration_seconds", "HTTP request latency",
            ["method", "route", "status"], registry=self.registry,
        )
        self.inbox_polls = Gauge(
            "appliance_inbox_polls", "Inbox polls since start", registry=self.registry
        )
        self.store_degraded = Gauge(
            "appliance_store_degraded", "1 when the store opened read-only after a bad WAL",
            registry=self.registry,
        )

    def ingest_outcome(self, outcome: str, seconds: float) -> None:
        self.ingest_files.labels(outcome=outcome).inc()
        self.ingest_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
