"""The lineage walk in-process, over edges written straight into a real DuckDB store.

The graph below has the shape the writers give it (ingest, training, the
registry, drift); the writers themselves are checked in tests/registry,
tests/monitor and test_run_edges.py.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from appliance.domain.lineage import MAX_NODE_CHARS, check_node, node_label
from appliance.errors import InvalidInput, NotFound
from appliance.store import lineage as lq

FILE = "file:" + "a" * 64
ARTIFACT = "artifact:" + "b" * 64
DATASET_V1 = "dataset:customers@1"
DATASET = "dataset:customers"
RUN = f"run:{uuid.UUID(int=1)}"
MODEL_V1 = "model:churn@1"
MOVE = "alias:churn:champion:1"
ALIAS = "alias:churn:champion"
WINDOW = "predictions:churn@1:20261126T040000Z..20261127T040000Z"
DRIFT = f"drift:{uuid.UUID(int=2)}"

EDGES = [
    (FILE, DATASET_V1, "ingested_as"),
    (DATASET_V1, DATASET, "version_of"),
    (DATASET_V1, RUN, "trained"),
    (RUN, MODEL_V1, "registered_as"),
    (ARTIFACT, MODEL_V1, "onnx_of"),
    (MODEL_V1, MOVE, "aliased_as"),
    (MOVE, ALIAS, "move_of"),
    (MODEL_V1, WINDOW, "served"),
    (WINDOW, DRIFT, "current_of"),
    (DATASET_V1, DRIFT, "reference_of"),
    (MODEL_V1, DRIFT, "checked_by"),
]


def write(app: Any, edges: list[tuple[str, str, str]]) -> None:
    with app.store.write() as s:
        for src, dst, relation in edges:
            lq.add_edge(s, src=src, dst=dst, relation=relation)


@pytest.fixture
def graph(appliance_app: Any) -> Any:
    write(appliance_app, EDGES)
    return appliance_app.lineage


def ids(answer: dict[str, Any]) -> set[str]:
    return {n.id for n in answer.nodes}


def triples(answer: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(e.src, e.dst, e.relation) for e in answer.edges}


def test_walking_up_from_a_model_version_reaches_the_file_it_was_trained_on(graph: Any) -> None:
    answer = graph.walk(MODEL_V1, direction="up", depth=3)
    assert ids(answer) == {MODEL_V1, RUN, ARTIFACT, DATASET_V1, FILE}
    assert triples(answer) == {(FILE, DATASET_V1, "ingested_as"), (DATASET_V1, RUN, "trained"),
                               (RUN, MODEL_V1, "registered_as"), (ARTIFACT, MODEL_V1, "onnx_of")}
    assert answer.truncated is False


def test_walking_down_from_a_model_version_reaches_its_alias_moves_and_drift_reports(
    graph: Any,
) -> None:
    answer = graph.walk(MODEL_V1, direction="down", depth=3)
    assert ids(answer) == {MODEL_V1, MOVE, ALIAS, WINDOW, DRIFT}
    assert (WINDOW, DRIFT, "current_of") in triples(answer)
    assert FILE not in ids(answer)


def test_both_is_the_union_of_up_and_down_not_an_undirected_walk(graph: Any) -> None:
    answer = graph.walk(MODEL_V1)  # both, depth 3
    assert {FILE, DRIFT, ALIAS} <= ids(answer)
    # the dataset itself hangs off customers@1 downstream: a sibling, not lineage of churn v1
    assert DATASET not in ids(answer)
    # the drift report's reference edge joins two nodes already in the answer: it is kept
    assert (DATASET_V1, DRIFT, "reference_of") in triples(answer)


def test_nodes_carry_kind_label_and_distance(graph: Any) -> None:
    nodes = {n.id: n for n in graph.walk(MODEL_V1).nodes}
    assert nodes[MODEL_V1].model_dump() == {"id": MODEL_V1, "kind": "model", "label": "churn v1",
                               "distance": 0}
    assert nodes[FILE].kind == "file" and nodes[FILE].distance == 3
    assert nodes[DRIFT].distance == 1  # checked_by is one hop, the window path two
    assert nodes[MOVE].label == "churn champion move 1"
    assert nodes[WINDOW].label == "churn v1 predictions 2026-11-26 04:00 to 2026-11-27 04:00"


def test_depth_limits_the_hops(graph: Any) -> None:
    assert ids(graph.walk(MODEL_V1, direction="up", depth=1)) == {MODEL_V1, RUN, ARTIFACT}
    assert ids(graph.walk(MODEL_V1, direction="up", depth=2)) == {MODEL_V1, RUN, ARTIFACT,
                                                                  DATASET_V1}
    assert ids(graph.walk(FILE, direction="down", depth=10)) >= {DRIFT, ALIAS}


def test_the_one_hop_upstream_and_downstream_lists_stay(graph: Any) -> None:
    answer = graph.walk(DATASET_V1, direction="up", depth=1)
    assert [e.src for e in answer.upstream] == [FILE]
    assert {e.dst for e in answer.downstream} == {DATASET, RUN, DRIFT}
    assert set(answer.upstream[0].model_dump()) == {"src", "dst", "relation", "at"}


def test_a_cycle_is_walked_once(appliance_app: Any) -> None:
    a, b, c = (f"run:{uuid.UUID(int=i)}" for i in (10, 11, 12))
    write(appliance_app, [(a, b, "x"), (b, c, "x"), (c, a, "x"), (a, a, "self")])
    for direction in ("up", "down", "both"):
        answer = appliance_app.lineage.walk(a, direction=direction, depth=10)
        assert ids(answer) == {a, b, c}
        assert len(answer.edges) == 4 and answer.truncated is False


def test_the_node_cap_truncates_and_keeps_only_edges_between_kept_nodes(
    appliance_app: Any,
) -> None:
    hub = "dataset:hub@1"
    runs = [f"run:{uuid.UUID(int=100 + i)}" for i in range(50)]
    write(appliance_app, [(hub, r, "trained") for r in runs])
    write(appliance_app, [(r, f"model:hub@{i + 1}", "registered_as") for i, r in enumerate(runs)])
    answer = appliance_app.lineage.walk(hub, direction="down", depth=2, limit=10)
    assert answer.truncated is True and len(answer.nodes) == 10
    kept = ids(answer)
    assert all(e.src in kept and e.dst in kept for e in answer.edges)
    whole = appliance_app.lineage.walk(hub, direction="down", depth=2, limit=1000)
    assert whole.truncated is False and len(whole.nodes) == 101


def test_a_node_nothing_was_recorded_about_is_not_found(graph: Any) -> None:
    with pytest.raises(NotFound, match="no lineage"):
        graph.walk("dataset:customers@9")


@pytest.mark.parametrize("node", [
    "", "customers", "dataset:", "dataset:Customers@1", "dataset:../../etc/passwd",
    "dataset:a@1;drop table lineage_edges", "dataset:a@0", "dataset:a@-1", "model:churn@1 ",
    "file:" + "a" * 63, "file:" + "A" * 64, "run:not-a-uuid", "drift:1", "shell:rm -rf",
    "alias:churn:Champion", "alias:churn:champion:x", "predictions:churn@1:yesterday..today",
    "dataset:a\u202e@1", "dataset:a\x00@1", "x" * (MAX_NODE_CHARS + 1), "dataset:" + "a" * 65,
], ids=repr)
def test_a_malformed_or_unknown_kind_of_node_is_refused(node: str) -> None:
    with pytest.raises(InvalidInput, match="node"):
        check_node(node)


@pytest.mark.parametrize("node", [FILE, ARTIFACT, DATASET_V1, DATASET, RUN, MODEL_V1, MOVE,
                                  ALIAS, WINDOW, DRIFT, "model:churn"])
def test_every_kind_of_node_the_writers_make_is_accepted(node: str) -> None:
    assert check_node(node) == node
    assert node_label(node)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"direction": "sideways"}, "direction"), ({"depth": 0}, "depth"), ({"depth": 11}, "depth"),
    ({"depth": True}, "depth"), ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
])
def test_bad_walk_options_are_refused(graph: Any, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        graph.walk(MODEL_V1, **kwargs)
    assert err.value.detail == {"field": field}
