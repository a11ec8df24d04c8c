"""The composition root wires every cross-service reaction to its event, in one place."""

from __future__ import annotations

import dataclasses
from typing import Any

from appliance.domain import events as ev


def _open(app: Any, kind: str) -> list[dict[str, Any]]:
    return [a.model_dump() for a in app.alerts.list_alerts("open") if a.kind == kind]


def test_build_subscribes_a_reaction_to_every_event(appliance_app: Any) -> None:
    kinds = [obj for obj in vars(ev).values()
             if dataclasses.is_dataclass(obj) and obj.__module__ == ev.__name__]
    assert {k.__name__: appliance_app.events.subscribers(k) for k in kinds} == {
        "VersionAccepted": 3, "FileQuarantined": 2, "IngestFinished": 1, "AliasMoved": 2,
        "JobFinished": 2, "DriftChecked": 2, "LiveMetricChecked": 2}


def test_file_quarantined_raises_an_alert_that_version_accepted_resolves(
        appliance_app: Any) -> None:
    events = appliance_app.events
    events.publish(ev.FileQuarantined("people", "a.csv", "duplicate", "the same bytes"))
    assert _open(appliance_app, "validation_rejected") == []  # a duplicate is not a problem
    events.publish(ev.FileQuarantined("people", "b.csv", "contract_failed", "x: nulls",
                                      version=2))
    (alert,) = _open(appliance_app, "validation_rejected")
    assert alert["key"] == "people" and alert["message"] == "people: a file was rejected: x: nulls"
    assert alert["detail"] == {"reason": "contract_failed", "file": "b.csv", "version": 2}
    events.publish(ev.VersionAccepted("people", 3))
    assert _open(appliance_app, "validation_rejected") == []


def test_job_finished_alerts_only_when_no_retry_is_left_and_success_resolves(
        appliance_app: Any) -> None:
    events = appliance_app.events
    events.publish(ev.JobFinished("train.churn", "train", "failed", 1.0, error="boom",
                                  run_id="r1", final=False))
    assert _open(appliance_app, "job_failed") == []
    events.publish(ev.JobFinished("train.churn", "train", "failed", 1.0, error="boom",
                                  run_id="r2"))
    (alert,) = _open(appliance_app, "job_failed")
    assert alert["message"] == "job train.churn failed: boom"
    assert alert["detail"] == {"run_id": "r2"}
    events.publish(ev.JobFinished("train.churn", "train", "succeeded", 2.0))
    assert _open(appliance_app, "job_failed") == []


def test_job_finished_is_timed_on_metrics_unless_it_never_ran_here(appliance_app: Any) -> None:
    events, metrics = appliance_app.events, appliance_app.metrics
    events.publish(ev.JobFinished("drift.churn", "drift", "interrupted", None,
                                  error="interrupted twice by a restart"))
    assert _open(appliance_app, "job_failed")[0]["detail"] is None
    events.publish(ev.JobFinished("drift.churn", "drift", "succeeded", 0.5))
    text = metrics.render().decode()
    assert 'appliance_job_seconds_count{kind="drift",status="succeeded"} 1.0' in text
    assert 'appliance_job_seconds_count{kind="drift",status="interrupted"}' not in text
    assert 'appliance_job_seconds_bucket{kind="drift",le="1.0",status="interrupted"}' not in text
    # ...but it is counted as a finished run
    assert 'appliance_job_runs_total{kind="drift",name="drift.churn",status="interrupted"} 1.0' \
        in text


def test_drift_checked_sets_the_gauges_and_the_drift_alert(appliance_app: Any) -> None:
    appliance_app.events.publish(ev.DriftChecked(
        "churn", 1, "rep-1", "log:churn:24h", True, {"age": 0.001, "plan": 0.4},
        ("age", "<predictions>")))
    text = appliance_app.metrics.render().decode()
    assert 'appliance_drift_p_value{column="age",model="churn"} 0.001' in text
    assert 'appliance_drift_detected{model="churn"} 1.0' in text
    (alert,) = _open(appliance_app, "drift")
    assert alert["detail"]["drifted"] == ["age", "<predictions>"]
    assert alert["detail"]["report"] == {"report_id": "rep-1", "current": "log:churn:24h"}


def test_job_finished_counts_runs_and_flags_a_job_failing_until_it_succeeds(
        appliance_app: Any) -> None:
    events, metrics = appliance_app.events, appliance_app.metrics
    events.publish(ev.JobFinished("train.churn", "train", "failed", 1.0, error="boom",
                                  final=False))
    text = metrics.render().decode()
    assert 'appliance_job_runs_total{kind="train",name="train.churn",status="failed"} 1.0' in text
    assert "appliance_job_failing{" not in text  # a retry is still coming
    events.publish(ev.JobFinished("train.churn", "train", "failed", 1.0, error="boom"))
    text = metrics.render().decode()
    assert 'appliance_job_failing{kind="train",name="train.churn"} 1.0' in text
    assert 'appliance_job_runs_total{kind="train",name="train.churn",status="failed"} 2.0' in text
    events.publish(ev.JobFinished("train.churn", "train", "succeeded", 2.0))
    text = metrics.render().decode()
    assert 'appliance_job_failing{kind="train",name="train.churn"} 0.0' in text
    assert 'appliance_job_last_success_timestamp_seconds{kind="train",name="train.churn"}' in text


def test_ingest_alias_and_live_metric_events_are_counted_on_metrics(appliance_app: Any) -> None:
    events, metrics = appliance_app.events, appliance_app.metrics
    before = metrics.render().decode()
    # every outcome is exported from 0, so Prometheus's increase() sees the first file
    assert 'appliance_ingest_files_total{outcome="rejected"} 0.0' in before
    events.publish(ev.FileQuarantined("people", "b.csv", "contract_failed", "x: nulls", 2))
    events.publish(ev.VersionAccepted("people", 3))
    events.publish(ev.AliasMoved("churn", "champion", 2, 1, "rollback"))
    events.publish(ev.LiveMetricChecked("churn", 2, "accuracy", 0.75, 0.8,
                                        higher_is_better=True))
    text = metrics.render().decode()
    assert ('appliance_ingest_refusals_total{dataset="people",reason="contract_failed"} 1.0'
            in text)
    assert 'appliance_dataset_versions_accepted_total{dataset="people"} 1.0' in text
    assert ('appliance_alias_moves_total{action="rollback",alias="champion",model="churn"} 1.0'
            in text)
    assert 'appliance_live_metric{metric="accuracy",model="churn",version="2"} 0.75' in text
