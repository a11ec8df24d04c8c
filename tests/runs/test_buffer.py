"""Group commit of one-value logging calls: checked on arrival, answered only once
committed, concurrent calls sharing a transaction, a failed commit failing its calls."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from appliance.domain.principal import Principal
from appliance.domain.roles import Role
from appliance.errors import Conflict, InvalidInput, NotFound, StoreUnavailable
from appliance.runs.buffer import LogBuffer

BY = Principal("ana", Role.operator)


def _run(app: Any) -> str:
    run = app.runs.start_external(name="r", experiment=None, params={"a": 1}, tags=None, by=BY)
    return str(run.id)


def test_a_logged_call_is_committed_when_it_returns(appliance_app: Any) -> None:
    buffer = LogBuffer(appliance_app.runs)
    rid = _run(appliance_app)
    buffer.log(rid, params={"b": 2}, tags={"t": "x"},
               metrics=[{"key": "m", "value": 0.5, "step": 1}])
    record = appliance_app.runs.record(rid)  # no flush: nothing acknowledged waits
    assert record.params == {"a": "1", "b": "2"} and record.tags == {"t": "x"}
    assert [(m.key, m.step, m.value) for m in record.latest] == [("m", 1, 0.5)]


def test_bad_values_are_refused_on_arrival_and_nothing_is_stored(appliance_app: Any) -> None:
    buffer = LogBuffer(appliance_app.runs)
    rid = _run(appliance_app)
    with pytest.raises(InvalidInput):
        buffer.log(rid, params={"a": 9})  # stored as 1
    buffer.log(rid, params={"c": 3})
    with pytest.raises(InvalidInput):
        buffer.log(rid, params={"c": 4})  # committed as 3
    with pytest.raises(InvalidInput):
        buffer.log(rid, metrics=[{"key": "m", "value": 1.0}, {"key": "m", "value": "x"}])
    with pytest.raises(NotFound):
        buffer.log("0" * 32, metrics=[{"key": "m", "value": 1.0}])
    assert appliance_app.runs.metric_history(rid, "m") == []
    assert appliance_app.runs.record(rid).params == {"a": "1", "c": "3"}


def test_an_ended_run_takes_no_more_values_once_forgotten(appliance_app: Any) -> None:
    from appliance.domain.runs import RunStatus

    buffer = LogBuffer(appliance_app.runs)
    rid = _run(appliance_app)
    buffer.log(rid, metrics=[{"key": "m", "value": 1.0}])
    buffer.forget(rid)  # what ending a run does first
    appliance_app.runs.transition(rid, RunStatus.succeeded, by=BY)
    with pytest.raises(Conflict):
        buffer.log(rid, metrics=[{"key": "m", "value": 2.0}])
    assert [p.value for p in appliance_app.runs.metric_history(rid, "m")] == [1.0]


def test_concurrent_calls_share_commits_and_all_arrive(appliance_app: Any,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = LogBuffer(appliance_app.runs)
    rid = _run(appliance_app)
    commits = []
    real = appliance_app.runs.log_batch

    def slow_batch(*args: Any, **kwargs: Any) -> Any:
        commits.append(len(kwargs.get("metrics") or []))
        threading.Event().wait(0.02)  # a commit takes a while: callers pile up behind it
        return real(*args, **kwargs)

    monkeypatch.setattr(appliance_app.runs, "log_batch", slow_batch)
    threads = [threading.Thread(target=buffer.log, args=(rid,),
                                kwargs={"metrics": [{"key": "m", "value": float(i), "step": i}]})
               for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(commits) == 40 and len(commits) < 40
    assert sorted(p.step for p in appliance_app.runs.metric_history(rid, "m")) == list(range(40))


def test_a_failed_commit_fails_its_call_and_acknowledges_nothing(
        appliance_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = LogBuffer(appliance_app.runs)
    rid = _run(appliance_app)
    real = appliance_app.runs.log_batch

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StoreUnavailable("the disk is gone")

    monkeypatch.setattr(appliance_app.runs, "log_batch", broken)
    with pytest.raises(StoreUnavailable):
        buffer.log(rid, params={"b": 2}, metrics=[{"key": "m", "value": 1.0}])
    monkeypatch.setattr(appliance_app.runs, "log_batch", real)
    assert appliance_app.runs.metric_history(rid, "m") == []
    buffer.log(rid, params={"b": 3})  # the refused value was never taken as stored
    assert appliance_app.runs.record(rid).params == {"a": "1", "b": "3"}


def test_with_a_delay_calls_are_answered_at_once_and_committed_by_the_thread(
        appliance_app: Any) -> None:
    buffer = LogBuffer(appliance_app.runs, max_delay=0.05)
    rid = _run(appliance_app)
    buffer.log(rid, metrics=[{"key": "m", "value": 1.0}])
    deadline = threading.Event()
    for _ in range(100):
        if appliance_app.runs.metric_history(rid, "m"):
            break
        deadline.wait(0.05)
    assert [p.value for p in appliance_app.runs.metric_history(rid, "m")] == [1.0]
    buffer.log(rid, metrics=[{"key": "m", "value": 2.0, "step": 1}])
    buffer.close()  # commits what waits
    assert len(appliance_app.runs.metric_history(rid, "m")) == 2
