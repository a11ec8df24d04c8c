"""A drift report joins the lineage graph in its own transaction.

churn v1 is trained on customers@1 through the real job path, so the graph
runs file -> dataset version -> run -> model version -> alias move, and each
check adds its reference, its current side (a dataset version or a window of
the prediction log the champion served) and the model it checked.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from appliance_test_support import logged_in, make_settings, train_and_wait
from fastapi.testclient import TestClient

from appliance.demo import make_customers
from appliance.errors import InvalidInput
from appliance.store import lineage as lq

from .test_drift import JOB, _predict, _upload, shifted

WINDOW = re.compile(r"predictions:churn@1:(\d{8}T\d{6}Z)\.\.(\d{8}T\d{6}Z)")


@pytest.fixture(scope="module")
def monitored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Any]]:
    from appliance.api.app import create_app
    from appliance.runtime import build

    app = build(make_settings(tmp_path_factory.mktemp("drift-lineage") / "home"))
    app.serving.log.start()
    try:
        with TestClient(create_app(app)) as client:
            logged_in(client)
            _upload(client, make_customers(600, seed=4), "c1.csv", 1)
            train_and_wait(client, JOB)
            _upload(client, shifted(600, seed=5), "c2.csv", 2)
            yield client, app
    finally:
        app.close()


def into(app: Any, node: str) -> set[tuple[str, str]]:
    with app.store.read() as s:
        return {(e.src, e.relation) for e in lq.edges_into(s, [node], limit=100)}


def test_a_dataset_check_links_both_versions_and_the_model_to_its_report(
    monitored: tuple[TestClient, Any],
) -> None:
    _, app = monitored
    report = app.drift.check("churn", dataset_version=2, by="test")
    assert into(app, f"drift:{report.id}") == {
        ("dataset:customers@1", "reference_of"), ("dataset:customers@2", "current_of"),
        ("model:churn@1", "checked_by")}


def test_a_window_check_links_the_prediction_window_the_champion_served(
    monitored: tuple[TestClient, Any],
) -> None:
    client, app = monitored
    written = app.serving.log.written
    _predict(client, make_customers(200, seed=30, start_id=900_000))
    deadline = time.monotonic() + 30  # committed, not only taken off the queue
    while app.serving.log.written < written + 200:
        assert time.monotonic() < deadline, app.serving.log.written
        time.sleep(0.05)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    report = app.drift.check("churn", window_hours=2, by="test")
    after = dt.datetime.now(dt.UTC)
    edges = into(app, f"drift:{report.id}")
    windows = [src for src, relation in edges if relation == "current_of"]
    assert len(windows) == 1, edges
    match = WINDOW.fullmatch(windows[0])
    assert match, windows
    start, end = (dt.datetime.strptime(t, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
                  for t in match.groups())
    assert before <= end <= after and end - start == dt.timedelta(hours=2)
    assert {("dataset:customers@1", "reference_of"), ("model:churn@1", "checked_by")} <= edges
    assert into(app, windows[0]) == {("model:churn@1", "served")}
    # the window node is a valid lineage node, reachable over the API
    resp = client.get(f"/api/v1/lineage/{windows[0]}", params={"direction": "up"})
    assert resp.status_code == 200, resp.text


def test_the_whole_chain_walks_from_the_file_to_the_drift_report_and_back(
    monitored: tuple[TestClient, Any],
) -> None:
    client, app = monitored
    report = app.drift.check("churn", dataset_version=2, by="test")
    sha = client.get("/api/v1/datasets/customers/versions/1").json()["sha256"]
    file_node, drift_node = f"file:{sha}", f"drift:{report.id}"
    model = client.get("/api/v1/lineage/model:churn@1", params={"depth": 3}).json()
    kinds = {n["id"]: n["kind"] for n in model["nodes"]}
    assert file_node in kinds and drift_node in kinds
    assert {"run", "artifact", "alias", "dataset", "drift"} <= set(kinds.values())
    assert "alias:churn:champion:1" in kinds
    up = client.get(f"/api/v1/lineage/{drift_node}",
                    params={"direction": "up", "depth": 4}).json()
    assert file_node in {n["id"] for n in up["nodes"]}
    down = client.get(f"/api/v1/lineage/{file_node}",
                      params={"direction": "down", "depth": 4}).json()
    assert drift_node in {n["id"] for n in down["nodes"]}
    relations = {e["relation"] for e in down["edges"]}
    assert {"ingested_as", "trained", "registered_as", "checked_by"} <= relations


def test_a_check_that_fails_leaves_no_edge(monitored: tuple[TestClient, Any]) -> None:
    _, app = monitored
    with app.store.read() as s:
        before = len(lq.edges_from(s, ["model:churn@1"], limit=1000))
    with pytest.raises(InvalidInput, match="no predictions"):
        app.drift.check("churn", window_hours=1e-9, by="test")
    with app.store.read() as s:
        assert len(lq.edges_from(s, ["model:churn@1"], limit=1000)) == before


def test_the_model_card_keeps_to_its_own_chain_not_every_report_its_data_fed(
    monitored: tuple[TestClient, Any],
) -> None:
    client, app = monitored
    app.drift.check("churn", dataset_version=2, by="test")
    card = client.get("/api/v1/models/churn/versions/1/card").json()
    run_id = client.get("/api/v1/models/churn/versions/1").json()["run_id"]
    relations = {(e["relation"], e["dst"]) for e in card["training_data"]["lineage"]}
    assert ("trained", f"run:{run_id}") in relations
    assert {r for r, _ in relations} == {"ingested_as", "version_of", "trained"}
