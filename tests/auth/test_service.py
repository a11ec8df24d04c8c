"""Users, passwords and tokens: hashed at rest, expiring, revocable."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from appliance.domain.principal import SYSTEM
from appliance.domain.roles import Role
from appliance.errors import Conflict, InvalidInput, InvalidName, NotFound, Unauthenticated
from appliance.runtime import build


def test_login_admin_created_from_the_environment(appliance_app: Any) -> None:
    password = appliance_app.settings.admin_password.get_secret_value()
    out = appliance_app.auth.login("admin", password)
    assert out.token_type == "bearer" and out.role == "admin"
    assert appliance_app.auth.authenticate(out.access_token).role is Role.admin


def test_login_wrong_password_is_refused(appliance_app: Any) -> None:
    with pytest.raises(Unauthenticated):
        appliance_app.auth.login("admin", "not-the-password")
    with pytest.raises(Unauthenticated):
        appliance_app.auth.login("nobody", "whatever-password")


def test_passwords_and_tokens_are_stored_only_as_hashes(appliance_app: Any) -> None:
    token = appliance_app.auth.create_token("admin", "ci", by=SYSTEM).token
    dump = str(appliance_app.store.execute("SELECT * FROM users")) + str(
        appliance_app.store.execute("SELECT * FROM tokens")
    )
    password = appliance_app.settings.admin_password.get_secret_value()
    assert password not in dump and token not in dump
    assert "$argon2" in dump


def test_revoked_token_is_refused_at_once(appliance_app: Any) -> None:
    made = appliance_app.auth.create_token("admin", "ci", by=SYSTEM)
    assert appliance_app.auth.authenticate(made.token).username == "admin"
    appliance_app.auth.revoke_token(made.id, by=SYSTEM)
    with pytest.raises(Unauthenticated):
        appliance_app.auth.authenticate(made.token)


def test_expired_token_is_refused(appliance_app: Any) -> None:
    made = appliance_app.auth.create_token("admin", "short", by=SYSTEM, expires_days=1e-9)
    with pytest.raises(Unauthenticated, match="expired"):
        appliance_app.auth.authenticate(made.token)


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
    token = appliance_app.auth.login("carol", "password123").access_token
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


# -- the last admin -----------------------------------------------------------------------

def test_demoting_the_last_admin_is_refused(appliance_app: Any) -> None:
    admin = appliance_app.auth.authenticate(_login(appliance_app, "admin"))
    with pytest.raises(Conflict, match="last enabled admin"):
        appliance_app.auth.update_user("admin", by=admin, role="viewer")
    with pytest.raises(Conflict, match="last enabled admin"):
        appliance_app.auth.update_user("admin", by=SYSTEM, disabled=True)
    first = appliance_app.auth.list_users()[0]
    assert (first.role, first.disabled) == ("admin", False)


def test_an_admin_can_step_down_once_another_admin_exists(appliance_app: Any) -> None:
    appliance_app.auth.add_user("second", "password123", "admin", by=SYSTEM)
    appliance_app.auth.update_user("second", by=SYSTEM, disabled=True)  # disabled: not counted
    with pytest.raises(Conflict, match="last enabled admin"):
        appliance_app.auth.update_user("admin", by=SYSTEM, role="operator")
    appliance_app.auth.update_user("second", by=SYSTEM, disabled=False)
    assert appliance_app.auth.update_user("admin", by=SYSTEM, role="operator").role == "operator"
    with pytest.raises(Conflict, match="last enabled admin"):
        appliance_app.auth.update_user("second", by=SYSTEM, role="approver")


# -- sessions end when a password or role changes -----------------------------------------

def test_changing_a_password_ends_the_users_sessions(appliance_app: Any) -> None:
    appliance_app.auth.add_user("carol", "password123", "operator", by=SYSTEM)
    stolen = _login(appliance_app, "carol")
    out = appliance_app.auth.update_user("carol", by=SYSTEM, password="new-password-1")
    assert out.role == "operator"
    with pytest.raises(Unauthenticated):
        appliance_app.auth.authenticate(stolen)
    event = appliance_app.auditor.recent(limit=1)[0]
    assert event.action == "user.update" and event.after["sessions_ended"] == 1
    assert _login(appliance_app, "carol", "new-password-1")


def test_changing_a_role_ends_sessions_and_tokens_get_the_new_role_at_once(appliance_app: Any) -> None:
    appliance_app.auth.add_user("dave", "password123", "approver", by=SYSTEM)
    session = _login(appliance_app, "dave")
    token = appliance_app.auth.create_token("dave", "ci", by=SYSTEM).token
    assert appliance_app.auth.authenticate(token).role is Role.approver  # now cached
    appliance_app.auth.update_user("dave", by=SYSTEM, role="viewer")
    with pytest.raises(Unauthenticated):
        appliance_app.auth.authenticate(session)
    assert appliance_app.auth.authenticate(token).role is Role.viewer


def test_disabling_a_user_ends_sessions_that_would_revive_on_enable(appliance_app: Any) -> None:
    appliance_app.auth.add_user("erin", "password123", "viewer", by=SYSTEM)
    session = _login(appliance_app, "erin")
    appliance_app.auth.update_user("erin", by=SYSTEM, disabled=True)
    appliance_app.auth.update_user("erin", by=SYSTEM, disabled=False)
    with pytest.raises(Unauthenticated):
        appliance_app.auth.authenticate(session)


def test_changing_your_own_password_keeps_the_session_you_used(appliance_app: Any) -> None:
    mine, other = _login(appliance_app, "admin"), _login(appliance_app, "admin")
    me = appliance_app.auth.authenticate(mine)
    appliance_app.auth.update_user("admin", by=me, password="another-password")
    assert appliance_app.auth.authenticate(mine).username == "admin"
    with pytest.raises(Unauthenticated):
        appliance_app.auth.authenticate(other)


def test_list_sessions_shows_live_sessions_and_revoking_one_ends_it(appliance_app: Any) -> None:
    appliance_app.auth.add_user("fay", "password123", "viewer", by=SYSTEM)
    session = _login(appliance_app, "fay")
    appliance_app.auth.create_token("fay", "ci", by=SYSTEM)  # an API token is not a session
    live = [s for s in appliance_app.auth.list_sessions() if s.username == "fay"]
    assert len(live) == 1 and live[0].kind == "session" and live[0].revoked_at is None
    appliance_app.auth.revoke_token(live[0].id, by=SYSTEM, kind="session")
    with pytest.raises(Unauthenticated):
        appliance_app.auth.authenticate(session)
    assert not [s for s in appliance_app.auth.list_sessions() if s.username == "fay"]


def test_revoking_an_api_token_as_a_session_is_not_found(appliance_app: Any) -> None:
    made = appliance_app.auth.create_token("admin", "ci", by=SYSTEM)
    with pytest.raises(NotFound, match="session"):
        appliance_app.auth.revoke_token(made.id, by=SYSTEM, kind="session")
    assert appliance_app.auth.authenticate(made.token).username == "admin"


# -- token lifetimes ------------------------------------------------------------------------

@pytest.mark.parametrize("days", [0, -1, 1e9, 3650.5, float("nan"), float("inf"), True])
def test_create_token_refuses_a_lifetime_out_of_range(appliance_app: Any, days: Any) -> None:
    with pytest.raises(InvalidInput, match="expires_days"):
        appliance_app.auth.create_token("admin", "bad", by=SYSTEM, expires_days=days)
    assert not [t for t in appliance_app.auth.list_tokens() if t.name == "bad"]


def test_create_token_without_a_lifetime_never_expires_and_3650_days_is_allowed(
    appliance_app: Any,
) -> None:
    assert appliance_app.auth.create_token("admin", "forever", by=SYSTEM).expires_at is None
    longest = appliance_app.auth.create_token("admin", "long", by=SYSTEM, expires_days=3650)
    lifetime = dt.datetime.fromisoformat(longest.expires_at) - dt.datetime.fromisoformat(
        longest.created_at)
    assert abs(lifetime - dt.timedelta(days=3650)) < dt.timedelta(minutes=1)


def _login(app: Any, username: str, password: str | None = None) -> str:
    if password is None:
        password = (app.settings.admin_password.get_secret_value() if username == "admin"
                    else "password123")
    return str(app.auth.login(username, password).access_token)


def test_authenticating_records_when_a_token_was_last_used(appliance_app: Any) -> None:
    made = appliance_app.auth.create_token("admin", "ci", by=SYSTEM)
    assert _last_used(appliance_app, made.id) is None
    before = dt.datetime.now(dt.UTC)
    appliance_app.auth.authenticate(made.token)
    first = _last_used(appliance_app, made.id)
    assert first is not None and dt.datetime.fromisoformat(first) >= before - dt.timedelta(seconds=1)


def test_last_used_is_written_at_most_once_a_minute_per_token(appliance_app: Any) -> None:
    made = appliance_app.auth.create_token("admin", "ci", by=SYSTEM)
    appliance_app.auth.authenticate(made.token)
    first = _last_used(appliance_app, made.id)
    appliance_app.auth._clear_cache()  # a cache miss reads the token again: still no write
    appliance_app.auth.authenticate(made.token)
    assert _last_used(appliance_app, made.id) == first
    old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    appliance_app.store.execute("UPDATE tokens SET last_used_at = :t WHERE name = 'ci'", {"t": old})
    appliance_app.auth._clear_cache()
    appliance_app.auth.authenticate(made.token)
    assert dt.datetime.fromisoformat(_last_used(appliance_app, made.id) or "") > old


def _last_used(app: Any, token_id: str) -> str | None:
    (token,) = [t for t in app.auth.list_tokens() if t.id == token_id]
    out: str | None = token.last_used_at
    return out
