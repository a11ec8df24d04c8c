"""Fixtures of the console tests: an admin API client, a viewer, a fresh console."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from appliance.client import ApplianceClient
from appliance.errors import RemoteError

from .console_testing import new_console

VIEWER = ("ui_viewer", "viewer-password-1234")
APPROVER = ("ui_approver", "approver-password-1234")


def ensure_user(admin: ApplianceClient, username: str, password: str, role: str) -> tuple[str, str]:
    try:
        admin.post("/users", json={"username": username, "password": password, "role": role})
    except RemoteError as exc:
        if exc.status != 409:
            raise
    return username, password


@pytest.fixture(scope="module")
def admin_api(live_server: Any) -> Iterator[ApplianceClient]:
    client = ApplianceClient(live_server.url)
    client.login("admin", live_server.admin_password)
    yield client
    client.close()


@pytest.fixture(scope="module")
def viewer(admin_api: ApplianceClient) -> tuple[str, str]:
    return ensure_user(admin_api, *VIEWER, "viewer")


@pytest.fixture(scope="module")
def approver(admin_api: ApplianceClient) -> tuple[str, str]:
    return ensure_user(admin_api, *APPROVER, "approver")


@pytest.fixture
def console(live_server: Any, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("APPLIANCE_API_URL", live_server.url)
    return new_console()
