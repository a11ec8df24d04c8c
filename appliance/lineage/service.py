"""The lineage graph: walk edges upstream (where a thing came from) or downstream
(what was made from it), breadth first, with a depth limit and a node cap.

The graph is ``file -> dataset version -> run -> model version -> alias moves``
and ``model version -> prediction window -> drift report`` (the drift report's
reference dataset version points at it too). Edges are written by the service
that makes the thing they describe, in the same transaction; this module only
reads. A node is a typed id such as ``dataset:customers@3`` or
``model:churn@2``, built and parsed by ``appliance.domain.lineage``.

A walk is cycle safe (every node is visited once per direction), asks the store
one query per level and direction, and stops adding nodes at ``limit`` (and
edges at four times that): the answer then says ``truncated``. The answer's
edges are all the edges among the nodes it kept.
"""

from __future__ import annotations

from appliance.domain.lineage import (
    Edge,
    Lineage,
    LineageEdge,
    LineageNode,
    check_node,
    node_kind,
    node_label,
)
from appliance.errors import InvalidInput, NotFound
from appliance.store import lineage as lq
from appliance.store.db import Store
from appliance.store.tables import LineageEdgeRow

DIRECTIONS = ("up", "down", "both")
DEFAULT_DEPTH = 3
MAX_DEPTH = 10
DEFAULT_LIMIT = 200
MAX_LIMIT = 1000


def edge_of(e: LineageEdgeRow) -> LineageEdge:
    return LineageEdge(src=e.src, dst=e.dst, relation=e.relation,
                       created_at=e.created_at.isoformat())


class LineageService:
    def __init__(self, store: Store) -> None:
        self.store = store

    def walk(self, node: str, *, direction: str = "both", depth: int = DEFAULT_DEPTH,
             limit: int = DEFAULT_LIMIT) -> Lineage:
        """Nodes and edges within ``depth`` hops of ``node``, upstream, downstream or both.

        ``both`` is the union of the upstream and the downstream walk (not an
        undirected walk, which would wander into every sibling). ``upstream`` and
        ``downstream`` also list the one-hop edges, as before.
        """
        check_node(node)
        if direction not in DIRECTIONS:
            raise InvalidInput(f"direction is one of {', '.join(DIRECTIONS)}",
                               detail={"field": "direction"})
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= MAX_DEPTH:
            raise InvalidInput(f"depth is 1-{MAX_DEPTH}", detail={"field": "depth"})
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            raise InvalidInput(f"limit is 1-{MAX_LIMIT} nodes", detail={"field": "limit"})
        with self.store.read() as s:
            hop_up = lq.edges_into(s, [node], limit=MAX_LIMIT + 1)
            hop_down = lq.edges_from(s, [node], limit=MAX_LIMIT + 1)
            if not hop_up and not hop_down:
                raise NotFound(f"no lineage for {node!r}: nothing was recorded about it")
            seen: dict[str, int] = {node: 0}  # every node kept -> fewest hops from the start
            truncated = False
            walks = [down for down in (False, True)
                     if direction == "both" or (direction == "down") == down]
            for down in walks:
                visited = {node}  # per direction: a cycle is walked once
                frontier = [node]
                for level in range(1, depth + 1):
                    if not frontier:
                        break
                    if level == 1:
                        rows = hop_down if down else hop_up
                    else:  # one more row than the cap can use: enough to know it was hit
                        query = lq.edges_from if down else lq.edges_into
                        rows = query(s, frontier, limit=limit * 4 + 1)
                        truncated = truncated or len(rows) > limit * 4
                    following: list[str] = []
                    for e in rows:
                        other = e.dst if down else e.src
                        if other not in seen:
                            if len(seen) >= limit:
                                truncated = True
                                continue
                            seen[other] = level
                        seen[other] = min(seen[other], level)
                        if other not in visited:
                            visited.add(other)
                            following.append(other)
                    frontier = following
            # every edge among the kept nodes: a drift report's reference edge shows even
            # when the walk reached the report another way
            edges = lq.edges_between(s, list(seen), limit=limit * 4 + 1)
            truncated = truncated or len(edges) > limit * 4
        return Lineage(
            node=node,
            direction=direction,  # type: ignore[arg-type]  # checked against DIRECTIONS above
            depth=depth,
            nodes=[LineageNode(id=n, kind=node_kind(n), label=node_label(n), distance=d)
                   for n, d in sorted(seen.items(), key=lambda kv: (kv[1], kv[0]))],
            edges=[edge_of(e) for e in edges[:limit * 4]],
            truncated=truncated,
            upstream=[_hop(e) for e in hop_up + hop_down if e.dst == node],
            downstream=[_hop(e) for e in hop_up + hop_down if e.src == node],
        )


def _hop(e: LineageEdgeRow) -> Edge:
    """The one-hop shape the first lineage route answered (``at`` for the time)."""
    return Edge(src=e.src, dst=e.dst, relation=e.relation, at=e.created_at.isoformat())
