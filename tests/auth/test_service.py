"""Users, passwords and tokens: hashed at rest, expiring, revocable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from appliance.domain.principal import SYSTEM
from appliance.domain.roles import Role
from appliance.errors import Conflict, InvalidInput, InvalidName, Unauthenticated
from appliance.runtime import build


def test_login_admin_created_from_the_environment(appliance_app: Any) -> None:
    password = appliance_app.settings.admin_password.get_secret_value()
    out = appliance_app.auth.login("admin", password)
    assert out["token_type"] == "bearer" and out["role"] == "admin"
    assert appliance_app.auth.authenticate(out["access_token"]).role is Role.admin


def test_login_wrong_password_is_refused(appliance_app: Any) -> None:
    with pytest.raises(Unauthenticated):
        appliance_app.auth.login("admin", "not-the-password")
    with pytest.raises(Unauthenticated):
        appliance_app.auth.login("nobody", "whatever-password")


def test_passwords_and_tokens_are_stored_only_as_hashes(appliance_app: Any) -> None:
    token = appliance_app.auth.create_token("admin", "ci", by=SYSTEM)["token"]
    dump = str(appliance_app.store.execute("SELECT * FROM users")) + str(
        appliance_app.store.execute("SELECT * FROM tokens")
    )
    password = appliance_app.settings.admin_password.get_secret_value()
    assert password not in dump and token not in dump
    assert "$argon2" in dump


def test_revoked_token_is_refused_at_once(appliance_app: Any) -> None:
    made = appliance_app.auth.create_token("admin", "ci", by=SYSTEM)
    assert appliance_app.auth.authenticate(made["token"]).username == "admin"
    appliance_app.auth.revoke_token(made["id"], by=SYSTEM)
    with pytest.raises(Unauthenticated):
        appliance_app.auth.authenticate(made["token"])


def test_expired_token_is_refused(appliance_app: Any) -> None:
    made = appliance_app.auth.create_token("admin", "short", by=SYSTEM, expires_days=1e-9)
    with pytest.raises(Unauthenticated, match="expired"):
        appliance_app.auth.authenticate(made["token"])


def test_add_user_refuses_bad_names_roles_and_duplicates(appliance_app: Any) -> None:
    with pytest.raises(InvalidName):
        appliance_app.auth.add_user("../etc", "password123", "viewer", by=SYSTEM)
    with pytest.raises(InvalidInput):
        appliance_app.auth.add_user("bob", "password123", "root", by=SYSTEM)
    with pytest.raises(InvalidInput):
        appliance_app.auth.add_user("bob", "short", "viewer", by=SYSTEM)
    with pytest.raises(Conflict):
        appliance_app.auth.add_user("admin", "password123", "viewer", by=SYSTEM)


def test_disabled_user_cannot_use_old_tokens(appliance_app: Any) -> None:
    appliance_app.auth.add_user("carol", "password123", "operator", by=SYSTEM)
    token = appliance_app.auth.login("carol", "password123")["access_token"]
    appliance_app.auth.update_user("carol", by=SYSTEM, disabled=True)
    with pytest.raises(Unauthenticated):
        appliance_app.auth.authenticate(token)


def test_first_start_without_password_mints_a_one_time_bootstrap_token(
    tmp_path: Path, settings_for: Any
) -> None:
    app = build(settings_for(tmp_path / "home", admin_password=None))
    try:
        assert app.bootstrap_token is None  # only the serve process mints one, at start
        app.start()
        token = app.bootstrap_token
        assert token and app.auth.authenticate(token).role is Role.admin
        app.auth.add_user("admin", "password123", "admin", by=app.auth.authenticate(token))
        with pytest.raises(Unauthenticated):
            app.auth.authenticate(token)  # revoked once a user exists
    finally:
        app.close()
