"""The promotion gate end to end: an identical retrain ties with the champion, exactly."""

from __future__ import annotations

import time
from typing import Any

import pytest
from appliance_test_support import train_and_wait

from appliance.demo import make_customers
from appliance.domain.registry import beats

JOB = """
name: churn
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: RandomForestClassifier, params: {n_estimators: 50}}
split: {test_size: 0.25, seed: 7}
metric: accuracy
promote: {alias: champion, min_delta: 0.0}
"""


def test_identical_retrain_ties_and_passes_the_gate_with_min_delta_0(api: Any) -> None:
    csv = make_customers(600, seed=3).write_csv().encode()
    assert api.post("/api/v1/datasets/customers/files", params={"filename": "c.csv"},
                    content=csv, headers={"Content-Type": "application/octet-stream"}
                    ).status_code == 201
    deadline = time.monotonic() + 30
    while api.get("/api/v1/datasets/customers/versions/1").json()["summary_status"] != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    train_and_wait(api, JOB)
    train_and_wait(api, JOB)
    v1, v2 = (api.get(f"/api/v1/models/churn/versions/{n}").json() for n in (1, 2))
    gate = v2["gate"]
    assert gate["basis"] == "onnx" and gate["champion_version"] == 1
    assert gate["value"] == gate["champion_value"] and gate["passed"] is True
    assert v2["onnx_sha256"] == v1["onnx_sha256"]   # the same job and data: the same bytes
    # the gate passed, but the champion already serves these exact bytes: nothing moves
    # (an alias history entry per identical retrain would only be noise)
    assert api.get("/api/v1/models/churn/aliases/champion").json()["version"] == 1
    assert len(api.get("/api/v1/models/churn/aliases/champion/history").json()) == 1


@pytest.mark.parametrize(("metric", "candidate", "incumbent", "min_delta", "passes"), [
    ("accuracy", 0.82, 0.82, 0.0, True),      # a tie passes when min_delta is 0
    ("accuracy", 0.82, 0.82, 0.01, False),    # and keeps the champion when it is above 0
    ("accuracy", 0.30, 0.29, 0.01, True),     # 0.3 - 0.29 is 0.00999...: still "by 0.01"
    ("accuracy", 0.81, 0.82, 0.0, False),
    ("log_loss", 0.40, 0.40, 0.0, True),
    ("log_loss", 0.41, 0.40, 0.0, False),     # lower is better
    ("roc_auc", 0.50, None, 0.5, True),       # nothing to beat
])
def test_beats_applies_the_tie_rule_against_min_delta(metric: str, candidate: float,
                                                      incumbent: float | None, min_delta: float,
                                                      passes: bool) -> None:
    assert beats(metric, candidate, incumbent, min_delta) is passes
