"""Fixtures of the compatibility-surface tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from appliance_test_support import logged_in, make_settings
from fastapi.testclient import TestClient
from served_model import serve_churn


@pytest.fixture(scope="module")
def churn_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """The app in-process, logged in as admin, with the churn model as champion (one per
    test module)."""
    from appliance.api.app import create_app
    from appliance.runtime import build

    app = build(make_settings(tmp_path_factory.mktemp("compat") / "home"))
    app.serving.log.start()
    try:
        with TestClient(create_app(app)) as client:
            logged_in(client)
            serve_churn(client)
            yield client
    finally:
        app.close()
