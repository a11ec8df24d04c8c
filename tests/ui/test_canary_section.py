"""The Serving page's canary verdict against a live API: verdict, p-value, n per arm, chart.

Two servable ONNX regressors (y = x + 1, champion; y = x + 3, canary at 50%)
answer real batches of requests; labels are y = x + 1, so the canary is worse.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from appliance.client import ApplianceClient

from .console_testing import (
    SERVING_PAGE,
    assert_clean,
    charts,
    log_in,
    open_page,
    servable_onnx,
    table,
    texts,
    upload_onnx,
)

MODEL = "ui_canary"
BATCHES, ROWS = 80, 10  # requests are routed whole: about 400 labelled rows per arm


@pytest.fixture(scope="module")
def canaried(admin_api: ApplianceClient) -> Iterator[str]:
    for offset in (1.0, 3.0):
        upload_onnx(admin_api, MODEL, servable_onnx(offset))
    admin_api.put(f"/models/{MODEL}/aliases/champion", json={"version": 1, "reason": "ui"})
    admin_api.put(f"/models/{MODEL}/routing", json={"canary": {"version": 2, "percent": 50}})
    rng = np.random.default_rng(1)
    labels = []
    for _ in range(BATCHES):
        xs = [float(x) for x in rng.integers(0, 20, ROWS)]
        out = admin_api.post(f"/models/{MODEL}/predict", json=[{"x": x} for x in xs])
        labels += [{"request_id": rid, "label": x + 1.0 + float(rng.normal(0, 0.5))}
                   for rid, x in zip(out["request_ids"], xs, strict=True)]
    admin_api.post(f"/models/{MODEL}/feedback", json=labels)
    yield MODEL
    admin_api.put(f"/models/{MODEL}/routing", json={"canary": None, "shadow": None})


def test_serving_page_shows_the_canary_verdict_with_its_evidence(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, canaried: str
) -> None:
    verdict = admin_api.canary(canaried)
    at = open_page(log_in(console, "admin", live_server.admin_password), SERVING_PAGE)
    at.selectbox(key="serving_model").select(canaried).run()

    assert_clean(at)
    assert "Canary verdict" in texts(at.subheader)
    assert verdict["verdict"] == "canary_worse"
    assert any(t.startswith("**Canary worse**: canary v2 is worse") for t in texts(at.warning))
    shown = {m.label: m.value for m in at.metric}
    assert shown["Always-valid p-value"] == f"{verdict['p_value']:.3g}"
    assert shown["Champion v1: labelled"] == str(verdict["primary"]["n"])
    assert shown["Canary v2: labelled"] == str(verdict["canary"]["n"])
    arms = table(at, "arm", "version", "labelled requests", "rmse").set_index("arm")
    assert arms.loc["canary", "rmse"] == pytest.approx(verdict["canary"]["metric"])
    specs = [json.loads(c.proto.spec) for c in charts(at)]
    sequence = [s for s in specs if s.get("title") == "Confidence sequence for the difference"]
    assert len(sequence) == 1
    assert any("confidence sequence" in t for t in texts(at.caption))


def test_serving_page_has_no_canary_section_without_a_canary(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, canaried: str
) -> None:
    admin_api.put(f"/models/{MODEL}/routing", json={"canary": None, "shadow": None})
    try:
        at = open_page(log_in(console, "admin", live_server.admin_password), SERVING_PAGE)
        at.selectbox(key="serving_model").select(canaried).run()
        assert_clean(at)
        assert "Canary verdict" not in texts(at.subheader)
    finally:
        admin_api.put(f"/models/{MODEL}/routing",
                      json={"canary": {"version": 2, "percent": 50}})
