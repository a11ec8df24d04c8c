"""Lineage node ids: built and parsed here, and nowhere else. Pure.

A node is a typed id, ``<kind>:<rest>``; the services that write edges build
ids with the functions below, the lineage walk checks and labels them with
:func:`check_node` / :func:`parse_node`::

    file:<sha256>                              file_node(sha)
    dataset:<name>                             dataset_node(name)
    dataset:<name>@<n>                         version_node(name, n)
    run:<uuid>                                 run_node(id)
    model:<name>@<n>                           model_node(name, n)
    artifact:<sha256>                          artifact_node(sha)
    alias:<model>:<alias>[:<move>]             alias_node(model, alias[, move])
    predictions:<model>@<n>:<start>..<end>     predictions_node(model, n, start, end)
    drift:<uuid>                               drift_node(id)
    erasure:<uuid>                             erasure_node(id)

``<start>``/``<end>`` are UTC to the second, ``20261127T041731Z``. The strings
are exactly the ones stored in ``lineage_edges`` since the first release.

What a walk answers (:class:`Lineage`: nodes, edges and the one-hop edges of the
start) is typed here too.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.errors import InvalidInput

MAX_NODE_CHARS = 200

_NAME = r"[a-z0-9_-]{1,64}"
_ALIAS = r"[a-z][a-z0-9_-]{0,63}"
_SHA = r"[0-9a-f]{64}"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_STAMP = r"\d{8}T\d{6}Z"
_VERSION = r"[1-9][0-9]{0,8}"

# kind -> the pattern of the rest of the id (after "<kind>:")
KINDS: dict[str, re.Pattern[str]] = {
    "file": re.compile(_SHA),
    "dataset": re.compile(rf"{_NAME}(@{_VERSION})?"),
    "run": re.compile(_UUID),
    "model": re.compile(rf"{_NAME}(@{_VERSION})?"),
    "artifact": re.compile(_SHA),
    "alias": re.compile(rf"{_NAME}:{_ALIAS}(:{_VERSION})?"),
    "predictions": re.compile(rf"{_NAME}@{_VERSION}:{_STAMP}\.\.{_STAMP}"),
    "drift": re.compile(_UUID),
    "erasure": re.compile(_UUID),
}
EXAMPLES = ("file:<sha256>", "dataset:<name>@<n>", "run:<uuid>", "model:<name>@<n>",
            "artifact:<sha256>", "alias:<model>:<alias>[:<move>]",
            "predictions:<model>@<n>:<start>..<end>", "drift:<uuid>",
            "erasure:<uuid>")


# -- building ------------------------------------------------------------------------------


def file_node(sha256: str) -> str:
    return f"file:{sha256}"


def dataset_node(dataset: str) -> str:
    return f"dataset:{dataset}"


def version_node(dataset: str, number: int) -> str:
    return f"dataset:{dataset}@{number}"


def run_node(run_id: uuid.UUID | str) -> str:
    return f"run:{run_id}"


def model_node(name: str, number: int) -> str:
    return f"model:{name}@{number}"


def artifact_node(sha256: str) -> str:
    return f"artifact:{sha256}"


def alias_node(model: str, alias: str, move: int | None = None) -> str:
    """``alias:<model>:<alias>``, or its ``move``-th move (1 = the oldest): ``...:<move>``."""
    return f"alias:{model}:{alias}" + (f":{move}" if move is not None else "")


def predictions_node(model: str, version: int, start: dt.datetime, end: dt.datetime) -> str:
    """A prediction-log window of one model version, in UTC to the second."""
    return f"predictions:{model}@{version}:{_stamp(start)}..{_stamp(end)}"


def drift_node(report_id: uuid.UUID | str) -> str:
    return f"drift:{report_id}"


def erasure_node(erasure_id: uuid.UUID | str) -> str:
    return f"erasure:{erasure_id}"


def _stamp(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


# -- parsing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A parsed node id. ``key`` is the name (dataset, model, an alias's model), the
    sha256 (file, artifact) or the uuid (run, drift); the other fields are set where the
    kind has them."""

    id: str
    kind: str
    key: str
    number: int | None = None   # dataset or model version; the model version of a window
    alias: str | None = None
    move: int | None = None     # the n-th move of an alias (1 = the oldest)
    start: str | None = None    # a prediction window's bounds, ``20261127T041731Z``
    end: str | None = None


