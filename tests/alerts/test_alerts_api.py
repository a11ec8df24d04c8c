"""The alerts API: roles per route, acknowledgement, admin-only webhooks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import ADMIN_PASSWORD
from fastapi.testclient import TestClient

from appliance.domain.principal import SYSTEM
from appliance.domain.roles import Role
from appliance.monitor.alerts import AlertService
from tests.alerts.test_alerts import PUBLIC_IP, fake_dns

PASSWORD = "a-long-enough-password-1"


@pytest.fixture
def clients(appliance_app: Any, tmp_path: Path) -> Iterator[dict[str, TestClient]]:
    from appliance.api.app import create_app
    from appliance.api.routers import alerts as alerts_router

    old = getattr(appliance_app, "alerts", None)
    if old is not None:
        old.close()
    appliance_app.alerts = AlertService(
        appliance_app.store, appliance_app.auditor, allowed_webhook_hosts=["allowed.example"],
        log_path=tmp_path / "alerts.jsonl", resolver=fake_dns({"allowed.example": PUBLIC_IP}))
    api = create_app(appliance_app)
    if not any(getattr(r, "path", "") == "/api/v1/alerts" for r in api.routes):
        api.include_router(alerts_router.router)  # until the lead wires it in app.py
    for name, role in (("vera", Role.viewer), ("olga", Role.operator)):
        appliance_app.auth.add_user(name, PASSWORD, role, by=SYSTEM)
    out: dict[str, TestClient] = {}
    with TestClient(api) as anon:
        out["anon"] = anon
        for who, pw in (("admin", ADMIN_PASSWORD), ("vera", PASSWORD), ("olga", PASSWORD)):
            c = TestClient(api)
            tok = c.post("/api/v1/auth/token", json={"username": who, "password": pw}).json()
            c.headers["Authorization"] = f"Bearer {tok['access_token']}"
            out[who] = c
        yield out
    appliance_app.alerts.close()


def test_roles_per_route(clients: dict[str, TestClient]) -> None:
    anon, viewer, operator = clients["anon"], clients["vera"], clients["olga"]
    some_id = "00000000-0000-0000-0000-000000000000"
    assert anon.get("/api/v1/alerts").status_code == 401
    assert anon.post(f"/api/v1/alerts/{some_id}/ack", json={}).status_code == 401
    assert anon.get("/api/v1/alerts/webhooks").status_code == 401
    assert viewer.get("/api/v1/alerts").status_code == 200
    assert viewer.post(f"/api/v1/alerts/{some_id}/ack", json={}).status_code == 403
    for c in (viewer, operator):
        assert c.get("/api/v1/alerts/webhooks").status_code == 403
        assert c.post("/api/v1/alerts/webhooks",
                      json={"url": "https://allowed.example/h"}).status_code == 403
        assert c.delete(f"/api/v1/alerts/webhooks/{some_id}").status_code == 403


def test_list_and_acknowledge(clients: dict[str, TestClient], appliance_app: Any) -> None:
    alert = appliance_app.alerts.raise_alert("drift", "churn", "shift in tenure")
    appliance_app.alerts.raise_alert("drift", "churn", "shift in tenure")
    viewer, operator = clients["vera"], clients["olga"]
    (listed,) = viewer.get("/api/v1/alerts", params={"status": "open"}).json()
    assert listed["id"] == str(alert.id) and listed["count"] == 2
    assert viewer.get("/api/v1/alerts", params={"status": "bogus"}).status_code == 400

    resp = operator.post(f"/api/v1/alerts/{alert.id}/ack", json={"note": "on it"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "acknowledged" and resp.json()["acknowledged_by"] == "olga"
    assert operator.post(f"/api/v1/alerts/{alert.id}/ack", json={}).status_code == 409
    assert operator.post("/api/v1/alerts/nope/ack", json={}).status_code == 404
    assert viewer.get("/api/v1/alerts", params={"status": "open"}).json() == []
    audit = clients["admin"].get("/api/v1/audit", params={"limit": 1}).json()[0]
    assert audit["action"] == "alert.acknowledge" and audit["actor"] == "olga"


def test_admin_manages_webhooks(clients: dict[str, TestClient]) -> None:
    admin = clients["admin"]
    for url in ("http://127.0.0.1/hook", "http://169.254.169.254/latest/meta-data",
                "https://not-allowed.example/h", "ftp://allowed.example/x"):
        resp = admin.post("/api/v1/alerts/webhooks", json={"url": url})
        assert resp.status_code == 400, url
        assert resp.json()["error"]["type"] == "invalid_input"
    created = admin.post("/api/v1/alerts/webhooks", json={"url": "https://allowed.example/h"})
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["created_by"] == "admin"
    assert [h["id"] for h in admin.get("/api/v1/alerts/webhooks").json()] == [hook["id"]]
    assert admin.delete(f"/api/v1/alerts/webhooks/{hook['id']}").status_code == 200
    assert admin.delete(f"/api/v1/alerts/webhooks/{hook['id']}").status_code == 404
    assert admin.get("/api/v1/alerts/webhooks").json() == []
