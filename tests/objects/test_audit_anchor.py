"""The audit anchor shared through the object store (scale-out): a host with no
``audit.head`` of its own holds the chain against the bucket's anchor, so a truncated log
is caught from any host; without a bucket, a new host on PostgreSQL starts from the
database's head instead of degrading."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from appliance.audit import Auditor
from appliance.audit_anchor import PREFIX, SharedAnchor, key_of
from appliance.config import Settings
from appliance.objects import ObjectStore, open_object_store
from appliance.store.db import Store, migrate
from tests.objects.conftest import BUCKET
from tests.store.conftest import pg_url  # noqa: F401  (fixture)


def _bucket(s3_settings: Callable[..., Settings], home: Path, prefix: str) -> ObjectStore:
    return open_object_store(s3_settings(home, prefix))


def test_the_shared_anchor_keeps_the_newest_head_under_one_key(
        objects: ObjectStore) -> None:
    shared = SharedAnchor(objects)
    for seq in range(1, 6):
        shared.publish(seq, f"{seq:064x}")
    assert shared.flush()
    shared.publish(3, f"{3:064x}")  # an older head (another thread's late callback): ignored
    shared.close()
    anchor, problem = SharedAnchor(objects).read()
    assert problem is None and anchor is not None
    assert (anchor.seq, anchor.hash) == (5, f"{5:064x}")
    assert [o.key for o in objects.list(PREFIX)] == [key_of(5)]


def test_a_corrupt_shared_anchor_is_a_finding_not_an_anchor(objects: ObjectStore) -> None:
    objects.put_bytes(key_of(7), json.dumps({"seq": 8, "hash": "0" * 64}).encode())
    anchor, problem = SharedAnchor(objects).read()
    assert anchor is None and problem is not None and "no valid seq" in problem
    objects.put_bytes(key_of(9), b"not json")
    anchor, problem = SharedAnchor(objects).read()
    assert anchor is None and problem is not None and "not a" in problem


@pytest.mark.postgres
def test_a_new_host_holds_the_chain_against_the_shared_anchor_and_sees_a_truncation(
        pg_url: str, tmp_path: Path, s3_settings: Callable[..., Settings]) -> None:  # noqa: F811
    migrate(tmp_path / "a.duckdb", tmp_path / "a.lock", pg_url)
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    first, second = (Store(tmp_path / f"{h}.duckdb", url=pg_url).open() for h in "ab")
    try:
        writer = Auditor(first, tmp_path / "a" / "audit.head",
                         shared=SharedAnchor(_bucket(s3_settings, tmp_path / "a", prefix)))
        (tmp_path / "a").mkdir()
        assert writer.check_anchor().ok
        for n in range(4):
            with first.write() as s:
                writer.record(s, "host-a", "thing.update", f"thing:{n}")
        assert writer.shared is not None and writer.shared.flush()

        # host b: its own home (no audit.head) and cache, the same database and bucket
        reader = Auditor(second, tmp_path / "b" / "audit.head",
                         shared=SharedAnchor(_bucket(s3_settings, tmp_path / "b", prefix)))
        verified = reader.verify()
        assert verified.ok, verified.problems
        assert verified.anchor is not None and verified.anchor.seq == 4
        check = reader.check_anchor(repair=False)
        assert check.ok and check.anchor is not None and check.anchor.seq == 4

        first.execute("DELETE FROM audit_events WHERE seq = 4")  # the newest event, gone
        check = reader.check_anchor(repair=False)
        assert not check.ok
        assert "deleted" in check.problems[0].problem
        assert not reader.verify().ok
    finally:
        first.close()
        second.close()


@pytest.mark.postgres
def test_a_new_host_on_postgresql_without_a_bucket_starts_from_the_databases_head(
        pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    migrate(tmp_path / "a.duckdb", tmp_path / "a.lock", pg_url)
    store = Store(tmp_path / "a.duckdb", url=pg_url).open()
    try:
        writer = Auditor(store, tmp_path / "a.head")
        for n in range(3):
            with store.write() as s:
                writer.record(s, "host-a", "thing.update", f"thing:{n}")
        newcomer = Auditor(store, tmp_path / "b.head")  # a new home: no audit.head
        check = newcomer.check_anchor()
        assert check.ok, check.problems
        assert json.loads((tmp_path / "b.head").read_text())["seq"] == 3  # anchored now
        assert newcomer.verify().ok
    finally:
        store.close()


def test_an_embedded_home_without_its_anchor_is_still_a_finding(tmp_path: Path) -> None:
    store = Store(tmp_path / "a.duckdb").open()
    try:
        auditor = Auditor(store, tmp_path / "audit.head")
        assert auditor.check_anchor().ok
        with store.write() as s:
            auditor.record(s, "me", "thing.update", "thing:1")
        (tmp_path / "audit.head").unlink()
        check = Auditor(store, tmp_path / "audit.head").check_anchor()
        assert not check.ok and "missing" in check.problems[0].problem
    finally:
        store.close()


def test_a_corrupt_shared_anchor_degrades_the_start_up_check(objects: ObjectStore,
                                                              tmp_path: Path) -> None:
    store = Store(tmp_path / "a.duckdb").open()
    try:
        auditor = Auditor(store, tmp_path / "audit.head", shared=SharedAnchor(objects))
        assert auditor.check_anchor().ok
        objects.put_bytes(key_of(10**6), b'{"seq": 1, "hash": "nope"}')
        check = Auditor(store, tmp_path / "audit.head",
                        shared=SharedAnchor(objects)).check_anchor()
        assert not check.ok and "shared audit anchor" in check.problems[0].problem
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.postgres
def test_two_serve_hosts_on_postgresql_and_s3_verify_the_chain_from_either(
        pg_url: str, tmp_path: Path, s3_endpoint: str) -> None:  # noqa: F811
    import threading

    from appliance_test_support import start_server


    prefix = f"t-{uuid.uuid4().hex[:12]}"
    env = {"APPLIANCE_STORE_URL": pg_url, "APPLIANCE_OBJECT_STORE": f"s3://{BUCKET}/{prefix}",
           "APPLIANCE_S3_ENDPOINT": s3_endpoint, "APPLIANCE_S3_ACCESS_KEY_ID": "test",
           "APPLIANCE_S3_SECRET_ACCESS_KEY": "test", "APPLIANCE_S3_REGION": "us-east-1"}
    servers: list[Any] = [None, None]
    barrier = threading.Barrier(2)

    def start(i: int) -> None:
        barrier.wait()
        servers[i] = start_server(tmp_path / f"h{i}" / "home", env=env)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert all(servers), "a host did not come up"
        clients = [s.client() for s in servers]
        clients[0].post("/users", json={"username": "ana", "password": "a-long-password-1",
                                        "role": "viewer"})
        time.sleep(1.0)  # the anchor is published in the background
        verified = [c.audit_verify() for c in clients]
        health = [c.health() for c in clients]
    finally:
        for s in servers:
            if s is not None:
                s.stop()
    assert [v["ok"] for v in verified] == [True, True], verified
    assert [h["status"] for h in health] == ["ok", "ok"], health
    newest = verified[0]["events"]
    assert [v["anchor"]["seq"] for v in verified] == [newest, newest]  # both: the bucket's
