"""Experiments: ids, names, tags, run counts; runs create the experiment they name."""

from __future__ import annotations

from typing import Any

import pytest

from appliance.domain.principal import Principal
from appliance.domain.roles import Role
from appliance.errors import Conflict, InvalidInput, NotFound

BY = Principal("ana", Role.operator)


def test_start_run_creates_the_experiment_it_names(appliance_app: Any) -> None:
    app = appliance_app
    app.runs.start_external(name="r1", experiment="churn", params=None, tags=None, by=BY)
    app.runs.start_external(name="r2", experiment="churn", params=None, tags=None, by=BY)
    app.runs.start_external(name="r3", experiment=None, params=None, tags=None, by=BY)
    listed = {e.name: e for e in app.experiments.listed()}
    assert listed["churn"].runs == 2 and listed["churn"].created_by == "ana"
    assert listed["default"].id == "0" and listed["default"].runs == 1
    assert app.experiments.by_name("churn").id == listed["churn"].id


def test_create_experiment_refuses_a_taken_or_bad_name(appliance_app: Any) -> None:
    made = appliance_app.experiments.create("sales", by=BY, tags={"team": "ml"})
    assert appliance_app.experiments.get(made.id).tags == {"team": "ml"}
    with pytest.raises(Conflict):
        appliance_app.experiments.create("sales", by=BY)
    with pytest.raises(InvalidInput):
        appliance_app.experiments.create("bad:name", by=BY)
    with pytest.raises(NotFound):
        appliance_app.experiments.get("nope")


def test_deleted_run_leaves_the_lists_and_counts_and_comes_back(appliance_app: Any) -> None:
    app = appliance_app
    run = app.runs.start_external(name="r1", experiment="x", params=None, tags=None, by=BY)
    app.runs.set_deleted(run.id, True, by=BY)
    assert app.runs.list_runs(experiment="x").total == 0
    assert {e.name: e.runs for e in app.experiments.listed()}["x"] == 0
    assert app.runs.record(run.id).deleted_at is not None
    app.runs.set_deleted(run.id, False, by=BY)
    assert app.runs.list_runs(experiment="x").total == 1


def test_record_holds_the_newest_point_of_each_metric(appliance_app: Any) -> None:
    app = appliance_app
    run = app.runs.start_external(name="r1", experiment="x", params={"a": 1}, tags=None, by=BY)
    app.runs.log_batch(run.id, metrics=[{"key": "m", "value": 1.0, "step": 5},
                                        {"key": "m", "value": 2.0, "step": 2},
                                        {"key": "n", "value": 3.0, "step": 0}])
    record = app.runs.record(run.id)
    assert [(m.key, m.step, m.value) for m in record.latest] == [("m", 5, 1.0), ("n", 0, 3.0)]
    assert record.params == {"a": "1"}


@pytest.mark.parametrize("path", ["../x", "a/../b", "/etc/passwd", "a//b", "a\\b", "a\x00b",
                                  "a\nb", ".", "c:/x", "x" * 1001])
def test_artifact_path_refuses_hostile_paths(appliance_app: Any, path: str) -> None:
    import io

    run = appliance_app.runs.start_external(name="r", experiment=None, params=None, tags=None,
                                            by=BY)
    with pytest.raises(InvalidInput):
        appliance_app.runs.add_artifact_at(run.id, path, io.BytesIO(b"x"))
    assert appliance_app.runs.artifact_files(run.id) == []


def test_default_experiment_is_made_on_first_use_with_the_id_zero(appliance_app: Any) -> None:
    assert appliance_app.experiments.listed() == []
    assert appliance_app.experiments.get("0").name == "default"
    assert [e.id for e in appliance_app.experiments.listed()] == ["0"]
