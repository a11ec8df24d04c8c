"""What a lineage walk answers: the nodes and edges near one node of the graph."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


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
