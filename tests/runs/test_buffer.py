"""Write-behind logging: checked on arrival, committed later, flushed before reads."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.domain.principal import Principal
from appliance.domain.roles import Role
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.runs.buffer import LogBuffer

BY = Principal("ana", Role.operator)


def _run(app: Any) -> str:
    run = app.runs.start_external(name="r", experiment=None, params={"a": 1}, tags=None, by=BY)
    return str(run.id)


def test_logged_values_are_committed_on_flush_not_before(appliance_app: Any) -> None:
    buffer = LogBuffer(appliance_app.runs, max_delay=60)
    rid = _run(appliance_app)
    buffer.log(rid, params={"b": 2}, tags={"t": "x"},
               metrics=[{"key": "m", "value": 0.5, "step": 1}])
    assert appliance_app.runs.record(rid).params == {"a": "1"}
    buffer.flush()
    record = appliance_app.runs.record(rid)
    assert record.params == {"a": "1", "b": "2"} and record.tags == {"t": "x"}
    assert [(m.key, m.step, m.value) for m in record.latest] == [("m", 1, 0.5)]
    buffer.close()


def test_close_commits_what_is_queued(appliance_app: Any) -> None:
    buffer = LogBuffer(appliance_app.runs, max_delay=60)
    rid = _run(appliance_app)
    buffer.log(rid, metrics=[{"key": "m", "value": float(i), "step": i} for i in range(50)])
    buffer.close()
    assert len(appliance_app.runs.metric_history(rid, "m")) == 50


def test_bad_values_are_refused_on_arrival_and_nothing_is_queued(appliance_app: Any) -> None:
    buffer = LogBuffer(appliance_app.runs, max_delay=60)
    rid = _run(appliance_app)
    with pytest.raises(InvalidInput):
        buffer.log(rid, params={"a": 9})  # stored as 1
    buffer.log(rid, params={"c": 3})
    with pytest.raises(InvalidInput):
        buffer.log(rid, params={"c": 4})  # queued as 3
    with pytest.raises(InvalidInput):
        buffer.log(rid, metrics=[{"key": "m", "value": 1.0}, {"key": "m", "value": "x"}])
    with pytest.raises(NotFound):
        buffer.log("0" * 32, metrics=[{"key": "m", "value": 1.0}])
    buffer.flush()
    assert appliance_app.runs.metric_history(rid, "m") == []
    assert appliance_app.runs.record(rid).params == {"a": "1", "c": "3"}
    buffer.close()


def test_an_ended_run_takes_no_more_values_once_forgotten(appliance_app: Any) -> None:
    from appliance.domain.runs import RunStatus

    buffer = LogBuffer(appliance_app.runs, max_delay=60)
    rid = _run(appliance_app)
    buffer.log(rid, metrics=[{"key": "m", "value": 1.0}])
    buffer.forget(rid)  # what ending a run does first: the queued value is committed
    appliance_app.runs.transition(rid, RunStatus.succeeded, by=BY)
    with pytest.raises(Conflict):
        buffer.log(rid, metrics=[{"key": "m", "value": 2.0}])
    assert [p.value for p in appliance_app.runs.metric_history(rid, "m")] == [1.0]
    buffer.close()


def test_the_background_thread_commits_within_its_delay(appliance_app: Any) -> None:
    import time

    buffer = LogBuffer(appliance_app.runs, max_delay=0.05)
    rid = _run(appliance_app)
    buffer.log(rid, metrics=[{"key": "m", "value": 1.0}])
    deadline = time.monotonic() + 10
    while not appliance_app.runs.metric_history(rid, "m"):
        assert time.monotonic() < deadline, "never committed"
        time.sleep(0.05)
    buffer.close()
