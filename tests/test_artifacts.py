"""Content-addressed artifacts: stored once, named by their bytes, verified on read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from appliance.artifacts import ArtifactStore
from appliance.errors import InvalidInput, NotFound, StoreUnavailable


def test_put_bytes_names_the_file_by_its_sha256_and_stores_it_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    a = store.put_bytes(b"model bytes")
    b = store.put_bytes(b"model bytes")
    assert a == b and a.sha256 == hashlib.sha256(b"model bytes").hexdigest()
    assert a.path.read_bytes() == b"model bytes" and a.size == 11
    assert not os.access(a.path, os.W_OK) or os.geteuid() == 0
    assert not list((tmp_path / "artifacts" / ".tmp").iterdir())


def test_put_file_streams_a_large_file(tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(9 * 1024 * 1024))
    art = ArtifactStore(tmp_path / "artifacts").put_file(src)
    assert art.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert art.size == src.stat().st_size


def test_read_refuses_bytes_that_no_longer_match_their_name(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "artifacts")
    art = store.put_bytes(b"original")
    os.chmod(art.path, 0o644)
    art.path.write_bytes(b"tampered")
    assert not store.verify(art.sha256)
    with pytest.raises(StoreUnavailable, match="corrupt"):
        store.read_bytes(art.sha256)


@pytest.mark.parametrize("name", ["../../etc/passwd", "ab/../../x", "A" * 64, "", "0" * 63])
def test_artifact_names_are_only_ever_checked_digests(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidInput):
        ArtifactStore(tmp_path).path_for(name)


def test_read_missing_artifact_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        ArtifactStore(tmp_path).read_bytes("0" * 64)
