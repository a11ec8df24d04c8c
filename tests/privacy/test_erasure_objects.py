"""Erasure in scale-out: dataset snapshots in an S3-compatible bucket (a real moto server)
are rewritten as new content-addressed objects, the old objects deleted from the bucket and
this host's cache; every host reads the version's new key, never the old bytes."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.fs as pafs
import pytest
from erasure_data import KEY, csv_of

from appliance.config import Settings
from appliance.domain.principal import Principal
from appliance.domain.privacy import Condition, ErasureRequest
from appliance.domain.roles import Role
from appliance.objects import open_object_store
from appliance.store import datasets as dq
from appliance.store.tables import DatasetVersionRow
from tests.objects.conftest import BUCKET, s3_settings  # noqa: F401  (fixture)

ADMIN = Principal(username="admin", role=Role.admin)


@pytest.fixture
def bucket_app(tmp_path: Path, s3_settings: Callable[..., Settings]  # noqa: F811
               ) -> Iterator[tuple[Any, str]]:
    from appliance.runtime import build

    prefix = f"t-{uuid.uuid4().hex[:12]}"
    app = build(s3_settings(tmp_path / "host1", prefix))
    yield app, prefix
    app.close()


def _add_version(app: Any, body: bytes, dataset: str = "customers") -> str:
    """A version whose snapshot is in the bucket, as the ingest leaves it (no parser child)."""
    sha = hashlib.sha256(body).hexdigest()
    key = f"datasets/{dataset}/{sha}.parquet"
    staging = Path(app.settings.home) / "staging" / f"{sha}.parquet"
    staging.parent.mkdir(parents=True, exist_ok=True)
    frame = pl.read_csv(io.BytesIO(body))
    frame.write_parquet(staging)
    app.datasets.objects.put_file(key, staging, move=True)
    with app.store.write() as s:
        ds = dq.get_or_create_dataset(s, dataset)
        s.add(DatasetVersionRow(
            dataset_id=ds.id, number=dq.next_version_number(s, ds.id), status="accepted",
            sha256=sha, size_bytes=len(body), rows=frame.height,
            columns=[{"name": c, "dtype": str(t)} for c, t in frame.schema.items()],
            parquet_path=key, source_file="a.csv", claim_id=sha[:32],
            report={"passed": True, "failures": []}))
    return key


def _bucket_rows_holding(endpoint: str, prefix: str, value: str) -> tuple[int, list[str]]:
    """(rows of every Parquet object under the prefix holding ``value``, the object keys)."""
    fs = pafs.S3FileSystem(access_key="test", secret_key="test", region="us-east-1",
                           endpoint_override=endpoint.removeprefix("http://"), scheme="http")
    infos = fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{prefix}/datasets", recursive=True,
                                               allow_not_found=True))
    found, keys = 0, []
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        keys.append(info.path.split(f"{prefix}/", 1)[1])
        with fs.open_input_stream(info.path) as fh:
            frame = pl.read_parquet(io.BytesIO(fh.read()))
        found += frame.filter(pl.col("customer_id") == value).height
    return found, sorted(keys)


def test_erase_in_s3_mode_rewrites_the_snapshot_in_the_bucket_and_deletes_the_old_object(
        bucket_app: tuple[Any, str], tmp_path: Path, s3_endpoint: str,
        s3_settings: Callable[..., Settings]) -> None:  # noqa: F811
    app, prefix = bucket_app
    old_key = _add_version(app, csv_of(["c1", KEY, "c3", "c4"]))
    clean_key = _add_version(app, csv_of(["c10", "c11"]))
    other = open_object_store(s3_settings(tmp_path / "host2", prefix))  # another host's cache
    stale = other.local_path(old_key)  # it read version 1 before the erasure
    assert stale.is_file()
    assert _bucket_rows_holding(s3_endpoint, prefix, KEY)[0] == 1

    report = app.erasure.erase(ErasureRequest(where=[Condition(column="customer_id",
                                                               value=KEY)]), by=ADMIN)

    assert [(v.version, v.rows_removed, v.new_version) for v in report.versions] == [(1, 1, 3)]
    found, keys = _bucket_rows_holding(s3_endpoint, prefix, KEY)
    assert found == 0  # no object in the bucket holds the subject's rows
    new_key = f"datasets/customers/{report.versions[0].new_sha256}.parquet"
    assert keys == sorted([clean_key, new_key])  # the old object is gone; the new one is there
    assert not app.datasets.objects.exists(old_key)
    rows = app.datasets.rows("customers", 1, limit=10)  # the old number reads the new object
    assert len(rows.rows) == 3 and all(KEY not in str(r) for r in rows.rows)
    # another host asks for the key the version names now: the new object, not its stale copy
    with app.store.read() as s:
        v1 = next(v for v in dq.list_versions(s, dq.list_datasets(s)[0].id) if v.number == 1)
    assert v1.parquet_path == new_key and v1.status == "erased"
    assert pl.read_parquet(other.local_path(v1.parquet_path)).height == 3
    assert any("cache/objects" in step for step in report.next_steps)


def test_dry_run_in_s3_mode_counts_the_bucket_and_changes_nothing(
        bucket_app: tuple[Any, str], s3_endpoint: str) -> None:
    app, prefix = bucket_app
    key = _add_version(app, csv_of(["c5", KEY, KEY, "c8"]))
    report = app.erasure.erase(ErasureRequest(where=[Condition(column="customer_id", value=KEY)],
                                              dry_run=True), by=ADMIN)
    assert [(v.version, v.rows_removed) for v in report.versions] == [(1, 2)]
    assert _bucket_rows_holding(s3_endpoint, prefix, KEY) == (2, [key])


def test_another_host_drops_its_cached_copy_of_an_erased_snapshot_at_start(
        bucket_app: tuple[Any, str], tmp_path: Path,
        s3_settings: Callable[..., Settings]) -> None:  # noqa: F811
    from appliance.artifacts import ArtifactStore
    from appliance.privacy.erasure import ErasureService

    app, prefix = bucket_app
    old_key = _add_version(app, csv_of(["c1", KEY, "c3"]))
    other = open_object_store(s3_settings(tmp_path / "host2", prefix))
    stale = other.local_path(old_key)  # host 2 read version 1 before the erasure
    app.erasure.erase(ErasureRequest(where=[Condition(column="customer_id", value=KEY)]),
                      by=ADMIN)
    assert stale.is_file()  # still on host 2's disk (never served: nothing names the key)

    # host 2 starts: its erasure service (same database, its own cache) forgets the copy
    second = ErasureService(app.store, app.auditor, ArtifactStore(tmp_path / "a", objects=other),
                            home=tmp_path / "host2", objects=other)
    assert second.forget_cached() == 1
    assert not stale.exists()
    assert second.forget_cached() == 0
    assert app.erasure.forget_cached() == 0  # the erasing host's copy went with the delete
