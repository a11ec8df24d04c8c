"""Object stores on a real S3-compatible server on loopback (moto's: tests/conftest.py's
``s3_endpoint``) and on disk."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.config import Settings
from appliance.objects import LocalObjectStore, ObjectStore, open_object_store
from tests.support.appliance_test_support import make_settings
from tests.support.s3_testing import BUCKET


@pytest.fixture
def s3_settings(s3_endpoint: str) -> Callable[..., Settings]:
    """Settings for a home whose objects live in the bucket under ``prefix``."""

    def make(home: Path, prefix: str, **overrides: Any) -> Settings:
        return make_settings(home, object_store=f"s3://{BUCKET}/{prefix}",
                             s3_endpoint=s3_endpoint, s3_access_key_id="test",
                             s3_secret_access_key="test", s3_region="us-east-1", **overrides)

    return make


@pytest.fixture(params=["local", "s3"])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """The same contract on both stores: the home folder, and a fresh prefix of the bucket."""
    if request.param == "local":
        return LocalObjectStore(tmp_path / "home")
    make = request.getfixturevalue("s3_settings")
    return open_object_store(make(tmp_path / "home", f"t-{uuid.uuid4().hex[:12]}"))
