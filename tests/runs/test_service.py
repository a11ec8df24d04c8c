"""Runs in-process: the state machine, all-or-nothing batches, server-side listing."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from appliance.domain.principal import SYSTEM
from appliance.domain.runs import RunStatus, check_transition
from appliance.errors import Conflict, InvalidInput


def _run(app: Any, name: str = "r", **kw: Any) -> Any:
    return app.runs.start_external(name=name, experiment=kw.pop("experiment", "e"),
                                   params=kw.pop("params", None), tags=kw.pop("tags", None),
                                   by=SYSTEM)


def test_run_status_machine_allows_only_forward_moves() -> None:
    assert check_transition("queued", "running") is RunStatus.running
    assert check_transition("interrupted", "queued") is RunStatus.queued
    for old, new in [("succeeded", "running"), ("failed", "succeeded"), ("queued", "succeeded")]:
        with pytest.raises(Conflict):
            check_transition(old, new)


def test_log_batch_stores_params_metrics_and_tags(appliance_app: Any) -> None:
    run = _run(appliance_app, params={"lr": 0.1})
    appliance_app.runs.log_batch(run.id, params={"depth": 3}, tags={"team": "a"},
                                 metrics=[{"key": "loss", "value": 1.0 / (s + 1), "step": s}
                                          for s in range(50)])
    shown = appliance_app.runs.show(run.id)
    assert shown.params == {"lr": "0.1", "depth": "3"} and shown.tags == {"team": "a"}
    assert shown.metrics["loss"] == pytest.approx(1 / 50)
    history = appliance_app.runs.metric_history(run.id, "loss")
    assert [p.step for p in history] == list(range(50))


@pytest.mark.parametrize("bad", [
    {"metrics": [{"key": "ok", "value": 1.0}, {"key": "loss", "value": "high"}]},
    {"metrics": [{"key": "ok", "value": 1.0}, {"key": "loss", "value": True}]},
    {"metrics": [{"key": "ok", "value": 1.0}, {"key": "bad key!", "value": 1.0}]},
    {"metrics": [{"key": "ok", "value": 1.0}, {"key": "loss", "value": 1.0, "step": -1}]},
    {"metrics": [{"key": "ok", "value": 1.0}, {"key": "loss", "value": float("inf")}]},
    {"params": {"ok": 1, "bad\nkey": 2}},
], ids=["string", "bool", "key", "step", "inf", "param-key"])
def test_log_batch_with_a_bad_entry_is_refused_whole(appliance_app: Any, bad: dict[str, Any]) -> None:
    run = _run(appliance_app)
    with pytest.raises(InvalidInput):
        appliance_app.runs.log_batch(run.id, **bad)
    shown = appliance_app.runs.show(run.id)
    assert shown.metrics == {} and shown.params == {}
    assert appliance_app.runs.metric_history(run.id) == []


def test_log_batch_refuses_to_change_a_logged_param(appliance_app: Any) -> None:
    run = _run(appliance_app, params={"lr": 0.1})
    appliance_app.runs.log_batch(run.id, params={"lr": 0.1})  # the same value is fine
    with pytest.raises(InvalidInput, match="already"):
        appliance_app.runs.log_batch(run.id, params={"lr": 0.2})


def test_ended_run_takes_no_more_logging_and_cannot_end_twice(appliance_app: Any) -> None:
    run = _run(appliance_app)
    appliance_app.runs.end(run.id, "succeeded", error=None, by=SYSTEM)
    with pytest.raises(Conflict):
        appliance_app.runs.log_batch(run.id, metrics=[{"key": "x", "value": 1}])
    with pytest.raises(Conflict):
        appliance_app.runs.end(run.id, "failed", error="late", by=SYSTEM)


def test_list_runs_filters_sorts_and_pages_on_the_server(appliance_app: Any) -> None:
    for i in range(12):
        run = _run(appliance_app, name=f"r{i}", experiment="even" if i % 2 == 0 else "odd",
                   tags={"batch": str(i // 6)})
        appliance_app.runs.log_batch(run.id, metrics=[{"key": "acc", "value": i / 10}])
        if i % 3 == 0:
            appliance_app.runs.end(run.id, "succeeded", error=None, by=SYSTEM)
    page = appliance_app.runs.list_runs(experiment="even", sort="-metric:acc", limit=3)
    assert page.total == 6
    assert [r.name for r in page.items] == ["r10", "r8", "r6"]
    nxt = appliance_app.runs.list_runs(experiment="even", sort="-metric:acc", limit=3, offset=3)
    assert [r.name for r in nxt.items] == ["r4", "r2", "r0"]
    done = appliance_app.runs.list_runs(status="succeeded")
    assert {r.name for r in done.items} == {"r0", "r3", "r6", "r9"}
    tagged = appliance_app.runs.list_runs(tag="batch:1")
    assert tagged.total == 6
    with pytest.raises(InvalidInput):
        appliance_app.runs.list_runs(sort="metric:x'; DROP TABLE runs; --")


def test_list_runs_over_ten_thousand_runs_filters_and_pages_on_the_server(appliance_app: Any) -> None:
    appliance_app.store.execute("""
        INSERT INTO runs (id, name, kind, status, experiment, params, tags, metrics, attempts,
                          created_by, created_at)
        SELECT uuid(), 'run-' || i, 'external',
               CASE WHEN i % 4 = 0 THEN 'failed' ELSE 'succeeded' END,
               'exp-' || (i % 10), '{}', '{"team": "t' || (i % 3) || '"}',
               '{"acc": ' || (i / 10000.0) || '}', 1, 'bench',
               now() - to_seconds(i)
        FROM range(10000) t(i)
    """)
    started = time.perf_counter()
    page = appliance_app.runs.list_runs(experiment="exp-3", status="succeeded", tag="team:t0",
                                        sort="-metric:acc", limit=25, offset=25)
    elapsed = time.perf_counter() - started
    expected = [i for i in range(10000) if i % 10 == 3 and i % 4 != 0 and i % 3 == 0]
    assert page.total == len(expected)
    assert [r.name for r in page.items] == [f"run-{i}" for i in sorted(expected, reverse=True)[25:50]]
    assert elapsed < 5  # a sanity bound only: bench/runs_list.py measures it


def test_run_detail_with_model_version_takes_the_registry_answer_or_none(appliance_app: Any) -> None:
    run = _run(appliance_app)
    shown = appliance_app.runs.show(run.id)
    assert shown.model_version is None
    found = shown.with_model_version({"model": "churn", "version": 2})
    assert (found.model_version.model, found.model_version.version) == ("churn", 2)
    assert found.with_model_version(None).model_version is None
    assert found.model_dump(mode="json")["model_version"] == {"model": "churn", "version": 2}


def test_runs_list_top_level_leaves_out_a_searchs_trials(appliance_app: Any) -> None:
    from appliance.domain.runs import RunKind
    from appliance.store.tables import RunRow

    parent = appliance_app.runs.queue(
        RunRow(name="churn", kind=RunKind.train.value, experiment="churn"), by=SYSTEM)
    for i in range(3):  # created after their parent: newest first, they would lead the list
        appliance_app.runs.queue(
            RunRow(name=f"churn-trial-{i}", kind=RunKind.trial.value, experiment="churn",
                   parent_id=uuid.UUID(parent.id)), by=SYSTEM)
    everything = appliance_app.runs.list_runs(experiment="churn")
    top = appliance_app.runs.list_runs(experiment="churn", top_level=True)
    assert everything.total == 4
    assert top.total == 1 and [r.name for r in top.items] == ["churn"]
    assert len(appliance_app.runs.show(parent.id).children) == 3
