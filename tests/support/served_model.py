"""A served model for the serving-protocol tests: customers ingested, churn trained.

Works with any client that has ``get``/``post``/``put`` answering ``.json()``
and carries the admin's bearer token: a TestClient or an ``httpx.Client`` on
a live ``appliance serve``.
"""

from __future__ import annotations

import time
from typing import Any

from appliance_test_support import train_and_wait

from appliance.demo import make_customers

CHURN_JOB = """
name: churn
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: LogisticRegression, params: {C: 1.0}}
split: {test_size: 0.25, seed: 7}
metric: roc_auc
"""


def serve_churn(client: Any, rows: int = 400) -> None:
    """Ingest ``rows`` customers and train churn v1 (champion)."""
    data = make_customers(rows, seed=4).write_csv().encode()
    resp = client.post("/api/v1/datasets/customers/files", params={"filename": "c.csv"},
                       content=data, headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 201, resp.text
    deadline = time.monotonic() + 30
    while client.get("/api/v1/datasets/customers/versions/1").json()["summary_status"] != "ready":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    train_and_wait(client, CHURN_JOB)
    assert client.get("/api/v1/models/churn/aliases/champion").json()["version"] == 1


def churn_records(n: int, seed: int = 100) -> list[dict[str, Any]]:
    """``n`` customers as predict-route records (no id, no label)."""
    return make_customers(n, seed=seed).drop("churned", "customer_id").to_dicts()
