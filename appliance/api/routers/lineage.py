"""The lineage graph: walk it upstream or downstream from one node."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from appliance.api.deps import App, Viewer
from appliance.domain.lineage import Lineage
from appliance.lineage.service import DEFAULT_DEPTH, DEFAULT_LIMIT, MAX_DEPTH, MAX_LIMIT

router = APIRouter(prefix="/api/v1", tags=["lineage"])


@router.get("/lineage/{node}")
def lineage(
    app: App, _: Viewer, node: str,
    direction: Literal["up", "down", "both"] = "both",
    depth: int = Query(DEFAULT_DEPTH, ge=1, le=MAX_DEPTH),
    limit: int = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Most nodes to return"),
) -> Lineage:
    """Nodes and edges within ``depth`` hops of ``node``."""
    return app.lineage.walk(node, direction=direction, depth=depth, limit=limit)
