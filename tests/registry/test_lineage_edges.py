"""Alias moves join the lineage graph in the same transaction as the alias event.

Each move is a node ``alias:<model>:<alias>:<k>`` (the k-th event of that alias,
oldest first), fed by the version it points at and pointing at the alias
``alias:<model>:<alias>``: walking up from the alias shows its whole history,
walking down from a version shows every move to it.
"""

from __future__ import annotations

from typing import Any

import pytest

from appliance.domain.principal import SYSTEM
from appliance.domain.registry import VersionStatus
from appliance.errors import Conflict
from appliance.store import lineage as lq

from .test_service import APPROVER, tiny_onnx

CHAMPION = "alias:churn:champion"


def alias_edges(app: Any) -> list[tuple[str, str, str]]:
    with app.store.read() as s:
        out = {(e.src, e.relation, e.dst) for e in lq.edges_from(s, ["model:churn@1",
               "model:churn@2", "model:churn@3"], limit=100) if e.relation == "aliased_as"}
        out |= {(e.src, e.relation, e.dst) for e in lq.edges_into(s, [CHAMPION], limit=100)}
    return sorted(out)


@pytest.fixture
def churn(appliance_app: Any) -> Any:
    for bias in (1.0, 2.0, 3.0):
        appliance_app.registry.register_upload("churn", tiny_onnx(bias), by=SYSTEM)
    return appliance_app


def test_set_force_and_rollback_each_leave_a_move_in_the_graph(churn: Any) -> None:
    reg = churn.registry
    reg.set_alias("churn", "champion", 1, reason="first", by=APPROVER)
    reg.set_alias("churn", "champion", 2, reason="trust me", by=APPROVER, force=True)
    reg.rollback("churn", "champion", reason="bad day", by=APPROVER)
    assert alias_edges(churn) == sorted([
        ("model:churn@1", "aliased_as", f"{CHAMPION}:1"),
        ("model:churn@2", "aliased_as", f"{CHAMPION}:2"),
        ("model:churn@1", "aliased_as", f"{CHAMPION}:3"),
        (f"{CHAMPION}:1", "move_of", CHAMPION),
        (f"{CHAMPION}:2", "move_of", CHAMPION),
        (f"{CHAMPION}:3", "move_of", CHAMPION),
    ])
    down = churn.lineage.walk("model:churn@1", direction="down", depth=2)
    assert {n.id for n in down.nodes} == {"model:churn@1", f"{CHAMPION}:1",
                                                f"{CHAMPION}:3", CHAMPION}
    history = churn.lineage.walk(CHAMPION, direction="up", depth=2)
    assert {n.id for n in history.nodes} == {
        CHAMPION, f"{CHAMPION}:1", f"{CHAMPION}:2", f"{CHAMPION}:3", "model:churn@1",
        "model:churn@2"}


def test_aliases_are_numbered_apart_and_an_approval_is_a_move(churn: Any) -> None:
    reg = churn.registry
    reg.set_alias("churn", "challenger", 3, reason="try it", by=APPROVER)
    reg.set_alias("churn", "champion", 1, reason="first", by=APPROVER)
    pending = reg.register(model="churn", onnx_bytes=tiny_onnx(4.0), flavor="onnx", by=SYSTEM,
                           status=VersionStatus.pending_approval)
    reg.approve("churn", pending.number, reason="looks right", by=APPROVER)
    with churn.store.read() as s:
        moves = {(e.src, e.dst) for e in lq.edges_from(
            s, ["model:churn@3", "model:churn@1", "model:churn@4"], limit=100)}
    assert moves >= {("model:churn@3", "alias:churn:challenger:1"),
                     ("model:churn@1", f"{CHAMPION}:1"), ("model:churn@4", f"{CHAMPION}:2")}


def test_a_refused_move_writes_no_edge(churn: Any) -> None:
    reg = churn.registry
    reg.set_alias("churn", "champion", 1, reason="first", by=APPROVER)
    before = alias_edges(churn)
    with pytest.raises(Conflict):
        reg.set_alias("churn", "champion", 2, reason="no gate", by=APPROVER)
    with pytest.raises(Conflict):
        reg.set_alias("churn", "champion", 1, reason="again", by=APPROVER)
    assert alias_edges(churn) == before