def check_node(node: object) -> str:
    """The node id if it names a known kind in its exact shape; InvalidInput otherwise."""
    hint = "a lineage node is one of " + ", ".join(EXAMPLES)
    if not isinstance(node, str) or not node or len(node) > MAX_NODE_CHARS:
        raise InvalidInput(f"invalid lineage node: {hint}", detail={"field": "node"})
    kind, sep, rest = node.partition(":")
    pattern = KINDS.get(kind)
    if not sep or pattern is None:
        raise InvalidInput(f"unknown lineage node kind {kind[:40]!r}: {hint}",
                           detail={"field": "node", "kinds": sorted(KINDS)})
    if not pattern.fullmatch(rest):
        raise InvalidInput(f"invalid {kind} node {node!r}: {hint}", detail={"field": "node"})
    return node


def parse_node(node: object) -> Node:
    """Check a node id (InvalidInput when it is not one) and split it into its parts."""
    text = check_node(node)
    kind, _, rest = text.partition(":")
    if kind in ("dataset", "model"):
        name, at, number = rest.partition("@")
        return Node(text, kind, name, int(number) if at else None)
    if kind == "alias":
        model, _, tail = rest.partition(":")
        alias, moved, move = tail.partition(":")
        return Node(text, kind, model, alias=alias, move=int(move) if moved else None)
    if kind == "predictions":
        head, _, window = rest.partition(":")
        name, _, number = head.partition("@")
        start, _, end = window.partition("..")
        return Node(text, kind, name, int(number), start=start, end=end)
    return Node(text, kind, rest)


def node_kind(node: str) -> str:
    return node.partition(":")[0]


def node_label(node: str) -> str:
    """A short human name: ``customers v3``, ``churn v2``, ``churn champion move 3``.

    Lenient (no check): it labels whatever an edge holds."""
    kind, _, rest = node.partition(":")
    if kind in ("dataset", "model"):
        name, at, number = rest.partition("@")
        return f"{name} v{number}" if at else name
    if kind == "file":
        return f"file {rest[:12]}"
    if kind == "artifact":
        return f"onnx {rest[:12]}"
    if kind == "run":
        return f"run {rest[:8]}"
    if kind == "drift":
        return f"drift report {rest[:8]}"
    if kind == "erasure":
        return f"erasure {rest[:8]}"
    if kind == "alias":
        model, _, tail = rest.partition(":")
        alias, moved, move = tail.partition(":")
        return f"{model} {alias} move {move}" if moved else f"{model} {alias}"
    if kind == "predictions":
        head, _, window = rest.partition(":")
        name, _, number = head.partition("@")
        start, _, end = window.partition("..")
        return f"{name} v{number} predictions {_readable(start)} to {_readable(end)}"
    return node


def _readable(stamp: str) -> str:
    """``20261127T041731Z`` as ``2026-11-27 04:17``."""
    return f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]} {stamp[9:11]}:{stamp[11:13]}"


# -- what a walk answers ----------------------------------------------------------------


class LineageNode(BaseModel):
    """A node kept by a walk, and its fewest hops from the start."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="A typed node id such as `dataset:customers@3`.")
    kind: str = Field(description="The part of the id before the first `:`.")
    label: str
    distance: int


class LineageEdge(BaseModel):
    """``src -> dst`` with a relation name, as recorded."""

    model_config = ConfigDict(frozen=True)

    src: str
    dst: str
    relation: str
    created_at: str


class Edge(BaseModel):
    """A one-hop edge of the start node (``at`` for the time: the first lineage route's shape)."""

    model_config = ConfigDict(frozen=True)

    src: str
    dst: str
    relation: str
    at: str


class Lineage(BaseModel):
    """The graph within ``depth`` hops of ``node``, walked up, down or both."""

    model_config = ConfigDict(frozen=True)

    node: str
    direction: Literal["up", "down", "both"]
    depth: int
    nodes: list[LineageNode]
    edges: list[LineageEdge] = Field(description="Every edge among the nodes kept.")
    truncated: bool = Field(description="The walk stopped at the node or edge cap.")
    upstream: list[Edge] = Field(description="The one-hop edges into the node.")
    downstream: list[Edge] = Field(description="The one-hop edges out of the node.")
