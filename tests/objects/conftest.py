"""A real S3-compatible server on loopback (moto's), and object stores on it and on disk."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.config import Settings
from appliance.objects import LocalObjectStore, ObjectStore, open_object_store
from tests.support.appliance_test_support import make_settings

BUCKET = "appliance-test"


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto S3 server with the test bucket in it."""
    server_mod = pytest.importorskip(
        "moto.server", reason="moto[server] is not installed (it is in the `test` extra)")
    import pyarrow.fs as pafs

    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    fs = pafs.S3FileSystem(access_key="test", secret_key="test", region="us-east-1",
                           endpoint_override=f"{host}:{port}", scheme="http",
                           allow_bucket_creation=True)
    fs.create_dir(BUCKET)
    yield endpoint
    server.stop()


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
