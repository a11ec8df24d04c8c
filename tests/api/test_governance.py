"""Users, tokens, sessions, built-in jobs and the API's own docs, through the routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import make_settings
from fastapi.testclient import TestClient

from appliance.api.app import create_app
from appliance.domain.principal import SYSTEM
from appliance.domain.roles import Role
from appliance.runtime import build


def _as(appliance_app: Any, role: Role) -> dict[str, str]:
    name = f"as-{role.value}"
    appliance_app.auth.add_user(name, "password123", role, by=SYSTEM)
    token = appliance_app.auth.login(name, "password123").access_token
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("days", [1e9, -1, 0, "NaN", "Infinity", "soon"])
def test_post_tokens_answers_422_for_a_lifetime_out_of_range(api: Any, days: Any) -> None:
    body = '{"username": "admin", "name": "x", "expires_days": %s}' % (
        f'"{days}"' if days == "soon" else days)
    resp = api.post("/api/v1/tokens", content=body, headers={"Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["detail"][0]["loc"][-1] == "expires_days"
    assert not [t for t in api.get("/api/v1/tokens").json() if t["name"] == "x"]


def test_post_tokens_without_a_lifetime_makes_one_that_never_expires(api: Any) -> None:
    for body in ({"username": "admin", "name": "a"},
                 {"username": "admin", "name": "b", "expires_days": None}):
        resp = api.post("/api/v1/tokens", json=body)
        assert resp.status_code == 201 and resp.json()["expires_at"] is None
    assert api.post("/api/v1/tokens", json={"username": "admin", "name": "c",
                                            "expires_days": 3650}).status_code == 201


def test_patch_users_refuses_to_demote_or_disable_the_last_admin(api: Any) -> None:
    for change, says in (({"role": "operator"}, "last enabled admin"),
                         ({"role": "viewer", "password": "a-new-password"}, "last enabled admin"),
                         ({"disabled": True}, "yourself")):
        resp = api.patch("/api/v1/users/admin", json=change)
        assert resp.status_code == 409, resp.text
        assert says in resp.json()["error"]["message"]
    assert api.get("/api/v1/auth/me").json()["role"] == "admin"


def test_sessions_are_listed_and_an_admin_can_end_one(api: Any, appliance_app: Any) -> None:
    viewer = _as(appliance_app, Role.viewer)
    assert api.get("/api/v1/auth/me", headers=viewer).status_code == 200
    sessions = api.get("/api/v1/sessions").json()
    theirs = [s for s in sessions if s["username"] == "as-viewer"]
    assert len(theirs) == 1 and theirs[0]["kind"] == "session"
    assert {"id", "created_at", "expires_at", "revoked_at"} <= set(theirs[0])
    ended = api.delete(f"/api/v1/sessions/{theirs[0]['id']}")
    assert ended.status_code == 200 and ended.json()["revoked_at"]
    assert api.get("/api/v1/auth/me", headers=viewer).status_code == 401
    token = api.post("/api/v1/tokens", json={"username": "admin", "name": "t"}).json()
    assert api.delete(f"/api/v1/sessions/{token['id']}").status_code == 404


def test_a_password_change_through_the_api_logs_the_user_out(api: Any, appliance_app: Any) -> None:
    viewer = _as(appliance_app, Role.viewer)
    resp = api.patch("/api/v1/users/as-viewer", json={"password": "a-new-password"})
    assert resp.status_code == 200
    assert api.get("/api/v1/auth/me", headers=viewer).status_code == 401


def test_an_operator_cannot_run_pause_or_resume_the_backup_job(api: Any, appliance_app: Any) -> None:
    operator = _as(appliance_app, Role.operator)
    for verb in ("run", "pause", "resume"):
        for job in ("housekeeping.backup", "housekeeping.retention"):
            resp = api.post(f"/api/v1/jobs/{job}/{verb}", headers=operator)
            assert resp.status_code == 403, (job, verb, resp.text)
            assert resp.json()["error"]["detail"]["needed"] == "admin"
    assert api.post("/api/v1/jobs/housekeeping.checkpoint/run", headers=operator).status_code == 202
    jobs = {j["id"]: j for j in api.get("/api/v1/jobs").json()["items"]}
    assert jobs["housekeeping.backup"]["role"] == "admin"
    assert jobs["housekeeping.checkpoint"]["role"] == "operator"
    assert not (appliance_app.settings.home / "backups").exists()


def test_api_docs_are_served_without_a_token_by_default(appliance_app: Any) -> None:
    client = TestClient(create_app(appliance_app))
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert client.get(path).status_code == 200, path


def test_api_docs_can_be_switched_off(tmp_path: Path) -> None:
    app = build(make_settings(tmp_path / "home", api_docs=False))
    try:
        fastapi_app = create_app(app)
        client = TestClient(fastapi_app)
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 404, path
        assert fastapi_app.openapi()["paths"]  # the reference test still reads the schema
    finally:
        app.close()
