"""The Models page against a live API: versions, alias history, role-aware moves, cards, ONNX.

Models are registered by uploading a tiny ONNX graph built here with
onnx.helper (POST /models/{name}/versions), so the page does not depend on
training. Aliases are moved through the API in the fixture, and through the
page's own buttons in the tests that check promotion and rollback.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from appliance.client import ApplianceClient

from .console_testing import (
    MODELS_PAGE,
    assert_clean,
    charts,
    console_lib,
    has_key,
    log_in,
    open_page,
    table,
    texts,
    tiny_onnx,
    upload_onnx,
)

MODEL = "ui_model"  # history made through the API, then only read
MOVES = "ui_moves"  # moved through the page's buttons


@pytest.fixture(scope="module")
def onnx_files() -> dict[int, bytes]:
    return {1: tiny_onnx(1.0), 2: tiny_onnx(2.0)}


@pytest.fixture(scope="module")
def history(admin_api: ApplianceClient, onnx_files: dict[int, bytes]) -> list[dict[str, Any]]:
    """ui_model v1 and v2; champion set to v1, forced to v2, rolled back to v1."""
    for number, data in onnx_files.items():
        assert upload_onnx(admin_api, MODEL, data)["number"] == number
    path = f"/models/{MODEL}/aliases/champion"
    admin_api.put(path, json={"version": 1, "reason": "first champion"})  # no gate to pass yet
    admin_api.put(path, json={"version": 2, "reason": "no comparison: forced", "force": True})
    admin_api.post(f"{path}/rollback", json={"reason": "v2 misbehaves"})
    events: list[dict[str, Any]] = admin_api.get(f"{path}/history")
    assert [e["action"] for e in events] == ["rollback", "set", "set"]
    return events


@pytest.fixture(scope="module")
def moves(admin_api: ApplianceClient, onnx_files: dict[int, bytes]) -> str:
    for data in onnx_files.values():
        upload_onnx(admin_api, MOVES, data)
    return MOVES


def open_model(at: AppTest, name: str) -> AppTest:
    at = open_page(at, MODELS_PAGE)
    at.selectbox(key="model").select(name).run()
    return at


# -- reading ------------------------------------------------------------------------------


def test_models_page_shows_versions_and_alias_history(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, history: list[dict[str, Any]]
):
    at = open_model(log_in(console, "admin", live_server.admin_password), MODEL)

    assert_clean(at)
    assert texts(at.title) == ["Models"]
    models = table(at, "name", "latest_version").set_index("name")
    assert models.loc[MODEL, "latest_version"] == 2
    versions = table(at, "number", "status", "aliases", "parity").set_index("number")
    assert list(versions.index) == [2, 1]
    assert set(versions["status"]) == {"ready"}
    assert versions.loc[1, "aliases"] == "champion" and versions.loc[2, "aliases"] == ""
    assert set(versions["parity"]) == {"not checked"}  # uploaded ONNX: no native model
    assert "`champion` → **v1**" in texts(at.markdown)

    shown = table(at, "at", "action", "version", "forced", "actor", "reason")
    assert list(shown["action"]) == [e["action"] for e in history] == ["rollback", "set", "set"]
    assert list(shown["version"]) == [1, 2, 1]
    assert list(shown["previous_version"].astype("object").where(shown["previous_version"].notna(),
                                                                  None)) == [2, 1, None]
    assert list(shown["forced"]) == [False, True, False]
    assert list(shown["reason"]) == ["v2 misbehaves", "no comparison: forced", "first champion"]
    assert set(shown["actor"]) == {"admin"}

    timelines = [c for c in charts(at) if "step-after" in c.proto.spec]
    assert len(timelines) == 1
    spec = json.loads(timelines[0].proto.spec)
    layers = {json.dumps(layer["encoding"]) for layer in spec["layer"]}
    assert any('"field": "action"' in layer and '"field": "at"' in layer for layer in layers)
    tooltip = next(layer["encoding"]["tooltip"] for layer in spec["layer"]
                   if "tooltip" in layer["encoding"])
    assert {"actor", "reason", "forced"} <= {t["field"] for t in tooltip}


def test_models_page_renders_the_model_card_and_offers_the_onnx(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, history: list[dict[str, Any]]
):
    at = open_model(log_in(console, "admin", live_server.admin_password), MODEL)
    at.selectbox(key=f"model_version_{MODEL}").select(1).run()

    assert_clean(at)
    card_md = admin_api.get(f"/models/{MODEL}/versions/1/card", format="md")
    assert card_md.startswith(f"# Model card: {MODEL} v1")
    assert card_md.strip() in texts(at.markdown)  # rendered with st.markdown, as the API wrote it
    card = admin_api.get(f"/models/{MODEL}/versions/1/card")
    assert card in [json.loads(j.value) for j in at.json]  # the JSON, in an expander
    assert len(card["promotions"]) == 2  # set to v1, rolled back to v1
    assert has_key(at.get("download_button"), "download_onnx")


def test_console_fetches_the_onnx_as_exact_bytes(
    live_server: Any, admin_api: ApplianceClient, onnx_files: dict[int, bytes],
    history: list[dict[str, Any]]
):
    lib = console_lib()
    for number, data in onnx_files.items():
        assert lib.fetch_bytes(admin_api, f"/models/{MODEL}/versions/{number}/onnx") == data
        # the generic client decodes non-JSON answers as text: why fetch_bytes exists
        assert admin_api.get(f"/models/{MODEL}/versions/{number}/onnx") != data
    with pytest.raises(lib.RemoteError) as refused:
        lib.fetch_bytes(admin_api, f"/models/{MODEL}/versions/99/onnx")
    assert refused.value.status == 404


def test_models_page_hides_moves_from_a_viewer(
    console: AppTest, viewer: tuple[str, str], history: list[dict[str, Any]]
):
    at = open_model(log_in(console, *viewer), MODEL)

    assert_clean(at)
    assert table(at, "at", "action", "actor") is not None  # a viewer reads the history...
    for key in ("promote", "rollback", "approve"):  # ...but is offered no move
        assert not has_key(at.button, key)
    assert not at.checkbox
    assert any("needs the approver or admin role; you are signed in as viewer" in t
               for t in texts(at.caption))


def test_models_page_offers_moves_to_an_approver(
    console: AppTest, approver: tuple[str, str], history: list[dict[str, Any]]
):
    at = open_model(log_in(console, *approver), MODEL)

    assert_clean(at)
    promote, rollback = at.button(key="promote"), at.button(key="rollback")
    assert promote.disabled and rollback.disabled  # until "I confirm" is ticked
    assert not has_key(at.button, "approve")  # no version is held for approval
    assert "No version waits for approval." in texts(at.caption)
    assert has_key(at.checkbox, f"promote_force_{MODEL}")
    assert at.checkbox(key=f"promote_force_{MODEL}").label == "force (audited)"
    assert "v2 back to v1" not in " ".join(c.label for c in at.checkbox)
    assert any("from v1 back to v2" in c.label for c in at.checkbox)  # undoing the rollback


# -- moving aliases through the page (last: they change the server's state) -------------------


def test_approver_promotes_with_confirmation_then_rolls_back(
    console: AppTest, admin_api: ApplianceClient, approver: tuple[str, str], moves: str
):
    at = open_model(log_in(console, *approver), moves)
    assert_clean(at)
    assert any(t.startswith(f"{moves} has no aliases yet") for t in texts(at.info))

    # 1. champion -> v1 (the first champion passes without force)
    at.selectbox(key=f"promote_version_{moves}").select(1)
    at.text_input(key=f"promote_reason_{moves}").input("first one")
    at.checkbox(key=f"promote_confirm_{moves}").check().run()
    assert not at.button(key="promote").disabled
    at.button(key="promote").click().run()
    assert_clean(at)
    assert f"Moved `champion` of {moves} to v1; it was unset." in texts(at.success)
    assert admin_api.get(f"/models/{moves}/aliases") == {"champion": 1}
    assert not at.checkbox(key=f"promote_confirm_{moves}").value  # confirm again next time

    # 2. champion -> v2 without force: the gate refuses, the page says why
    at.selectbox(key=f"promote_version_{moves}").select(2)
    at.text_input(key=f"promote_reason_{moves}").input("newer")
    at.checkbox(key=f"promote_confirm_{moves}").check().run()
    at.button(key="promote").click().run()
    assert not at.exception
    assert any("no comparison with champion v1" in t for t in texts(at.error))
    assert admin_api.get(f"/models/{moves}/aliases") == {"champion": 1}

    # 3. the same with force (audited)
    at.checkbox(key=f"promote_force_{moves}").check()
    at.checkbox(key=f"promote_confirm_{moves}").check().run()
    at.button(key="promote").click().run()
    assert_clean(at)
    assert f"Moved `champion` of {moves} to v2 (forced); it was v1." in texts(at.success)
    assert admin_api.get(f"/models/{moves}/aliases") == {"champion": 2}

    # 4. roll back, after confirming
    at.text_input(key=f"rollback_reason_{moves}").input("v2 is worse")
    at.checkbox(key=f"rollback_confirm_{moves}").check().run()
    at.button(key="rollback").click().run()
    assert_clean(at)
    assert f"Rolled `champion` of {moves} back to v1 (from v2)." in texts(at.success)
    assert admin_api.get(f"/models/{moves}/aliases") == {"champion": 1}

    shown = table(at, "at", "action", "version", "forced", "actor", "reason")
    assert list(shown["action"]) == ["rollback", "set", "set"]
    assert list(shown["forced"]) == [False, True, False]
    assert list(shown["reason"]) == ["v2 is worse", "newer", "first one"]
    assert set(shown["actor"]) == {approver[0]}
    audit = admin_api.audit(limit=50)
    assert any(e["action"] == "model.alias.set" and e["target"] == f"model:{moves}#champion"
               and e["after"]["forced"] for e in audit)
