"""Retention windows: exactly the rows past the window go (a row at the cut-off stays),
each pass is audited with counts, and a window of 0 keeps everything."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from appliance.privacy.retention import RetentionService
from appliance.store import predictions as pq

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _seed(app: Any) -> None:
    """Predictions, labels and finished job runs at fixed ages: 31 days, exactly 30 days,
    30 days less a microsecond, and 1 day."""
    ages = {"old": 31 * DAY, "edge": 30 * DAY, "inside": 30 * DAY - dt.timedelta(microseconds=1),
            "new": DAY}
    with app.store.write() as s:
        for rid, age in ages.items():
            at = NOW - age
            pq.append_predictions(s, [(rid, "m", 1, {"x": 1}, 1, None, 1.0, at, "primary")])
            pq.append_labels(s, "m", [(rid, 1)], "api", at)
    for rid, age in ages.items():
        app.store.execute(
            "INSERT INTO job_runs (id, job, trigger, status, attempt, created_at, started_at, "
            "finished_at) VALUES (uuid(), :j, 'manual', 'succeeded', 1, :t, :t, :t)",
            {"j": f"test.{rid}", "t": NOW - age})


def _ids(app: Any, sql: str) -> list[str]:
    return sorted(r[0] for r in app.store.execute(sql))


def test_retention_removes_exactly_the_rows_past_each_window(appliance_app: Any) -> None:
    app = appliance_app
    _seed(app)
    service = RetentionService(app.store, app.auditor, predictions_days=30, labels_days=30,
                               job_runs_days=30, clock=lambda: NOW)
    result = service.enforce()
    assert (result.predictions_deleted, result.labels_deleted, result.job_runs_deleted) == (
        1, 1, 1)
    assert result.predictions_before == (NOW - 30 * DAY).isoformat()
    assert _ids(app, "SELECT request_id FROM predictions") == ["edge", "inside", "new"]
    assert _ids(app, "SELECT request_id FROM labels") == ["edge", "inside", "new"]
    assert _ids(app, "SELECT job FROM job_runs WHERE job LIKE 'test.%'") == [
        "test.edge", "test.inside", "test.new"]
    events = app.store.execute("SELECT actor, target, after FROM audit_events "
                               "WHERE action = 'retention.enforce'")
    assert len(events) == 1
    actor, target, after = events[0]
    after = json.loads(after) if isinstance(after, str) else after
    assert (actor, target) == ("scheduler", "housekeeping.retention")
    assert (after["predictions_deleted"], after["labels_deleted"], after["job_runs_deleted"]) == (
        1, 1, 1)
    assert app.auditor.verify().ok
    # a second pass finds nothing more to delete
    again = service.enforce()
    assert (again.predictions_deleted, again.labels_deleted, again.job_runs_deleted) == (0, 0, 0)
    assert not again.checkpointed


def test_retention_windows_are_independent_and_zero_keeps_forever(appliance_app: Any) -> None:
    app = appliance_app
    _seed(app)
    service = RetentionService(app.store, app.auditor, predictions_days=2, labels_days=0,
                               job_runs_days=0, clock=lambda: NOW)
    result = service.enforce()
    assert (result.predictions_deleted, result.labels_deleted, result.job_runs_deleted) == (
        3, 0, 0)
    assert (result.labels_before, result.job_runs_before) == (None, None)
    assert _ids(app, "SELECT request_id FROM predictions") == ["new"]
    assert len(app.store.execute("SELECT * FROM labels")) == 4
    assert "predictions older than 2 days" in service.describe()
    assert RetentionService(app.store, app.auditor).describe() == "no retention window is set"


def test_housekeeping_retention_job_runs_the_configured_windows(tmp_path: Any) -> None:
    from appliance_test_support import make_settings

    from appliance.runtime import build

    app = build(make_settings(tmp_path / "home", retention_predictions_days=7,
                              retention_labels_days=14, job_history_days=0))
    try:
        job = next(j for j in app.jobs.list_jobs().items if j.id == "housekeeping.retention")
        assert "predictions older than 7 days" in job.description
        assert "labels older than 14 days" in job.description
        assert "job runs" not in job.description
    finally:
        app.close()
