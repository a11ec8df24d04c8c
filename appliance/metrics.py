"""Prometheus metrics, one registry per appliance (tests build many)."""

from __future__ import annotations

import collections
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_MAX_CHILDREN = 4096  # label children kept at hand per kind (model versions, classes)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._predict_children: dict[tuple[str, int], tuple[Any, Any, dict[str, Any]]] = {}
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
            "appliance_store_degraded",
            "1 when the store refuses writes (a bad WAL, or the audit log against its anchor)",
            registry=self.registry,
        )

        self.predict_requests = Counter(
            "appliance_predict_requests", "Predict requests by model and version",
            ["model", "version"], registry=self.registry,
        )
        self.predict_seconds = Histogram(
            "appliance_predict_seconds", "Time to score one predict request",
            ["model", "version"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5),
            registry=self.registry,
        )
        self.predictions_by_class = Counter(
            "appliance_predictions", "Predictions by model, version and predicted class",
            ["model", "version", "cls"], registry=self.registry,
        )

        self.drift_p_value = Gauge(
            "appliance_drift_p_value", "p-value of the latest drift test per model and column",
            ["model", "column"], registry=self.registry,
        )
        self.drift_detected = Gauge(
            "appliance_drift_detected", "1 when the latest drift check of a model found drift",
            ["model"], registry=self.registry,
        )
        self.label_coverage = Gauge(
            "appliance_label_coverage", "Share of logged predictions with a delayed label",
            ["model", "version"], registry=self.registry,
        )
        self.job_seconds = Histogram(
            "appliance_job_seconds", "Duration of training runs by outcome", ["kind", "status"],
            buckets=(1, 5, 15, 60, 300, 900, 3600, 14400), registry=self.registry,
        )

    def drift_report(self, model: str, p_values: Mapping[str, float], drift: bool) -> None:
        for column, p in p_values.items():
            self.drift_p_value.labels(model=model, column=column).set(p)
        self.drift_detected.labels(model=model).set(1 if drift else 0)

    def prediction(self, model: str, version: int, seconds: float, predictions: list[object]) -> None:
        # label children kept at hand: labels() takes a lock and checks every label on
        # each call (~4 us each, three or more a predict request); the keys are few
        children = self._predict_children.get((model, version))
        if children is None:
            v = str(version)
            children = (self.predict_requests.labels(model=model, version=v),
                        self.predict_seconds.labels(model=model, version=v), {})
            if len(self._predict_children) < _MAX_CHILDREN:
                self._predict_children[(model, version)] = children
        requests, latency, classes = children
        requests.inc()
        latency.observe(seconds)
        # classes, not a regression nor a vector a row (which would be a label per value)
        if predictions and not isinstance(predictions[0], float | list):
            counts = collections.Counter(map(str, predictions))  # counted in C
            for cls, n in counts.items():
                child = classes.get(cls)
                if child is None:
                    child = self.predictions_by_class.labels(model=model, version=str(version),
                                                             cls=cls)
                    if len(classes) < _MAX_CHILDREN:
                        classes[cls] = child
                child.inc(n)

    def ingest_outcome(self, outcome: str, seconds: float) -> None:
        self.ingest_files.labels(outcome=outcome).inc()
        self.ingest_seconds.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
