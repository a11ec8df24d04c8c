"""`appliance models canary NAME`: the verdict as a table by default, JSON with --json."""

from __future__ import annotations

import json
from pathlib import Path

from appliance_test_support import make_settings
from cli_testing import invoke

from appliance.domain.principal import SYSTEM

from .test_canary import GATE, route, traffic
from .test_traffic import tiny_onnx

MODEL = "cl_churn"


def test_models_canary_prints_the_verdict_as_a_table_and_as_json(tmp_path: Path) -> None:
    from appliance.runtime import build

    home = tmp_path / "home"
    app = build(make_settings(home))
    try:
        for facts in ({}, {"gate": GATE}):
            app.registry.register(model=MODEL, onnx_bytes=tiny_onnx(), flavor="onnx",
                                  by=SYSTEM, task="classification", facts=facts)
        app.registry.set_alias(MODEL, "champion", 1, reason="t", by=SYSTEM)
        route(app, MODEL, canary=2)
        traffic(app, MODEL, primary=0.7, canary=0.95)
    finally:
        app.close()

    table = invoke(home, "models", "canary", MODEL, "--min-samples", "50")
    assert table.exit_code == 0, table.output
    assert "canary v2 vs champion v1" in table.stdout
    assert "canary_better" in table.stdout and "accuracy" in table.stdout

    out = invoke(home, "models", "canary", MODEL, "--min-samples", "50", "--json")
    assert out.exit_code == 0, out.output
    verdict = json.loads(out.stdout)
    assert verdict["verdict"] == "canary_better"
    assert verdict["primary"]["n"] + verdict["canary"]["n"] == 400

    bad = invoke(home, "models", "canary", MODEL, "--alpha", "2")
    assert bad.exit_code == 2 and "alpha" in bad.stderr
    missing = invoke(home, "models", "canary", "cl_nobody")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
