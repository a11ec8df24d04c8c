"""A real S3-compatible server on loopback for tests: moto's (``moto[server]``, the test
extra), with one bucket in it. One per test session (the ``s3_endpoint`` fixtures)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

BUCKET = "appliance-test"
ACCESS = {"access_key": "test", "secret_key": "test", "region": "us-east-1"}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto S3 server holding the bucket ``BUCKET``.
    The caller skips first when ``moto.server`` cannot be imported."""
    import moto.server as server_mod
    import pyarrow.fs as pafs

    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        fs = pafs.S3FileSystem(**ACCESS, endpoint_override=f"{host}:{port}", scheme="http",
                               allow_bucket_creation=True)
        fs.create_dir(BUCKET)
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def host_env(endpoint: str, prefix: str) -> dict[str, str]:
    """The settings of an ``appliance serve`` whose objects live in the bucket under
    ``prefix`` (docs/scale-out.md, Object store)."""
    return {"APPLIANCE_OBJECT_STORE": f"s3://{BUCKET}/{prefix}",
            "APPLIANCE_S3_ENDPOINT": endpoint, "APPLIANCE_S3_ACCESS_KEY_ID": "test",
            "APPLIANCE_S3_SECRET_ACCESS_KEY": "test", "APPLIANCE_S3_REGION": "us-east-1"}
