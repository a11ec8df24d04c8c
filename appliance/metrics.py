"""Prometheus metrics, one registry per appliance (tests build many).

Every family is documented in docs/operations/metrics.md (tests check both ways).
Conventions: counters end in ``_total`` (prometheus_client adds it), durations are
``_seconds`` histograms, and every label has a bounded set of values (enums, route
templates, model, dataset and job names). No label is called ``job`` or ``instance``:
Prometheus sets those on every scraped series.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from appliance import __version__

# the default buckets plus 1 ms and 2.5 ms: most API answers (and every predict) are faster
# than the default's first bucket (5 ms), which left their quantiles at 5 ms
HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

_MAX_CHILDREN = 4096  # label children kept at hand per kind (model versions, classes)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # process_*: CPU, memory, open files
        Gauge("appliance_build_info", "Always 1; the running appliance's version",
              ["version"], registry=self.registry).labels(version=__version__).set(1)
        self._predict_children: dict[tuple[str, int], tuple[Any, Any, Any, dict[str, Any]]] = {}
        self._outlier_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self.ingest_files = Counter(
            "appliance_ingest_files", "Inbox and uploaded files taken, by outcome",
            ["outcome"], registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "appliance_ingest_seconds", "Time to ingest one file",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=self.registry,
        )
        self.ingest_refusals = Counter(
            "appliance_ingest_refusals",
            "Files refused (quarantined, or a version that failed its contract), "
            "by dataset and reason code", ["dataset", "reason"], registry=self.registry,
        )
        self.versions_accepted = Counter(
            "appliance_dataset_versions_accepted", "Dataset versions that passed their contract",
            ["dataset"], registry=self.registry,
        )
        self.http_latency = Histogram(
            "appliance_http_request_duration_seconds", "HTTP request latency",
            ["method", "route", "status"], buckets=HTTP_BUCKETS, registry=self.registry,
        )
        self.inbox_polls = Gauge(
            "appliance_inbox_polls", "Inbox polls since start", registry=self.registry
        )
        self.leader = Gauge(
            "appliance_leader",
            "1 while this host holds the leader lease (runs the inbox watcher, the scheduler "
            "and housekeeping); always 1 on the embedded store",
            registry=self.registry,
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
        self.predict_rows = Counter(
            "appliance_predict_rows", "Rows scored by model and version",
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
        self.outlier_checks = Counter(
            "appliance_prediction_outlier_checks",
            "Rows scored by their version's outlier detector, by model and version",
            ["model", "version"], registry=self.registry,
        )
        self.outliers = Counter(
            "appliance_prediction_outliers",
            "Rows the outlier detector flagged, by model and version",
            ["model", "version"], registry=self.registry,
        )
        self.alias_moves = Counter(
            "appliance_alias_moves", "Alias moves by model, alias and action (set, rollback, "
            "approve)", ["model", "alias", "action"], registry=self.registry,
        )

        self.drift_p_value = Gauge(
            "appliance_drift_p_value", "p-value of the latest drift test per model and column",
            ["model", "column"], registry=self.registry,
        )
        self.drift_distance = Gauge(
            "appliance_drift_distance",
            "distance (Wasserstein normed, Jensen-Shannon, PSI, text AUC) of the latest drift "
            "test per model and column", ["model", "column"], registry=self.registry,
        )
        self.drift_multivariate_auc = Gauge(
            "appliance_drift_multivariate_auc",
            "ROC AUC of the latest multivariate (domain classifier) drift check; 0.5: no drift",
            ["model"], registry=self.registry,
        )
        self.drift_detected = Gauge(
            "appliance_drift_detected", "1 when the latest drift check of a model found drift",
            ["model"], registry=self.registry,
        )
        self.drift_checks = Counter(
            "appliance_drift_checks", "Drift reports stored, by model and result",
            ["model", "drift"], registry=self.registry,
        )
        self.label_coverage = Gauge(
            "appliance_label_coverage", "Share of logged predictions with a delayed label",
            ["model", "version"], registry=self.registry,
        )
        self.live_metric = Gauge(
            "appliance_live_metric",
            "Latest live metric (accuracy, rmse) from delayed labels, checked by a drift job",
            ["model", "version", "metric"], registry=self.registry,
        )
        self.job_seconds = Histogram(
            "appliance_job_seconds", "Duration of job and training runs by kind and outcome",
            ["kind", "status"],
            buckets=(1, 5, 15, 60, 300, 900, 3600, 14400), registry=self.registry,
        )
        self.job_runs = Counter(
            "appliance_job_runs", "Finished job and training runs by name, kind and status",
            ["name", "kind", "status"], registry=self.registry,
        )
        self.job_failing = Gauge(
            "appliance_job_failing",
            "1 after a run failed with no retry left, 0 after the next success",
            ["name", "kind"], registry=self.registry,
        )
        self.job_last_success = Gauge(
            "appliance_job_last_success_timestamp_seconds",
            "Unix time of the latest successful run", ["name", "kind"], registry=self.registry,
        )

    def drift_report(self, model: str, p_values: Mapping[str, float], drift: bool,
                     distances: Mapping[str, float] | None = None,
                     multivariate_auc: float | None = None) -> None:
        for column, p in p_values.items():
            self.drift_p_value.labels(model=model, column=column).set(p)
        for column, d in (distances or {}).items():
            self.drift_distance.labels(model=model, column=column).set(d)
        if multivariate_auc is not None:
            self.drift_multivariate_auc.labels(model=model).set(multivariate_auc)
        self.drift_detected.labels(model=model).set(1 if drift else 0)
        self.drift_checks.labels(model=model, drift="true" if drift else "false").inc()

    def prediction(self, model: str, version: int, seconds: float, predictions: list[object]) -> None:
        # label children kept at hand: labels() takes a lock and checks every label on
        # each call (~4 us each, three or more a predict request); the keys are few
        children = self._predict_children.get((model, version))
        if children is None:
            v = str(version)
            children = (self.predict_requests.labels(model=model, version=v),
                        self.predict_seconds.labels(model=model, version=v),
                        self.predict_rows.labels(model=model, version=v), {})
            if len(self._predict_children) < _MAX_CHILDREN:
                self._predict_children[(model, version)] = children
        requests, latency, rows, classes = children
        requests.inc()
        rows.inc(len(predictions))
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

    def outliers_checked(self, model: str, version: int, checked: int, flagged: int) -> None:
        """Rows a version's outlier detector scored and flagged (as the prediction log writes
        them)."""
        children = self._outlier_children.get((model, version))
        if children is None:
            v = str(version)
            children = (self.outlier_checks.labels(model=model, version=v),
                        self.outliers.labels(model=model, version=v))
            if len(self._outlier_children) < _MAX_CHILDREN:
                self._outlier_children[(model, version)] = children
        children[0].inc(checked)
        children[1].inc(flagged)  # 0 too: the series exists from the first check

    def ingest_outcome(self, outcome: str, seconds: float) -> None:
        self.ingest_files.labels(outcome=outcome).inc()
        self.ingest_seconds.observe(seconds)

    def ingest_outcomes(self, outcomes: Iterable[str]) -> None:
        """Export each outcome from 0, so that Prometheus's increase() sees the first file."""
        for outcome in outcomes:
            self.ingest_files.labels(outcome=outcome)

    def file_refused(self, dataset: str, reason: str) -> None:
        self.ingest_refusals.labels(dataset=dataset, reason=reason).inc()

    def version_accepted(self, dataset: str) -> None:
        self.versions_accepted.labels(dataset=dataset).inc()

    def alias_moved(self, model: str, alias: str, action: str) -> None:
        self.alias_moves.labels(model=model, alias=alias, action=action).inc()

    def live_metric_checked(self, model: str, version: int, metric: str, value: float) -> None:
        self.live_metric.labels(model=model, version=str(version), metric=metric).set(value)

    def job_finished(self, name: str, kind: str, status: str, seconds: float | None, *,
                     succeeded: bool, final: bool) -> None:
        """Count every finished run; time those that ran here (``seconds`` not None); a final
        failure flags the job failing until its next success."""
        self.job_runs.labels(name=name, kind=kind, status=status).inc()
        if seconds is not None:
            self.job_seconds.labels(kind=kind, status=status).observe(seconds)
        if succeeded:
            self.job_failing.labels(name=name, kind=kind).set(0)
            self.job_last_success.labels(name=name, kind=kind).set(time.time())
        elif final:
            self.job_failing.labels(name=name, kind=kind).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
