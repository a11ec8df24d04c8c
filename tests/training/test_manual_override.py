"""Automatic promotion never undoes a person's decision: after a manual rollback (or a forced
move) a retrain that passes the gate is held as challenger until a person moves champion."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from appliance.demo import make_customers
from appliance.domain.registry import AliasEvent, human_override

JOB = """
name: churn
dataset: customers
target: churned
features: %(features)s
model: {kind: %(kind)s, params: {}}
split: {test_size: 0.25, seed: 7}
metric: roc_auc
promote: {alias: champion, min_delta: 0.0, require_approval: false}
"""
WEAK = JOB % {"features": "{include: [age]}", "kind": "LogisticRegression"}
STRONG = JOB % {"features": "{exclude: [customer_id]}", "kind": "LogisticRegression"}


def train(api: Any, text: str) -> dict[str, Any]:
    run = api.post("/api/v1/runs", json={"job": text}).json()
    deadline = time.monotonic() + 120
    while (run := api.get(f"/api/v1/runs/{run['id']}").json())["status"] not in (
            "succeeded", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert run["status"] == "succeeded", run["error"]
    return dict(run["model_version"])


def champion(api: Any) -> int:
    return int(api.get("/api/v1/models/churn/aliases/champion").json()["version"])


def test_retrain_after_a_manual_rollback_is_held_as_challenger_not_promoted(api: Any) -> None:
    csv = make_customers(800, seed=3).write_csv().encode()
    assert api.post("/api/v1/datasets/customers/files", params={"filename": "c.csv"},
                    content=csv, headers={"Content-Type": "application/octet-stream"}
                    ).status_code == 201
    assert train(api, WEAK)["version"] == 1 and champion(api) == 1
    assert train(api, STRONG)["version"] == 2 and champion(api) == 2  # beat v1: promoted
    rolled = api.post("/api/v1/models/churn/aliases/champion/rollback",
                      json={"reason": "v2 misbehaves in production"})
    assert rolled.status_code == 200 and champion(api) == 1

    assert train(api, STRONG)["version"] == 3
    v3 = api.get("/api/v1/models/churn/versions/3").json()
    assert v3["gate"]["passed"] and "rolled back to v1 by admin" in v3["gate"]["held_because"]
    assert champion(api) == 1  # the rollback stands
    assert api.get("/api/v1/models/churn/aliases").json()["challenger"] == 3

    moved = api.put("/api/v1/models/churn/aliases/champion",
                    json={"version": 3, "reason": "reviewed v3"})
    assert moved.status_code == 200, moved.text  # the gate compared v3 with v1: not stale
    assert champion(api) == 3
    assert train(api, WEAK)["version"] == 4  # a person moved champion: the gate alone decides
    assert "held_because" not in api.get("/api/v1/models/churn/versions/4").json()["gate"]


def test_human_override_reads_the_last_move_only() -> None:
    rollback = AliasEvent(alias="champion", action="rollback", version=1, previous_version=2,
                          forced=False, actor="ann", reason="bad day",
                          at=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    forced = rollback.model_copy(update={"action": "set", "forced": True, "version": 4})
    automatic = rollback.model_copy(update={"action": "set", "forced": False,
                                            "actor": "scheduler"})
    assert "rolled back to v1 by ann" in str(human_override("champion", [rollback, automatic]))
    assert "forced to v4 by ann" in str(human_override("champion", [forced]))
    assert human_override("champion", [automatic, rollback]) is None
    assert human_override("champion", []) is None
