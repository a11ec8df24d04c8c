"""The object store's contract, on the home folder and on a real S3-compatible server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.objects import ObjectInfo, ObjectStore, check_key

HOSTILE_KEYS = [
    "../escape", "a/../../b", "/etc/passwd", "a//b", "a/./b", ".", "..", "", "a/",
    "tab\there", "nl\nx", "nul\x00x", "del\x7fx", "back\\slash", "..\\..\\win",
    "é/unicode", "x" * 1100, "-leading-dash/ok",
]


def test_put_then_get_returns_the_bytes_and_their_sha256(objects: ObjectStore) -> None:
    stored = objects.put_bytes("datasets/d/a.parquet", b"hello")
    assert stored.sha256 == hashlib.sha256(b"hello").hexdigest()
    assert (stored.size, stored.written) == (5, True)
    assert objects.get_bytes("datasets/d/a.parquet") == b"hello"
    with objects.open("datasets/d/a.parquet") as fh:
        assert fh.read() == b"hello"
    assert objects.local_path("datasets/d/a.parquet").read_bytes() == b"hello"
    assert objects.exists("datasets/d/a.parquet")
    assert not objects.exists("datasets/d/b.parquet")


def test_put_file_moves_or_copies_the_source(objects: ObjectStore, tmp_path: Path) -> None:
    copied, moved = tmp_path / "c.bin", tmp_path / "m.bin"
    copied.write_bytes(b"one")
    moved.write_bytes(b"two")
    objects.put_file("k/c", copied)
    objects.put_file("k/m", moved, move=True)
    assert copied.read_bytes() == b"one" and not moved.exists()
    assert (objects.get_bytes("k/c"), objects.get_bytes("k/m")) == (b"one", b"two")


def test_put_of_the_same_key_and_bytes_twice_stores_it_once(objects: ObjectStore) -> None:
    assert objects.put_bytes("k/x", b"same").written
    again = objects.put_bytes("k/x", b"same")
    assert not again.written and again.sha256 == hashlib.sha256(b"same").hexdigest()


def test_put_of_a_key_with_other_bytes_is_refused_and_keeps_the_first(
        objects: ObjectStore) -> None:
    objects.put_bytes("k/x", b"first")
    with pytest.raises(Conflict, match="write-once"):
        objects.put_bytes("k/x", b"second")
    assert objects.get_bytes("k/x") == b"first"


def test_get_of_a_missing_key_is_not_found(objects: ObjectStore) -> None:
    with pytest.raises(NotFound):
        objects.get_bytes("k/missing")
    with pytest.raises(NotFound):
        objects.local_path("k/missing")


def test_list_names_the_objects_under_a_prefix_with_their_sizes(objects: ObjectStore) -> None:
    objects.put_bytes("datasets/a/1.parquet", b"1")
    objects.put_bytes("datasets/a/2.parquet", b"22")
    objects.put_bytes("datasets/b/3.parquet", b"333")
    objects.put_bytes("artifacts/ab/cd/x", b"4444")
    assert objects.list("datasets/a") == [ObjectInfo("datasets/a/1.parquet", 1),
                                          ObjectInfo("datasets/a/2.parquet", 2)]
    assert [o.key for o in objects.list("datasets/")] == [
        "datasets/a/1.parquet", "datasets/a/2.parquet", "datasets/b/3.parquet"]
    assert len(objects.list()) == 4
    assert objects.list("nothing") == []


def test_delete_removes_an_object_once(objects: ObjectStore) -> None:
    objects.put_bytes("k/gone", b"x")
    objects.local_path("k/gone")  # cached on a remote store: deleting drops the copy too
    assert objects.delete("k/gone") is True
    assert not objects.exists("k/gone")
    assert objects.delete("k/gone") is False
    objects.put_bytes("k/gone", b"other bytes")  # a deleted key may be written again
    assert objects.get_bytes("k/gone") == b"other bytes"


@pytest.mark.parametrize("key", HOSTILE_KEYS, ids=lambda k: repr(k)[:24])
def test_hostile_keys_are_refused_before_any_io(objects: ObjectStore, key: str,
                                                tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        objects.put_bytes(key, b"x")
    with pytest.raises(InvalidInput):
        objects.get_bytes(key)
    with pytest.raises(InvalidInput):
        objects.exists(key)
    with pytest.raises(InvalidInput):
        objects.delete(key)
    assert not (tmp_path / "escape").exists()
    assert objects.list() == []


def test_check_key_accepts_the_keys_the_appliance_writes() -> None:
    sha = "ab" * 32
    for key in (f"datasets/churn_2/{sha}.parquet", f"artifacts/ab/ab/{sha}",
                "backups/20261203T180000Z-2/db/runs.parquet"):
        assert check_key(key) == key
