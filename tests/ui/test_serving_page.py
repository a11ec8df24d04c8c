"""The Serving page against a live API: aliases, routing behind a confirmation, live latency.

A tiny servable ONNX regressor (y = x + offset, one float column) is uploaded
three times and served over HTTP, so the prediction log has real requests
with real latencies. Routing is changed only through the page's own form in
the last test, and reset through the API afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.errors import AppTestError

from appliance.client import ApplianceClient

from .conftest import ensure_user
from .console_testing import (
    MONITORING_PAGE,
    SERVING_PAGE,
    assert_clean,
    charts,
    has_key,
    log_in,
    new_console,
    open_page,
    servable_onnx,
    table,
    texts,
    upload_onnx,
)

MODEL = "ui_serving"
REQUESTS = 30
OPERATOR = ("ui_operator", "operator-password-1234")


@pytest.fixture(scope="module")
def served(admin_api: ApplianceClient) -> Iterator[str]:
    """ui_serving v1 (champion), v2 and v3; REQUESTS requests served by v1."""
    for offset in (1.0, 2.0, 3.0):
        upload_onnx(admin_api, MODEL, servable_onnx(offset))
    admin_api.put(f"/models/{MODEL}/aliases/champion", json={"version": 1, "reason": "ui"})
    for i in range(REQUESTS):
        out = admin_api.post(f"/models/{MODEL}/predict", json={"x": float(i)})
        assert out["version"] == 1 and out["predictions"] == [pytest.approx(i + 1.0)]
    yield MODEL
    admin_api.put(f"/models/{MODEL}/routing", json={"canary": None, "shadow": None})


@pytest.fixture(scope="module")
def operator(admin_api: ApplianceClient) -> tuple[str, str]:
    return ensure_user(admin_api, *OPERATOR, "operator")


def open_serving(at: AppTest, name: str) -> AppTest:
    at = open_page(at, SERVING_PAGE)
    at.selectbox(key="serving_model").select(name).run()
    return at


def routing_widgets(name: str) -> list[str]:
    return [f"routing_{k}_{name}" for k in ("canary_on", "canary_version", "canary_percent",
                                            "canary_key", "shadow_on", "shadow_version")]


# -- reading --------------------------------------------------------------------------------


def test_serving_page_shows_aliases_routing_and_live_latency(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, served: str
):
    at = open_serving(log_in(console, "admin", live_server.admin_password), served)

    assert_clean(at)
    assert texts(at.title) == ["Serving"]
    assert "`champion` → **v1**" in texts(at.markdown)
    assert "Champion traffic: all to v1." in texts(at.markdown)
    assert any(t.startswith("Requests logged per role, all time: primary") for t in
               texts(at.caption))

    traffic = admin_api.traffic(served, minutes=60, bucket_seconds=60)
    assert traffic["requests"] == REQUESTS
    shown = {m.label: m.value for m in at.metric}
    assert shown["Requests"] == str(REQUESTS)
    versions = table(at, "version", "role", "requests", "p50_ms", "p99_ms").set_index("version")
    assert list(versions.index) == [1] and versions.loc[1, "requests"] == REQUESTS
    assert versions.loc[1, "role"] == "primary"
    assert versions.loc[1, "p99_ms"] == pytest.approx(traffic["versions"][0]["p99_ms"])

    specs = [json.loads(c.proto.spec) for c in charts(at)]
    titles = {s.get("title") for s in specs}
    assert {"Latency p50 / p99 per version",
            "Requests per second (served, shadow excluded)"} <= titles
    latency = next(s for s in specs if s.get("title") == "Latency p50 / p99 per version")
    assert latency["encoding"]["strokeDash"]["field"] == "percentile"
    assert latency["encoding"]["color"]["field"] == "version"


def test_the_window_sets_the_span_and_the_bucket_width(
    console: AppTest, live_server: Any, served: str
):
    at = open_serving(log_in(console, "admin", live_server.admin_password), served)
    at.toggle(key="serving_live").set_value(False)
    at.selectbox(key="serving_window").select("last 15 minutes").run()

    assert_clean(at)
    assert any("buckets of 15 s" in t and "while live" in t for t in texts(at.caption))
    shown = {m.label: m.value for m in at.metric}
    assert "Requests/s (last complete 15 s)" in shown
    assert shown["Requests"] == str(REQUESTS)  # all made moments ago


def test_a_viewer_reads_the_routing_but_cannot_edit_it(
    console: AppTest, viewer: tuple[str, str], served: str
):
    at = open_serving(log_in(console, *viewer), served)

    assert_clean(at)
    assert "Champion traffic: all to v1." in texts(at.markdown)
    assert not has_key(at.button, "apply_routing")
    assert not any(has_key(at.checkbox, k) for k in routing_widgets(served))
    assert any("needs the approver or admin role; you are signed in as viewer" in t
               for t in texts(at.caption))
    assert table(at, "version", "requests", "p99_ms") is not None  # live traffic is for all


def test_an_operator_cannot_edit_the_routing_either(
    console: AppTest, operator: tuple[str, str], served: str
):
    at = open_serving(log_in(console, *operator), served)

    assert_clean(at)
    assert not has_key(at.button, "apply_routing")
    assert any("you are signed in as operator" in t for t in texts(at.caption))


# -- changing the routing (last: it changes the server's state) ----------------------------------


def test_a_routing_change_is_sent_only_after_the_confirmation(
    console: AppTest, admin_api: ApplianceClient, approver: tuple[str, str], served: str
):
    at = open_serving(log_in(console, *approver), served)
    assert_clean(at)
    assert not has_key(at.button, "apply_routing")  # nothing changed: nothing to send
    assert "No change to send: edit a setting above." in texts(at.caption)

    assert at.selectbox(key=f"routing_canary_version_{served}").disabled  # canary is off
    at.checkbox(key=f"routing_canary_on_{served}").check()
    at.checkbox(key=f"routing_shadow_on_{served}").check().run()
    at.selectbox(key=f"routing_canary_version_{served}").select(2)
    at.number_input(key=f"routing_canary_percent_{served}").set_value(25.0)
    at.selectbox(key=f"routing_shadow_version_{served}").select(3).run()
    assert_clean(at)

    change = table(at, "setting", "current", "new").set_index("setting")
    assert change.loc["canary version", "current"] == "none"
    assert change.loc["canary version", "new"] == "v2"
    assert change.loc["canary share", "new"] == "25%"
    assert change.loc["sticky key", "new"] == "none (random)"
    assert change.loc["shadow version", "new"] == "v3"
    assert at.button(key="apply_routing").disabled  # until "I confirm" is ticked
    with pytest.raises(AppTestError):  # as in a browser, a disabled button cannot be clicked
        at.button(key="apply_routing").click()
    assert admin_api.get(f"/models/{served}/routing")["routing"] == {"canary": None,
                                                                     "shadow": None}

    at.checkbox(key=f"routing_confirm_{served}").check().run()
    assert not at.button(key="apply_routing").disabled
    at.button(key="apply_routing").click().run()
    assert_clean(at)
    assert (f"Routing of {served} changed: canary version v2, canary share 25%, "
            "sticky key none (random), shadow version v3.") in texts(at.success)
    assert admin_api.get(f"/models/{served}/routing")["routing"] == {
        "canary": {"version": 2, "percent": 25.0, "key": None}, "shadow": {"version": 3}}
    assert "Champion traffic: 75% to v1, 25% to canary v2; shadow v3 scores every request, " \
           "never answers." in texts(at.markdown)
    assert not has_key(at.button, "apply_routing")  # the page now shows the new routing
    audit = admin_api.audit(limit=20)
    assert any(e["action"] == "model.routing.set" and e["target"] == f"model:{served}"
               and e["actor"] == approver[0] for e in audit)


# -- empty appliance ---------------------------------------------------------------------------


def test_empty_appliance_serving_and_monitoring_pages_say_what_to_do(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch
):
    empty = server_factory()
    monkeypatch.setenv("APPLIANCE_API_URL", empty.url)
    at = open_page(log_in(new_console(), "admin", empty.admin_password), SERVING_PAGE)

    assert_clean(at)
    assert texts(at.title) == ["Serving"]
    assert any(t.startswith("No models yet") and "appliance train" in t for t in texts(at.info))
    assert not charts(at) and not at.dataframe

    at = open_page(at, MONITORING_PAGE)
    assert_clean(at)
    assert texts(at.title) == ["Monitoring"]
    assert any(t.startswith("No models yet") for t in texts(at.info))
    assert texts(at.subheader) == ["Alerts"]  # alerts are not per model: still listed
    assert "No alert needs acknowledging." in texts(at.caption)
    assert "No alert waits for acknowledgement." in texts(at.caption)
