"""`appliance users sessions|revoke|token` in local mode (no server: the CLI opens the store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from appliance_test_support import make_settings
from typer.testing import CliRunner, Result

from appliance.cli import app as cli
from appliance.errors import Unauthenticated
from appliance.runtime import build


def _invoke(home: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, [*args, "--home", str(home)],
                              env={"APPLIANCE_ADMIN_PASSWORD": "admin-password-for-tests"})


def _home_with_a_session(tmp_path: Path) -> tuple[Path, str, str]:
    settings = make_settings(tmp_path / "home")
    app = build(settings)
    try:
        app.auth.add_user("gus", "password123", "viewer", by="test")
        secret = app.auth.login("gus", "password123").access_token
        session_id = str(app.auth.authenticate(secret).token_id)
    finally:
        app.close()
    return settings.home, secret, session_id


def test_users_sessions_lists_live_sessions_as_a_table_or_json(tmp_path: Path) -> None:
    home, _, session_id = _home_with_a_session(tmp_path)
    table = _invoke(home, "users", "sessions")
    assert table.exit_code == 0, table.output
    assert "gus" in table.output and "username" in table.output
    rows = json.loads(_invoke(home, "users", "sessions", "--json").output)
    assert [(r["id"], r["username"], r["kind"]) for r in rows] == [(session_id, "gus", "session")]


def test_users_revoke_ends_a_session(tmp_path: Path) -> None:
    home, secret, session_id = _home_with_a_session(tmp_path)
    done = _invoke(home, "users", "revoke", session_id, "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)["revoked_at"]
    assert json.loads(_invoke(home, "users", "sessions", "--json").output) == []
    app = build(make_settings(home))
    try:
        with pytest.raises(Unauthenticated):
            app.auth.authenticate(secret)
    finally:
        app.close()
    missing = _invoke(home, "users", "revoke", "not-a-token-id")
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_users_token_refuses_a_lifetime_out_of_range(tmp_path: Path) -> None:
    home, _, _ = _home_with_a_session(tmp_path)
    for days in ("0", "-1", "1e9", "nan"):
        out = _invoke(home, "users", "token", "gus", "--expires-days", days)
        assert out.exit_code == 2 and "expires_days" in out.output, (days, out.output)
    ok = _invoke(home, "users", "token", "gus", "--expires-days", "30", "--json")
    assert ok.exit_code == 0 and json.loads(ok.output)["expires_at"]
