"""A queued training run joins the graph: ``dataset:<name>@<n> -trained-> run:<id>``."""

from __future__ import annotations

from typing import Any

from appliance.domain.principal import SYSTEM
from appliance.domain.runs import RunKind
from appliance.store import lineage as lq
from appliance.store.tables import RunRow


def edges(app: Any, node: str) -> list[tuple[str, str, str]]:
    with app.store.read() as s:
        return [(e.src, e.relation, e.dst) for e in lq.edges_touching(s, node)]


def test_queueing_a_training_run_links_it_to_its_dataset_version(appliance_app: Any) -> None:
    row = RunRow(name="churn", kind=RunKind.train.value, status="queued", experiment="churn",
                 dataset="customers", dataset_version=3, params={}, tags={}, metrics={})
    run = appliance_app.runs.queue(row, by=SYSTEM)
    assert edges(appliance_app, f"run:{run.id}") == [
        ("dataset:customers@3", "trained", f"run:{run.id}")]
    up = appliance_app.lineage.walk(f"run:{run.id}", direction="up")
    assert [n.id for n in up.nodes] == [f"run:{run.id}", "dataset:customers@3"]


def test_external_runs_and_trials_add_no_dataset_edge(appliance_app: Any) -> None:
    trial = RunRow(name="churn-trial-0", kind=RunKind.trial.value, status="queued",
                   experiment="churn", dataset="customers", dataset_version=3, params={},
                   tags={}, metrics={})
    queued = appliance_app.runs.queue(trial, by=SYSTEM)
    external = appliance_app.runs.start_external(name="notebook", experiment=None, params=None,
                                                 tags=None, by=SYSTEM)
    assert edges(appliance_app, f"run:{queued.id}") == []
    assert edges(appliance_app, f"run:{external.id}") == []
