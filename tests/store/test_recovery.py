"""A write-ahead log that cannot be replayed: moved aside, read-only, loudly degraded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from appliance.api.app import create_app
from appliance.errors import StoreUnavailable
from appliance.runtime import build
from appliance.store.db import Store

_LEAVE_A_WAL = """
import os, sys
from appliance.store.db import Store
from appliance.store.tables import DatasetRow
store = Store(__import__("pathlib").Path(sys.argv[1])).open()
store.execute("SET checkpoint_threshold = '10GB'")
store.execute("PRAGMA disable_checkpoint_on_shutdown")
with store.write() as s:
    s.add(DatasetRow(name="after-checkpoint"))
os._exit(0)  # die like kill -9: the last write lives only in the WAL
"""


def _store_with_corrupt_wal(db: Path) -> Path:
    with Store(db) as store, store.write() as s:
        from appliance.store.tables import DatasetRow

        s.add(DatasetRow(name="checkpointed"))
    subprocess.run([sys.executable, "-c", _LEAVE_A_WAL, str(db)], check=True, timeout=60)
    wal = Path(str(db) + ".wal")
    assert wal.exists() and wal.stat().st_size > 0
    raw = bytearray(wal.read_bytes())
    for i in range(len(raw) // 3, len(raw) // 3 + 64):
        raw[i] ^= 0xFF
    wal.write_bytes(bytes(raw))
    return wal


def test_open_store_with_unreplayable_wal_degrades_read_only_and_keeps_the_wal(tmp_path: Path) -> None:
    db = tmp_path / "appliance.duckdb"
    wal = _store_with_corrupt_wal(db)
    store = Store(db).open()
    try:
        assert store.degraded and "write-ahead log" in (store.degraded_reason or "")
        assert not wal.exists()
        kept = list(tmp_path.glob("appliance.duckdb.wal.unreplayable-*"))
        assert len(kept) == 1 and kept[0].stat().st_size > 0
        with store.read() as s:
            from sqlmodel import select

            from appliance.store.tables import DatasetRow

            assert [d.name for d in s.exec(select(DatasetRow)).all()] == ["checkpointed"]
        with pytest.raises(StoreUnavailable, match="read-only"), store.write():
            pass
    finally:
        store.close()


def test_serve_on_a_degraded_store_says_so_and_refuses_writes(tmp_path: Path, settings_for: Any) -> None:
    settings = settings_for(tmp_path / "home")
    settings.ensure_dirs()
    # bring the home up once (migrations, admin), then leave a corrupt WAL behind
    build(settings).close()
    _store_with_corrupt_wal(settings.db_path)
    app = build(settings)
    try:
        client = TestClient(create_app(app))
        health = client.get("/healthz").json()
        assert health["status"] == "degraded" and "write-ahead log" in health["degraded_reason"]
        login = client.post("/api/v1/auth/token",
                            json={"username": "admin", "password": settings.admin_password.get_secret_value()})
        assert login.status_code == 200, login.text  # people can still log in and read
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        assert client.get("/api/v1/datasets").status_code == 200
        refused = client.post("/api/v1/users", json={"username": "x", "password": "password123"})
        assert refused.status_code == 503 and refused.json()["error"]["type"] == "store_unavailable"
        upload = client.post("/api/v1/datasets/d/files", params={"filename": "a.csv"}, content=b"a\n1\n",
                             headers={"Content-Type": "application/octet-stream"})
        assert upload.status_code == 503
        assert not [p for p in settings.claimed_dir.rglob("*") if p.is_file()]
    finally:
        app.close()
