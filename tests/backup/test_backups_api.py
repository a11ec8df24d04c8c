"""POST/GET /api/v1/backups: the server writes into its own home; admins only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.backup import verify_backup
from appliance.domain.principal import SYSTEM
from appliance.domain.roles import Role


def test_post_backups_writes_into_the_home_and_get_lists_it(api: Any, appliance_app: Any) -> None:
    made = api.post("/api/v1/backups")
    assert made.status_code == 201, made.text
    out = made.json()
    path = Path(out["path"])
    assert path.parent == (appliance_app.settings.home / "backups").resolve()
    assert out["complete"] and out["files"] > 0 and out["counts"]["users"] == 1
    verify_backup(path)
    second = api.post("/api/v1/backups").json()
    listed = api.get("/api/v1/backups").json()
    assert [b["name"] for b in listed] == [second["name"], out["name"]]  # newest first
    actions = [e["action"] for e in api.get("/api/v1/audit").json()]
    assert actions.count("backup.create") == 2


def test_post_backups_ignores_any_path_in_the_request(api: Any, appliance_app: Any,
                                                      tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    resp = api.post("/api/v1/backups", json={"path": str(target)}, params={"path": str(target)})
    assert resp.status_code == 201
    assert not target.exists()
    assert Path(resp.json()["path"]).is_relative_to(appliance_app.settings.home.resolve())


def test_backups_are_refused_to_anyone_below_admin(api: Any, appliance_app: Any) -> None:
    for role in (Role.viewer, Role.operator, Role.approver):
        appliance_app.auth.add_user(f"u-{role.value}", "password123", role, by=SYSTEM)
        token = appliance_app.auth.login(f"u-{role.value}", "password123").access_token
        headers = {"Authorization": f"Bearer {token}"}
        assert api.post("/api/v1/backups", headers=headers).status_code == 403
        assert api.get("/api/v1/backups", headers=headers).status_code == 403
    anonymous = {"Authorization": ""}
    assert api.post("/api/v1/backups", headers=anonymous).status_code == 401
    assert not (appliance_app.settings.home / "backups").exists()
