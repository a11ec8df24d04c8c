"""Failed logins are audited (who, from where, never the password) and slowed down
per username and per client address; the normal login stays one argon2 check."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import ADMIN_PASSWORD, make_settings
from fastapi.testclient import TestClient

from appliance.api.app import create_app
from appliance.auth.throttle import LoginThrottle
from appliance.domain.principal import SYSTEM
from appliance.errors import Throttled, Unauthenticated
from appliance.runtime import build


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def strict_app(tmp_path: Path) -> Iterator[Any]:
    """Three free failures per user, five per address, waits capped at 60 s."""
    app = build(make_settings(tmp_path / "home", login_failures_per_user=3,
                              login_failures_per_address=5, login_backoff_max_seconds=60))
    app.auth.add_user("bob", "password123", "viewer", by=SYSTEM)
    yield app
    app.close()


def _fail(app: Any, username: str, client: str = "10.0.0.7") -> None:
    with pytest.raises(Unauthenticated):
        app.auth.login(username, "wrong-password", client=client)


def test_a_failed_login_is_audited_with_name_client_and_reason_never_the_password(
    strict_app: Any,
) -> None:
    _fail(strict_app, "bob")
    _fail(strict_app, "nobody", client="10.0.0.8")
    events = strict_app.auditor.recent(limit=2)
    assert [e.action for e in events] == ["auth.login_failed"] * 2
    nobody, bob = events
    assert bob.target == "user:bob" and bob.actor == "anonymous"
    assert bob.after == {"username": "bob", "client": "10.0.0.7", "reason": "wrong password",
                            "failures": 1}
    assert nobody.after["reason"] == "unknown user"
    assert "wrong-password" not in str(strict_app.store.execute("SELECT * FROM audit_events"))
    assert strict_app.auditor.verify().ok


def test_a_hostile_username_is_audited_cut_short_and_never_as_a_target(strict_app: Any) -> None:
    _fail(strict_app, "../../etc/passwd" + "x" * 500)
    event = strict_app.auditor.recent(limit=1)[0]
    assert event.target == "user:?" and len(event.after["username"]) == 64


def test_repeated_failures_for_one_user_are_throttled_even_with_the_right_password(
    strict_app: Any,
) -> None:
    for i in range(3):
        _fail(strict_app, "bob", client=f"10.0.1.{i}")  # three addresses: the user's limit
    with pytest.raises(Throttled) as caught:
        strict_app.auth.login("bob", "password123", client="10.0.2.1")
    assert caught.value.retry_after >= 1
    audited = [e for e in strict_app.auditor.recent(limit=10) if e.action == "auth.login_failed"]
    assert len(audited) == 3  # the refusal during the back-off is logged, not audited
    assert strict_app.auth.login("admin", ADMIN_PASSWORD, client="10.0.2.1")  # others unaffected


def test_repeated_failures_from_one_address_are_throttled_for_every_user(strict_app: Any) -> None:
    for i in range(5):
        _fail(strict_app, f"guess{i}", client="203.0.113.9")
    with pytest.raises(Throttled):
        strict_app.auth.login("admin", ADMIN_PASSWORD, client="203.0.113.9")
    assert strict_app.auth.login("admin", ADMIN_PASSWORD, client="203.0.113.10")


def test_loopback_is_not_throttled_as_an_address_only_per_user(strict_app: Any) -> None:
    for i in range(8):  # the console and a local proxy speak for many people from 127.0.0.1
        _fail(strict_app, f"guess{i}", client="127.0.0.1")
    assert strict_app.auth.login("admin", ADMIN_PASSWORD, client="127.0.0.1")
    assert strict_app.auth.login("admin", ADMIN_PASSWORD, client="::1")


def test_a_successful_login_forgets_the_users_failures(strict_app: Any) -> None:
    _fail(strict_app, "bob")
    _fail(strict_app, "bob")
    assert strict_app.auth.login("bob", "password123", client="10.0.0.7")
    _fail(strict_app, "bob")
    _fail(strict_app, "bob")
    assert strict_app.auth.login("bob", "password123", client="10.0.0.7")  # not throttled


def test_the_login_route_answers_429_with_retry_after(strict_app: Any) -> None:
    client = TestClient(create_app(strict_app))
    for _ in range(3):
        resp = client.post("/api/v1/auth/token", json={"username": "bob", "password": "nope-nope"})
        assert resp.status_code == 401
    resp = client.post("/api/v1/auth/token", json={"username": "bob", "password": "password123"})
    assert resp.status_code == 429, resp.text
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.json()["error"]["type"] == "throttled"
    assert strict_app.auditor.recent(limit=1)[0].after["client"] == "testclient"


def test_the_login_route_refuses_a_megabyte_password_before_hashing_it(strict_app: Any) -> None:
    client = TestClient(create_app(strict_app))
    resp = client.post("/api/v1/auth/token", json={"username": "bob", "password": "x" * 2**20})
    assert resp.status_code == 400


def test_back_off_doubles_up_to_the_cap_and_a_quiet_window_forgets() -> None:
    clock = Clock()
    throttle = LoginThrottle(max_delay=8, window=900, clock=clock)
    keys = [("user:bob", 2)]
    waits = []
    for _ in range(7):
        wait = throttle.attempt(keys)
        if wait:
            clock.now += wait
            assert throttle.attempt(keys) == 0.0
        waits.append(wait)
    assert waits == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    clock.now += 901
    assert throttle.attempt(keys) == 0.0 and throttle.failures("user:bob") == 1


def test_parallel_attempts_count_before_their_password_is_checked() -> None:
    throttle = LoginThrottle(max_delay=60, clock=Clock())
    keys = [("user:bob", 3)]
    started = [throttle.attempt(keys) for _ in range(5)]  # none has finished yet
    assert started[:3] == [0.0, 0.0, 0.0] and all(w > 0 for w in started[3:])


def test_the_throttle_keeps_a_bounded_number_of_keys() -> None:
    from appliance.auth import throttle as module

    t = LoginThrottle(max_delay=60, clock=Clock())
    for i in range(module._MAX_KEYS + 100):
        t.attempt([(f"user:n{i}", 5)])
    assert len(t._keys) == module._MAX_KEYS
