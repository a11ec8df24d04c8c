"""Every route but /healthz needs credentials, and each one its minimum role.

Table-driven over the app's own route list, so a new route without a
decision here fails the suite.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from appliance.api.app import create_app
from appliance.domain.principal import SYSTEM
from appliance.domain.roles import Role

PUBLIC = {("GET", "/healthz"), ("POST", "/api/v1/auth/token"),
          ("GET", "/v2/health/live"), ("GET", "/v2/health/ready")}
NEEDS: dict[tuple[str, str], Role] = {
    ("GET", "/metrics"): Role.viewer,
    ("GET", "/api/v1/auth/me"): Role.viewer,
    ("GET", "/api/v1/summary"): Role.viewer,
    ("GET", "/api/v1/datasets"): Role.viewer,
    ("GET", "/api/v1/datasets/{name}"): Role.viewer,
    ("POST", "/api/v1/datasets/{name}/files"): Role.operator,
    ("GET", "/api/v1/datasets/{name}/versions"): Role.viewer,
    ("GET", "/api/v1/datasets/{name}/versions/{number}"): Role.viewer,
    ("POST", "/api/v1/datasets/{name}/versions/{number}/validate"): Role.operator,
    ("GET", "/api/v1/datasets/{name}/contract"): Role.viewer,
    ("GET", "/api/v1/datasets/{name}/contracts"): Role.viewer,
    ("PUT", "/api/v1/datasets/{name}/contract"): Role.operator,
    ("GET", "/api/v1/ingests"): Role.viewer,
    ("GET", "/api/v1/lineage/{node}"): Role.viewer,
    ("GET", "/api/v1/jobs"): Role.viewer,
    ("GET", "/api/v1/jobs/{job_id}"): Role.viewer,
    ("GET", "/api/v1/jobs/{job_id}/runs"): Role.viewer,
    ("GET", "/api/v1/jobs/{job_id}/runs/{run_id}"): Role.viewer,
    ("POST", "/api/v1/jobs/{job_id}/run"): Role.operator,
    ("POST", "/api/v1/jobs/{job_id}/pause"): Role.operator,
    ("POST", "/api/v1/jobs/{job_id}/resume"): Role.operator,
    ("GET", "/api/v1/audit"): Role.approver,
    ("GET", "/api/v1/audit/verify"): Role.admin,
    ("GET", "/api/v1/users"): Role.admin,
    ("POST", "/api/v1/users"): Role.admin,
    ("PATCH", "/api/v1/users/{username}"): Role.admin,
    ("GET", "/api/v1/tokens"): Role.admin,
    ("POST", "/api/v1/tokens"): Role.admin,
    ("DELETE", "/api/v1/tokens/{token_id}"): Role.admin,
    ("GET", "/api/v1/sessions"): Role.admin,
    ("DELETE", "/api/v1/sessions/{session_id}"): Role.admin,
    ("POST", "/api/v1/erasures"): Role.admin,
    ("GET", "/api/v1/erasures"): Role.admin,
    ("POST", "/api/v1/runs"): Role.operator,
    ("GET", "/api/v1/runs"): Role.viewer,
    ("GET", "/api/v1/runs/{run_id}"): Role.viewer,
    ("POST", "/api/v1/runs/{run_id}/log"): Role.operator,
    ("PATCH", "/api/v1/runs/{run_id}"): Role.operator,
    ("GET", "/api/v1/runs/{run_id}/metrics"): Role.viewer,
    ("POST", "/api/v1/runs/{run_id}/artifacts"): Role.operator,
    ("GET", "/api/v1/runs/{run_id}/artifacts/{name}"): Role.viewer,
    ("POST", "/api/v1/models/{name}/predict"): Role.viewer,
    ("POST", "/api/v1/models/{name}/explain"): Role.viewer,
    ("GET", "/api/v1/predictions/{request_id}/explanation"): Role.viewer,
    ("GET", "/api/v1/predictions"): Role.viewer,
    ("POST", "/api/v1/models/{name}/feedback"): Role.operator,
    ("GET", "/api/v1/models/{name}/performance"): Role.viewer,
    ("GET", "/api/v1/models/{name}/routing"): Role.viewer,
    ("PUT", "/api/v1/models/{name}/routing"): Role.approver,
    ("GET", "/api/v1/models/{name}/canary"): Role.viewer,
    ("POST", "/api/v1/monitor/{model}/drift"): Role.operator,
    ("GET", "/api/v1/monitor/{model}/drift"): Role.viewer,
    ("GET", "/api/v1/monitor/{model}/traffic"): Role.viewer,
    ("GET", "/api/v1/monitor/{model}/metrics"): Role.viewer,
    ("GET", "/api/v1/alerts"): Role.viewer,
    ("GET", "/api/v1/alerts/webhooks"): Role.admin,
    ("POST", "/api/v1/alerts/webhooks"): Role.admin,
    ("DELETE", "/api/v1/alerts/webhooks/{webhook_id}"): Role.admin,
    ("POST", "/api/v1/alerts/{alert_id}/ack"): Role.operator,
    ("GET", "/api/v1/models"): Role.viewer,
    ("GET", "/api/v1/models/{name}"): Role.viewer,
    ("POST", "/api/v1/models/{name}/versions"): Role.operator,
    ("GET", "/api/v1/models/{name}/versions"): Role.viewer,
    ("GET", "/api/v1/models/{name}/versions/{number}"): Role.viewer,
    ("GET", "/api/v1/models/{name}/versions/{number}/card"): Role.viewer,
    ("GET", "/api/v1/models/{name}/versions/{number}/onnx"): Role.viewer,
    ("POST", "/api/v1/models/{name}/versions/{number}/approve"): Role.approver,
    ("GET", "/api/v1/models/{name}/aliases"): Role.viewer,
    ("GET", "/api/v1/models/{name}/aliases/{alias}"): Role.viewer,
    ("PUT", "/api/v1/models/{name}/aliases/{alias}"): Role.approver,
    ("POST", "/api/v1/models/{name}/aliases/{alias}/rollback"): Role.approver,
    ("GET", "/api/v1/models/{name}/aliases/{alias}/history"): Role.viewer,
    ("POST", "/api/v1/backups"): Role.admin,
    ("GET", "/api/v1/backups"): Role.admin,
    ("GET", "/v2"): Role.viewer,
    ("GET", "/v2/models/{name}"): Role.viewer,
    ("GET", "/v2/models/{name}/versions/{version}"): Role.viewer,
    ("GET", "/v2/models/{name}/ready"): Role.viewer,
    ("GET", "/v2/models/{name}/versions/{version}/ready"): Role.viewer,
    ("POST", "/v2/models/{name}/infer"): Role.viewer,
    ("POST", "/v2/models/{name}/versions/{version}/infer"): Role.viewer,
    ("POST", "/invocations"): Role.viewer,
    ("POST", "/api/v1/models/{name}/invocations"): Role.viewer,
}
# foreign protocols answer errors in their own shape on their own paths
FOREIGN_ERRORS = {
    "/v2": lambda body, kind: isinstance(body["error"], str),
    "/invocations": lambda body, kind: body["error_code"] == kind.upper(),
    "/api/v1/models/x/invocations": lambda body, kind: body["error_code"] == kind.upper(),
}


def _error_is(path: str, body: Any, kind: str) -> bool:
    path = _concrete(path)
    for prefix, check in FOREIGN_ERRORS.items():
        if path == prefix or path.startswith(prefix + "/"):
            return bool(check(body, kind))
    return bool(body["error"]["type"] == kind)
_SKIP_DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def _routes(app: Any) -> list[tuple[str, str]]:
    out = []
    for r in app.routes:
        if isinstance(r, APIRoute) and r.path not in _SKIP_DOCS:
            out.extend((m, r.path) for m in sorted(r.methods - {"HEAD", "OPTIONS"}))
    return out


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


@pytest.fixture
def tokens(appliance_app: Any) -> dict[Role, str]:
    out = {}
    for role in Role:
        appliance_app.auth.add_user(f"u-{role.value}", "password123", role, by=SYSTEM)
        out[role] = appliance_app.auth.login(f"u-{role.value}", "password123").access_token
    return out


def test_every_route_has_an_auth_decision(appliance_app: Any) -> None:
    app = create_app(appliance_app)
    undecided = [r for r in _routes(app) if r not in NEEDS and r not in PUBLIC]
    assert not undecided, f"routes with no auth decision in this table: {undecided}"


def test_every_route_answers_401_without_credentials(appliance_app: Any) -> None:
    client = TestClient(create_app(appliance_app))
    for method, path in _routes(client.app):
        if (method, path) in PUBLIC:
            continue
        resp = client.request(method, _concrete(path))
        assert resp.status_code == 401, (method, path, resp.text)
        assert _error_is(path, resp.json(), "unauthenticated"), (method, path, resp.text)


def test_every_route_answers_403_for_a_role_too_small(appliance_app: Any, tokens: dict[Role, str]) -> None:
    client = TestClient(create_app(appliance_app))
    checked = 0
    for (method, path), needed in NEEDS.items():
        for role in Role:
            if role.allows(needed):
                continue
            resp = client.request(method, _concrete(path),
                                  headers={"Authorization": f"Bearer {tokens[role]}"})
            assert resp.status_code == 403, (method, path, role, resp.text)
            assert _error_is(path, resp.json(), "permission_denied"), (method, path, resp.text)
            checked += 1
    assert checked > 20


def test_a_sufficient_role_gets_past_the_auth_check(appliance_app: Any, tokens: dict[Role, str]) -> None:
    client = TestClient(create_app(appliance_app))
    for (method, path), needed in NEEDS.items():
        resp = client.request(method, _concrete(path),
                              headers={"Authorization": f"Bearer {tokens[needed]}"})
        assert resp.status_code not in (401, 403), (method, path, resp.text)


def test_healthz_needs_no_credentials(appliance_app: Any) -> None:
    resp = TestClient(create_app(appliance_app)).get("/healthz")
    assert resp.status_code == 200 and resp.json()["status"] == "ok"


def test_unknown_host_header_is_refused(appliance_app: Any) -> None:
    client = TestClient(create_app(appliance_app))
    resp = client.get("/healthz", headers={"Host": "evil.example.com"})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_host"


def test_a_garbage_token_is_401_with_the_error_shape(appliance_app: Any) -> None:
    client = TestClient(create_app(appliance_app))
    resp = client.get("/api/v1/datasets", headers={"Authorization": "Bearer apl_nope"})
    assert resp.status_code == 401
    assert set(resp.json()["error"]) == {"type", "message", "detail"}
