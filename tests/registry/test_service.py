"""The registry in-process: ONNX only, sha256 checked at load, aliases with history."""

from __future__ import annotations

import os
import pickle
import uuid
from typing import Any

import pytest
from appliance_test_support import tiny_onnx

from appliance.domain.principal import SYSTEM, Principal
from appliance.domain.roles import Role
from appliance.errors import Conflict, InvalidInput, NotFound, StoreUnavailable

APPROVER = Principal("ann", Role.approver)


def test_register_upload_stores_a_checked_onnx_and_numbers_versions(appliance_app: Any) -> None:
    reg = appliance_app.registry
    v1 = reg.register_upload("churn", tiny_onnx(1.0), by=SYSTEM)
    v2 = reg.register_upload("churn", tiny_onnx(2.0), by=SYSTEM)
    assert (v1.number, v2.number) == (1, 2)
    assert v1.signature is not None and v1.signature["inputs"][0]["name"] == "x"
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
    path = appliance_app.artifacts.path_for(v.onnx_sha256)
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
    assert reg.rollback("churn", "champion", reason="bad day", by=APPROVER).version == 1
    assert reg.alias("churn", "champion").model_dump() == {"alias": "champion", "version": 1}
    history = reg.history("churn", "champion")
    assert [(e.action, e.version, e.previous_version, e.forced) for e in history] == [
        ("rollback", 1, 2, False), ("set", 2, 1, True), ("set", 1, None, False)]
    assert all(e.actor == "ann" for e in history)
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
        reg.set_alias("m", "champion", worse.number, reason="worse", by=APPROVER)
    better = reg.register(model="m", onnx_bytes=tiny_onnx(3.0), flavor="sklearn", by=SYSTEM,
                          facts={"gate": {"metric": "roc_auc", "value": 0.9,
                                          "champion_version": 1, "champion_value": 0.8,
                                          "min_delta": 0.05, "passed": True}})
    reg.set_alias("m", "champion", better.number, reason="better", by=APPROVER)
    assert reg.aliases("m")["champion"] == better.number


def test_model_card_renders_markdown_with_promotions(appliance_app: Any) -> None:
    reg = appliance_app.registry
    reg.register_upload("churn", tiny_onnx(), by=SYSTEM)
    reg.set_alias("churn", "champion", 1, reason="first release", by=APPROVER)
    card = reg.card("churn", 1)
    assert card.promotions[0].actor == "ann"
    md = reg.card_markdown("churn", 1)
    assert md.startswith("# Model card: churn v1") and "first release" in md
    assert "Not checked" in md  # uploaded ONNX: no native model to compare with


def test_version_for_run_finds_the_version_a_run_registered(appliance_app: Any) -> None:
    reg = appliance_app.registry
    run = appliance_app.runs.start_external(name="r1", experiment="churn", params=None,
                                            tags=None, by=SYSTEM)
    reg.register_upload("churn", tiny_onnx(1.0), by=SYSTEM)
    made = reg.register(model="churn", onnx_bytes=tiny_onnx(2.0), flavor="sklearn", by=SYSTEM,
                        run_id=uuid.UUID(run.id))
    found = reg.version_for_run(run.id)
    assert made.number == 2
    assert found is not None and (found.model, found.number) == ("churn", 2)
    assert found == reg.version("churn", 2)
    ref = reg.version_of_run(uuid.UUID(run.id))
    assert ref is not None and ref.model_dump() == {"model": "churn", "version": 2}
    assert reg.version_for_run(str(uuid.uuid4())) is None
    assert reg.version_for_run("not-a-run-id") is None


def test_a_stored_gate_reads_back_with_exactly_its_keys(appliance_app: Any) -> None:
    """Gates stored by older releases lack ``basis`` (and hand-made ones ``fairness_passed``);
    ``held_because`` is there only when set: the answer has exactly the stored keys."""
    reg = appliance_app.registry
    reg.register_upload("m", tiny_onnx(1.0), by=SYSTEM)
    old = {"metric": "roc_auc", "value": 0.9, "champion_version": 1, "champion_value": None,
           "min_delta": 0, "fairness_passed": True, "passed": True}
    held = {**old, "basis": "onnx", "held_because": "champion was rolled back by ann"}
    for gate in (old, held):
        v = reg.register(model="m", onnx_bytes=tiny_onnx(2.0), flavor="sklearn", by=SYSTEM,
                         facts={"gate": gate})
        assert v.gate is not None and v.gate.model_dump() == gate
        assert reg.version("m", v.number).model_dump(mode="json")["gate"] == gate
    assert reg.version("m", 1).gate is None


def test_model_version_times_keep_their_isoformat_text(appliance_app: Any) -> None:
    """``created_at`` is answered as ``isoformat()`` writes it (``+00:00``), as always."""
    v = appliance_app.registry.register_upload("churn", tiny_onnx(), by=SYSTEM)
    answered = v.model_dump(mode="json")["created_at"]
    assert answered == v.created_at.isoformat() and not answered.endswith("Z")
    assert '"created_at":"' + v.created_at.isoformat() + '"' in v.model_dump_json()


def test_model_answers_the_model_without_its_versions(appliance_app: Any) -> None:
    reg = appliance_app.registry
    reg.register_upload("churn", tiny_onnx(1.0), by=SYSTEM)
    reg.register_upload("churn", tiny_onnx(2.0), by=SYSTEM)
    reg.set_alias("churn", "champion", 1, reason="first", by=APPROVER)
    model = reg.model("churn")
    assert (model.name, model.latest_version, model.aliases) == ("churn", 2, {"champion": 1})
    assert "versions" not in model.model_dump()
    assert reg.show_model("churn").model_dump(exclude={"versions"}) == model.model_dump()
    with pytest.raises(NotFound):
        reg.model("nope")
