"""The registry in-process: ONNX only, sha256 checked at load, aliases with history."""

from __future__ import annotations

import os
import pickle
from typing import Any

import pytest
from appliance_test_support import tiny_onnx

from appliance.domain.principal import SYSTEM, Principal
from appliance.domain.roles import Role
from appliance.errors import Conflict, InvalidInput, StoreUnavailable

APPROVER = Principal("ann", Role.approver)


def test_register_upload_stores_a_checked_onnx_and_numbers_versions(appliance_app: Any) -> None:
    reg = appliance_app.registry
    v1 = reg.register_upload("churn", tiny_onnx(1.0), by=SYSTEM)
    v2 = reg.register_upload("churn", tiny_onnx(2.0), by=SYSTEM)
    assert (v1["number"], v2["number"]) == (1, 2)
    assert v1["signature"]["inputs"][0]["name"] == "x"
    assert reg.onnx_bytes("churn", 2) == tiny_onnx(2.0)


@pytest.mark.parametrize("payload", [
    pickle.dumps({"not": "a model"}),
    os.urandom(512),
    b"<html>not onnx</html>",
    b"",
], ids=["pickle", "random", "text", "empty"])
def test_register_refuses_anything_that_is_not_onnx(appliance_app: Any, payload: bytes) -> None:
    with pytest.raises(InvalidInput):
        appliance_app.registry.register_upload("churn", payload, by=SYSTEM)
    assert appliance_app.registry.list_models() == []


def test_a_tampered_onnx_byte_is_refused_at_load(appliance_app: Any) -> None:
    v = appliance_app.registry.register_upload("churn", tiny_onnx(), by=SYSTEM)
    path = appliance_app.artifacts.path_for(v["onnx_sha256"])
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreUnavailable, match="corrupt"):
        appliance_app.registry.onnx_bytes("churn", 1)


def test_champion_moves_through_the_gate_or_by_force_and_rolls_back(appliance_app: Any) -> None:
    reg = appliance_app.registry
    for bias in (1.0, 2.0, 3.0):
        reg.register_upload("churn", tiny_onnx(bias), by=SYSTEM)
    reg.set_alias("churn", "champion", 1, reason="first", by=APPROVER)  # no champion yet
    with pytest.raises(Conflict, match="no comparison"):
        reg.set_alias("churn", "champion", 2, reason="no gate", by=APPROVER)
    reg.set_alias("churn", "champion", 2, reason="trust me", by=APPROVER, force=True)
    reg.set_alias("churn", "challenger", 3, reason="try it", by=APPROVER)
    assert reg.aliases("churn") == {"champion": 2, "challenger": 3}
    assert reg.rollback("churn", "champion", reason="bad day", by=APPROVER)["version"] == 1
    assert reg.alias("churn", "champion") == {"alias": "champion", "version": 1}
    history = reg.history("churn", "champion")
    assert [(e["action"], e["version"], e["previous_version"], e["forced"]) for e in history] == [
        ("rollback", 1, 2, False), ("set", 2, 1, True), ("set", 1, None, False)]
    assert all(e["actor"] == "ann" for e in history)
    actions = [e.action for e in appliance_app.auditor.recent(limit=20)]
    assert actions.count("model.alias.set") == 3 and "model.alias.rollback" in actions


def test_gate_record_decides_a_champion_move(appliance_app: Any) -> None:
    reg = appliance_app.registry
    reg.register_upload("m", tiny_onnx(1.0), by=SYSTEM)
    reg.set_alias("m", "champion", 1, reason="first", by=APPROVER)
    worse = reg.register(model="m", onnx_bytes=tiny_onnx(2.0), flavor="sklearn", by=SYSTEM,
                         facts={"gate": {"metric": "roc_auc", "value": 0.7, "champion_version": 1,
                                         "champion_value": 0.8, "min_delta": 0.0,
                                         "passed": False}})
    with pytest.raises(Conflict, match="does not beat"):
        reg.set_alias("m", "champion", worse["number"], reason="worse", by=APPROVER)
    better = reg.register(model="m", onnx_bytes=tiny_onnx(3.0), flavor="sklearn", by=SYSTEM,
                          facts={"gate": {"metric": "roc_auc", "value": 0.9,
                                          "champion_version": 1, "champion_value": 0.8,
                                          "min_delta": 0.05, "passed": True}})
    reg.set_alias("m", "champion", better["number"], reason="better", by=APPROVER)
    assert reg.aliases("m")["champion"] == better["number"]


def test_model_card_renders_markdown_with_promotions(appliance_app: Any) -> None:
    reg = appliance_app.registry
    reg.register_upload("churn", tiny_onnx(), by=SYSTEM)
    reg.set_alias("churn", "champion", 1, reason="first release", by=APPROVER)
    card = reg.card("churn", 1)
    assert card["promotions"][0]["actor"] == "ann"
    md = reg.card_markdown("churn", 1)
    assert md.startswith("# Model card: churn v1") and "first release" in md
    assert "Not checked" in md  # uploaded ONNX: no native model to compare with
