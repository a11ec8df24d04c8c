"""Lineage: the graph from files to dataset versions, runs, model versions, alias moves,
prediction windows and drift reports, walked up or down from one node.

Pick a dataset version, a model version or type any node id; the page asks
``GET /api/v1/lineage/{node}`` and draws the answer as a DOT graph (Streamlit
renders DOT in the browser: no graphviz binary on the server), with the edges
and nodes as tables below.
"""

from __future__ import annotations

from typing import Any

import console_lib as lib
import console_views as views
import streamlit as st

from appliance.client import ApplianceClient

EDGE_COLUMNS = ["src", "relation", "dst", "created_at"]
NODE_COLUMNS = ["id", "kind", "label", "distance"]
MODES = ("Dataset version", "Model version", "Node id")
DIRECTIONS = {"both": "Up and down", "up": "Upstream (where it came from)",
              "down": "Downstream (what was made from it)"}
# kind -> (shape, fill colour)
STYLE = {
    "file": ("note", "#eeeeee"),
    "dataset": ("folder", "#dbeafe"),
    "run": ("box", "#fef3c7"),
    "model": ("box3d", "#dcfce7"),
    "artifact": ("component", "#f3f4f6"),
    "alias": ("tag", "#fce7f3"),
    "predictions": ("parallelogram", "#e0f2fe"),
    "drift": ("hexagon", "#fee2e2"),
}
KINDS_HINT = ("Kinds: `file:<sha256>`, `dataset:<name>@<n>`, `run:<uuid>`, `model:<name>@<n>`, "
              "`artifact:<sha256>`, `alias:<model>:<alias>[:<move>]`, "
              "`predictions:<model>@<n>:<start>..<end>`, `drift:<uuid>`.")
EMPTY_HINT = (
    "Nothing to walk yet: lineage starts when a file is ingested "
    "(drop one into `inbox/<dataset>/`), then grows with training runs, model versions, "
    "alias moves and drift checks."
)


def dot_text(text: str) -> str:
    """``text`` as a DOT double-quoted string."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def to_dot(graph: dict[str, Any]) -> str:
    """The walk as a left-to-right DOT digraph; the start node is drawn bold."""
    lines = ["digraph lineage {", "  rankdir=LR;",
             '  node [style="filled,rounded", fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=9, color="#6b7280"];']
    for n in graph.get("nodes") or []:
        shape, fill = STYLE.get(str(n.get("kind")), ("ellipse", "#ffffff"))
        extra = ', penwidth=3, color="#1d4ed8"' if n["id"] == graph.get("node") else ""
        lines.append(f"  {dot_text(n['id'])} [label={dot_text(str(n.get('label') or n['id']))}, "
                     f'shape={shape}, fillcolor="{fill}", tooltip={dot_text(n["id"])}{extra}];')
    for e in graph.get("edges") or []:
        lines.append(f"  {dot_text(e['src'])} -> {dot_text(e['dst'])} "
                     f"[label={dot_text(str(e.get('relation', '')))}];")
    lines.append("}")
    return "\n".join(lines)


# -- choosing the start node ---------------------------------------------------------


def pick_dataset_version(client: ApplianceClient) -> str | None:
    datasets = lib.fetch(client.datasets)
    if datasets is None:
        return None
    if not datasets:
        st.info(EMPTY_HINT)
        return None
    name = st.selectbox("Dataset", [d["name"] for d in datasets], key="lineage_dataset")
    versions = lib.fetch(lambda: client.versions(name))
    if versions is None:
        return None
    if not versions:
        st.info(f"{name} has no versions yet.")
        return None
    number = st.selectbox("Version", [v["number"] for v in versions],
                          key=f"lineage_dataset_version_{name}")
    return f"dataset:{name}@{number}"


def pick_model_version(client: ApplianceClient) -> str | None:
    models = lib.fetch(lambda: client.get("/models"))
    if models is None:
        return None
    if not models:
        st.info("No models yet: a successful training run registers one.")
        return None
    name = st.selectbox("Model", [m["name"] for m in models], key="lineage_model")
    model = lib.fetch(lambda: client.get(f"/models/{name}"))
    if model is None:
        return None
    numbers = [v["number"] for v in model.get("versions") or []]
    if not numbers:
        st.info(f"{name} has no versions yet.")
        return None
    number = st.selectbox("Version", numbers, key=f"lineage_model_version_{name}")
    return f"model:{name}@{number}"


def pick_node_id() -> str | None:
    node = st.text_input(
        "Node id", key="lineage_node",
        placeholder="dataset:customers@3, model:churn@2, run:<uuid>, drift:<uuid>...",
    ).strip()
    if not node:
        st.caption(KINDS_HINT)
        return None
    if "/" in node:  # it would not even reach the route: say why here
        st.error(f"A lineage node id has no '/'. {KINDS_HINT}")
        return None
    return node


def recentre(node: str) -> None:
    """Button callback: walk again from ``node`` (typed into the node-id box)."""
    st.session_state["lineage_mode"] = "Node id"
    st.session_state["lineage_node"] = node


# -- drawing ---------------------------------------------------------------------------


def show_graph(graph: dict[str, Any]) -> None:
    nodes, edges = graph.get("nodes") or [], graph.get("edges") or []
    st.caption(f"{len(nodes)} nodes · {len(edges)} edges · from `{graph.get('node')}`, "
               f"{DIRECTIONS.get(str(graph.get('direction')), '').lower()}, "
               f"{graph.get('depth')} hops")
    if graph.get("truncated"):
        st.warning("The graph is truncated at the node cap: walk from a node nearer what you "
                   "look for, or lower the depth.")
    st.graphviz_chart(to_dot(graph), width="stretch")
    st.subheader("Edges")
    views.table(views.frame(edges, EDGE_COLUMNS))
    st.subheader("Nodes")
    views.table(views.frame(nodes, NODE_COLUMNS))
    others = [n["id"] for n in nodes if n["id"] != graph.get("node")]
    if others:
        target = st.selectbox("Walk from another node", others, key="lineage_next")
        st.button("Walk from it", key="lineage_recentre", on_click=recentre, args=(target,))


def main() -> None:
    client = lib.open_page("Lineage")
    left, right = st.columns([2, 1])
    with left:
        mode = st.radio("Start from", MODES, horizontal=True, key="lineage_mode")
        if mode == "Dataset version":
            node = pick_dataset_version(client)
        elif mode == "Model version":
            node = pick_model_version(client)
        else:
            node = pick_node_id()
    with right:
        direction = st.radio("Direction", list(DIRECTIONS), format_func=DIRECTIONS.__getitem__,
                             key="lineage_direction")
        depth = st.slider("Depth (hops)", min_value=1, max_value=10, value=3,
                          key="lineage_depth")
    if node is None:
        return
    graph = lib.fetch(lambda: client.lineage(node, direction=direction, depth=depth))
    if graph is not None:
        show_graph(graph)


main()
