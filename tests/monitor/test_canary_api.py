"""End to end: a served model with a canary, real predictions and labels over the API, the
verdict route, and the job file's rule rolling the worse canary back on its scheduled check.

Two ONNX regressors (y = x + 1, the champion; y = x + 3, the canary) answer
real predict requests; labels are y = x + 1 plus noise, so the canary's
squared errors are about 17 times the champion's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx_models import servable_onnx
from scheduler_clock import ADMIN

MODEL = "cy_price"
JOB = f"""\
name: {MODEL}
dataset: prices
target: price
model: {{kind: LinearRegression}}
promote:
  canary: {{auto: true, min_samples: 20, every: 30m}}
"""


def test_canary_verdict_over_the_api_and_the_rule_rolls_back_a_worse_canary(
        api: Any, appliance_app: Any) -> None:
    app = appliance_app
    for offset in (1.0, 3.0):
        resp = api.post(f"/api/v1/models/{MODEL}/versions", content=servable_onnx(offset),
                        headers={"Content-Type": "application/octet-stream"})
        assert resp.status_code in (200, 201), resp.text
    assert api.put(f"/api/v1/models/{MODEL}/aliases/champion",
                   json={"version": 1, "reason": "t"}).status_code == 200
    jobs_dir = app.settings.resolved_jobs_dir
    jobs_dir.mkdir(parents=True, exist_ok=True)
    (jobs_dir / f"{MODEL}.yaml").write_text(JOB)
    app.jobs.reload()
    assert app.jobs.job(f"canary.{MODEL}").trigger == "every 30m"

    # no canary yet: the route says so
    resp = api.get(f"/api/v1/models/{MODEL}/canary")
    assert resp.status_code == 404 and "has no canary" in resp.json()["error"]["message"]
    assert api.put(f"/api/v1/models/{MODEL}/routing",
                   json={"canary": {"version": 2, "percent": 50}}).status_code == 200

    rng = np.random.default_rng(0)
    labels = []
    for i in range(120):
        x = float(i % 17)
        out = api.post(f"/api/v1/models/{MODEL}/predict", json={"x": x}).json()
        labels.append({"request_id": out["request_ids"][0],
                       "label": x + 1.0 + float(rng.normal(0.0, 0.5))})
    fed = api.post(f"/api/v1/models/{MODEL}/feedback", json=labels).json()
    assert fed["matched"] == 120

    resp = api.get(f"/api/v1/models/{MODEL}/canary")  # the job file's settings
    assert resp.status_code == 200, resp.text
    v = resp.json()
    assert v["min_samples"] == 20 and v["alpha"] == 0.05 and v["rule_auto"] is True
    assert v["verdict"] == "canary_worse" and v["metric"] == "rmse"
    assert v["primary"]["n"] + v["canary"]["n"] == 120
    assert min(v["primary"]["n"], v["canary"]["n"]) >= 20
    assert v["canary"]["metric"] > 1.5 > v["primary"]["metric"]
    assert v["p_value"] <= 0.05 and v["lower"] > 0 and v["history"]
    # a stricter first look: still waiting for enough labels
    early = api.get(f"/api/v1/models/{MODEL}/canary", params={"min_samples": 500}).json()
    assert early["verdict"] == "not_yet_conclusive"
    bad = api.get(f"/api/v1/models/{MODEL}/canary", params={"alpha": 0.9})
    assert bad.status_code == 422

    run = app.jobs.run_here(f"canary.{MODEL}", by=ADMIN)
    assert run.status == "succeeded", run.error
    assert run.result["action"] == "rolled_back"
    assert run.result["verdict"]["verdict"] == "canary_worse"
    routing = api.get(f"/api/v1/models/{MODEL}/routing").json()
    assert routing["routing"]["canary"] is None
    assert api.get(f"/api/v1/models/{MODEL}/aliases/champion").json()["version"] == 1
    audit = api.get("/api/v1/audit", params={"limit": 20}).json()
    items = audit["items"] if isinstance(audit, dict) else audit
    assert "model.canary.rollback" in [e["action"] for e in items]
    # the next check finds no canary: nothing to do, not a failure
    again = app.jobs.run_here(f"canary.{MODEL}", by=ADMIN)
    assert again.status == "succeeded" and again.result["action"] == "none"

