"""The Lineage page against a live API: pick a node, walk it, draw it as DOT, list its edges.

The graph is made through the real paths: a file dropped into the inbox (file ->
dataset version -> dataset) and an ONNX upload (artifact -> model version) with
an alias move (model version -> alias move -> alias).
"""

from __future__ import annotations

from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from appliance.client import ApplianceClient

from .console_testing import (
    assert_clean,
    log_in,
    open_page,
    table,
    texts,
    tiny_onnx,
    upload_onnx,
)

LINEAGE_PAGE = "pages/8_Lineage.py"
DATASET = "ui_lineage"
MODEL = "ui_lineage_model"
CSV = b"id,score\n1,0.5\n2,0.7\n3,0.1\n"


@pytest.fixture(scope="module")
def seeded(live_server: Any, admin_api: ApplianceClient) -> dict[str, Any]:
    ingest = live_server.drop(DATASET, "lineage.csv", CSV)
    assert ingest["outcome"] == "accepted", ingest
    version = upload_onnx(admin_api, MODEL, tiny_onnx(7.0))
    admin_api.put(f"/models/{MODEL}/aliases/champion",
                  json={"version": version["number"], "reason": "first"})
    return {"sha256": ingest["sha256"], "model_version": version}


def dot(at: AppTest) -> str:
    charts = list(at.get("graphviz_chart"))
    assert len(charts) == 1, "expected one graph"
    return str(charts[0].proto.spec)


def test_a_dataset_version_is_drawn_with_its_file_and_listed_edge_by_edge(
    console: AppTest, live_server: Any, seeded: dict[str, Any],
) -> None:
    at = open_page(log_in(console, "admin", live_server.admin_password), LINEAGE_PAGE)
    at.selectbox(key="lineage_dataset").select(DATASET).run()

    assert_clean(at)
    assert texts(at.title) == ["Lineage"]
    graph = dot(at)
    file_node = f"file:{seeded['sha256']}"
    assert graph.startswith("digraph lineage") and "rankdir=LR" in graph
    assert f'"{file_node}" -> "dataset:{DATASET}@1" [label="ingested_as"]' in graph
    assert f'"dataset:{DATASET}@1" [label="{DATASET} v1"' in graph and "penwidth=3" in graph
    edges = table(at, "src", "relation", "dst")
    assert set(zip(edges["src"], edges["relation"], strict=True)) == {
        (file_node, "ingested_as"), (f"dataset:{DATASET}@1", "version_of")}
    nodes = table(at, "id", "kind", "label")
    assert dict(zip(nodes["id"], nodes["kind"], strict=True))[file_node] == "file"


def test_a_model_version_walks_down_to_its_alias_moves(
    console: AppTest, live_server: Any, seeded: dict[str, Any],
) -> None:
    at = open_page(log_in(console, "admin", live_server.admin_password), LINEAGE_PAGE)
    at.radio(key="lineage_mode").set_value("Model version").run()
    at.selectbox(key="lineage_model").select(MODEL).run()
    at.radio(key="lineage_direction").set_value("down").run()

    assert_clean(at)
    number = seeded["model_version"]["number"]
    edges = table(at, "src", "relation", "dst")
    assert (f"model:{MODEL}@{number}", "aliased_as", f"alias:{MODEL}:champion:1") in set(
        zip(edges["src"], edges["relation"], edges["dst"], strict=True))
    assert "artifact:" not in dot(at)  # upstream only

    # walk again from the alias move: the page switches to the node-id mode
    at.selectbox(key="lineage_next").select(f"alias:{MODEL}:champion:1").run()
    at.button(key="lineage_recentre").click().run()
    assert_clean(at)
    assert at.text_input(key="lineage_node").value == f"alias:{MODEL}:champion:1"
    edges = table(at, "src", "relation", "dst")
    assert (f"alias:{MODEL}:champion:1", "move_of", f"alias:{MODEL}:champion") in set(
        zip(edges["src"], edges["relation"], edges["dst"], strict=True))


@pytest.mark.parametrize(("node", "message"), [
    ("../../etc/passwd", "has no '/'"),
    ("shell:rm -rf", "unknown lineage node kind"),
    ("dataset:Nope@1", "invalid dataset node"),
    ("dataset:nothing_here@9", "no lineage for"),
])
def test_a_bad_or_unknown_node_id_shows_the_api_message(
    console: AppTest, live_server: Any, node: str, message: str,
) -> None:
    at = open_page(log_in(console, "admin", live_server.admin_password), LINEAGE_PAGE)
    at.radio(key="lineage_mode").set_value("Node id").run()
    at.text_input(key="lineage_node").input(node).run()

    assert not at.exception, [e.message for e in at.exception]
    assert any(message in e for e in texts(at.error)), texts(at.error)
    assert not list(at.get("graphviz_chart"))
