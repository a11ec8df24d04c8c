"""The appliance on an S3-compatible object store: ingest and the registry on one home,
read back from a second home (another host) through its own cache."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs
import pytest

from appliance.config import Settings
from appliance.domain.principal import SYSTEM
from appliance.objects import LocalObjectStore, open_object_store
from appliance.objects.s3 import S3ObjectStore
from tests.objects.conftest import BUCKET
from tests.support.appliance_test_support import tiny_onnx

CSV = "id,x,kind\n" + "".join(f"{i},{i * 1.5},{'ab'[i % 2]}\n" for i in range(60))


def _in_bucket(endpoint: str, key: str) -> bytes:
    host = endpoint.removeprefix("http://")
    fs = pafs.S3FileSystem(access_key="test", secret_key="test", region="us-east-1",
                           endpoint_override=host, scheme="http")
    with fs.open_input_stream(f"{BUCKET}/{key}") as fh:
        return bytes(fh.read())


@pytest.mark.slow  # an ingest: the parser child's start dominates
def test_an_ingest_in_s3_mode_puts_the_snapshot_in_the_bucket_for_every_host(
        tmp_path: Path, s3_settings: Callable[..., Settings], s3_endpoint: str) -> None:
    from appliance.runtime import build

    prefix = f"t-{uuid.uuid4().hex[:12]}"
    app = build(s3_settings(tmp_path / "host1", prefix))
    try:
        out = app.ingest.ingest_stream(io.BytesIO(CSV.encode()), file_name="a.csv",
                                       dataset="d", who=SYSTEM)
        assert (str(out.outcome), out.version) == ("accepted", 1)
        key = f"datasets/d/{out.sha256}.parquet"
        assert not (tmp_path / "host1" / key).exists()  # not in the home: in the bucket
        in_bucket = _in_bucket(s3_endpoint, f"{prefix}/{key}")
        assert pl.read_parquet(io.BytesIO(in_bucket)).height == 60
        rows = app.datasets.rows("d", 1, limit=3)
        assert rows.total_rows == 60 and len(rows.rows) == 3
    finally:
        app.close()

    # Another host: its own home and cache, the same bucket (its metadata a copy here; in
    # scale-out the shared PostgreSQL).
    other = s3_settings(tmp_path / "host2", prefix)
    objects = open_object_store(other)
    assert isinstance(objects, S3ObjectStore)
    path = objects.local_path(key)
    assert path.is_relative_to(tmp_path / "host2" / "cache" / "objects")
    assert path.read_bytes() == in_bucket
    assert pl.read_parquet(path)["x"].sum() == sum(i * 1.5 for i in range(60))


def test_an_onnx_artifact_round_trips_through_the_bucket(
        tmp_path: Path, s3_settings: Callable[..., Settings], s3_endpoint: str) -> None:
    from appliance.runtime import build

    prefix = f"t-{uuid.uuid4().hex[:12]}"
    onnx = tiny_onnx(2.0)
    app = build(s3_settings(tmp_path / "host1", prefix))
    try:
        version = app.registry.register(model="m", onnx_bytes=onnx, flavor="onnx", by=SYSTEM)
        sha = version.onnx_sha256
        assert _in_bucket(s3_endpoint, f"{prefix}/artifacts/{sha[:2]}/{sha[2:4]}/{sha}") == onnx
        assert not (tmp_path / "host1" / "artifacts" / sha[:2]).exists()
        assert app.registry.onnx_bytes("m", version.number) == onnx
    finally:
        app.close()
    from appliance.artifacts import ArtifactStore

    other = ArtifactStore(tmp_path / "host2" / "artifacts",
                          objects=open_object_store(s3_settings(tmp_path / "host2", prefix)))
    assert other.read_bytes(sha) == onnx and other.verify(sha)


def test_a_corrupt_artifact_in_the_bucket_is_refused_by_the_reader(
        tmp_path: Path, s3_settings: Callable[..., Settings], s3_endpoint: str) -> None:
    from appliance.artifacts import ArtifactStore
    from appliance.errors import StoreUnavailable

    prefix = f"t-{uuid.uuid4().hex[:12]}"
    sha = "0" * 64
    host = s3_endpoint.removeprefix("http://")
    fs = pafs.S3FileSystem(access_key="test", secret_key="test", region="us-east-1",
                           endpoint_override=host, scheme="http")
    with fs.open_output_stream(f"{BUCKET}/{prefix}/artifacts/00/00/{sha}") as out:
        out.write(b"not the bytes of that hash")  # damaged in the bucket, behind our back
    fresh = open_object_store(s3_settings(tmp_path / "h2", prefix))  # empty cache
    store = ArtifactStore(tmp_path / "h2" / "artifacts", objects=fresh)
    assert store.verify(sha) is False
    try:
        store.read_bytes(sha)
    except StoreUnavailable as exc:
        assert "corrupt" in str(exc)
    else:
        raise AssertionError("a corrupt artifact was read")


@pytest.mark.slow  # an ingest: the parser child's start dominates
def test_the_default_object_store_is_the_home_at_todays_paths(tmp_path: Path) -> None:
    from appliance.runtime import build
    from tests.support.appliance_test_support import make_settings

    app = build(make_settings(tmp_path / "home"))
    try:
        assert isinstance(app.datasets.objects, LocalObjectStore)
        out = app.ingest.ingest_stream(io.BytesIO(CSV.encode()), file_name="a.csv",
                                       dataset="d", who=SYSTEM)
        assert (tmp_path / "home" / "datasets" / "d" / f"{out.sha256}.parquet").is_file()
        v = app.registry.register(model="m", onnx_bytes=tiny_onnx(), flavor="onnx", by=SYSTEM)
        sha = v.onnx_sha256
        assert (tmp_path / "home" / "artifacts" / sha[:2] / sha[2:4] / sha).is_file()
        assert not (tmp_path / "home" / "cache").exists()
    finally:
        app.close()


def test_the_cache_stays_within_its_bound_dropping_the_least_recently_used(
        tmp_path: Path, s3_settings: Callable[..., Settings]) -> None:
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    writer = open_object_store(s3_settings(tmp_path / "w", prefix))
    for i in range(6):
        writer.put_bytes(f"blobs/{i}", bytes([i]) * (5 * 1024 * 1024))
    reader = open_object_store(s3_settings(tmp_path / "r", prefix, object_cache_mb=16))
    assert isinstance(reader, S3ObjectStore)
    for i in range(6):
        assert reader.get_bytes(f"blobs/{i}")[:1] == bytes([i])
    assert reader.cache.size() <= 16 * 1024 * 1024
    assert reader.cache.get("blobs/5") is not None  # the newest stays
    assert reader.cache.get("blobs/0") is None      # the oldest went
    assert reader.get_bytes("blobs/0")[:1] == b"\x00"  # and is fetched again on demand


@pytest.mark.slow  # an ingest: the parser child's start dominates
def test_a_backup_in_s3_mode_counts_the_bucket_and_is_put_there_too(
        tmp_path: Path, s3_settings: Callable[..., Settings], s3_endpoint: str) -> None:
    import json

    from appliance.runtime import build

    prefix = f"t-{uuid.uuid4().hex[:12]}"
    app = build(s3_settings(tmp_path / "host1", prefix))
    try:
        app.ingest.ingest_stream(io.BytesIO(CSV.encode()), file_name="a.csv", dataset="d",
                                 who=SYSTEM)
        app.registry.register(model="m", onnx_bytes=tiny_onnx(), flavor="onnx", by=SYSTEM)
        made = app.backup.create_in_home(by=SYSTEM)
    finally:
        app.close()
    folder = Path(made.path)
    manifest = json.loads((folder / "manifest.json").read_bytes())
    assert manifest["missing_references"] == []  # the snapshot and the model are in the bucket
    assert _in_bucket(s3_endpoint, f"{prefix}/backups/{folder.name}/manifest.json") == (
        folder / "manifest.json").read_bytes()
