"""Upgrades: a store written by every earlier release comes across intact; a newer one is refused.

tests/fixtures/stores/<version>/ holds a home written by that tagged release
(scripts/make-upgrade-fixture) and ``expected.json``, what its API said about
it. Each is copied into tmp_path, upgraded by ``appliance migrate``, served by
this version's ``appliance serve`` and compared through the API: datasets
and versions, contracts, runs and metrics, model versions and their ONNX
digests, aliases and their history, predictions and labels, drift reports,
users, row counts and the audit chain; then the upgraded champion predicts.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from appliance_test_support import make_settings, start_server
from typer.testing import CliRunner

from appliance.cli import app
from appliance.store.db import ProcessLock, Store
from appliance.store.migrations import known_migrations

STORES = Path(__file__).parent / "fixtures" / "stores"
RELEASES = sorted(p.name for p in STORES.iterdir() if (p / "home.tar.gz").is_file())
NEWEST = max(m.number for m in known_migrations())


def _unpack(release: str, dest: Path) -> tuple[Path, dict[str, Any]]:
    with tarfile.open(STORES / release / "home.tar.gz") as tar:
        tar.extractall(dest, filter="data")
    return dest / "home", json.loads((STORES / release / "expected.json").read_text())


def _migrate(home: Path) -> Any:
    return CliRunner().invoke(app, ["migrate", "--home", str(home), "--json"])


@contextmanager
def _client(url: str, password: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=60) as c:
        token = c.post("/api/v1/auth/token", json={"username": "admin", "password": password})
        assert token.status_code == 200, token.text
        c.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        yield c


def _ok(resp: httpx.Response) -> Any:
    assert resp.status_code < 400, f"{resp.request.url}: {resp.status_code} {resp.text[:300]}"
    return resp.json()


def test_releases_have_fixtures() -> None:
    assert "0.1.0" in RELEASES


@pytest.mark.parametrize("release", RELEASES)
def test_migrate_upgrades_a_store_written_by_an_earlier_release(release: str, tmp_path: Path) -> None:
    home, want = _unpack(release, tmp_path)
    first = _migrate(home)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["level"] == NEWEST
    assert report["level_before"] is not None and report["level_before"] <= NEWEST
    assert [m["number"] for m in report["applied"]] == [
        m.number for m in known_migrations() if m.number > report["level_before"]]
    again = json.loads(_migrate(home).stdout)
    assert again["applied"] == [] and again["level"] == NEWEST

    server = start_server(home)
    try:
        with _client(server.url, want["admin_password"]) as c:
            counts = _ok(c.post("/api/v1/backups"))["counts"]
            for table, n in want["counts"].items():
                if table == "audit_events":  # logins since are audited too
                    assert counts[table] >= n, (table, counts[table], n)
                else:
                    assert counts[table] == n, (table, counts[table], n)

            for name, ds in want["datasets"].items():
                versions = sorted(_ok(c.get(f"/api/v1/datasets/{name}/versions")), key=lambda v: v["number"])
                assert [{k: v[k] for k in ("number", "status", "sha256", "rows")} for v in versions] == ds["versions"]
                assert _ok(c.get(f"/api/v1/datasets/{name}"))["contract_version"] == ds["contract_version"]
                for v in ds["versions"]:  # the Parquet file the store points at is there and readable
                    detail = _ok(c.get(f"/api/v1/datasets/{name}/versions/{v['number']}"))
                    assert detail["summary_status"] == "ready" and detail["rows"] == v["rows"]

            for run in want["runs"]:
                got = _ok(c.get(f"/api/v1/runs/{run['id']}"))
                assert {k: got[k] for k in run} == run

            for name, model in want["models"].items():
                versions = sorted(_ok(c.get(f"/api/v1/models/{name}/versions")), key=lambda v: v["number"])
                assert [{k: v[k] for k in ("number", "status", "run_id", "onnx_sha256")}
                        for v in versions] == model["versions"]
                assert _ok(c.get(f"/api/v1/models/{name}/aliases")) == model["aliases"]
                history = _ok(c.get(f"/api/v1/models/{name}/aliases/champion/history"))
                assert [{k: e[k] for k in ("alias", "version", "previous_version", "action")}
                        for e in history] == model["champion_history"]

            assert len(_ok(c.get("/api/v1/monitor/churn/drift"))) == want["drift_reports"]
            assert sorted(u["username"] for u in _ok(c.get("/api/v1/users"))) == want["users"]
            audit = _ok(c.get("/api/v1/audit/verify"))
            assert audit["ok"] is True and audit["problems"] == []
            assert audit["events"] >= want["audit"]["events"]

            # The upgraded registry serves: the champion's ONNX file loads (sha256 checked) and answers.
            record = {"age": 40, "tenure_months": 3, "monthly_charges": 70.0, "plan": "basic", "region": "north"}
            out = _ok(c.post("/api/v1/models/churn/predict", params={"alias": "champion"}, json=[record]))
            assert out["version"] == want["models"]["churn"]["aliases"]["champion"]
            assert len(out["predictions"]) == 1
    finally:
        assert server.stop() == 0, server.log()[-3000:]

    # Predictions and their delayed labels, over all time (the API caps its window at a year).
    from appliance.runtime import build

    appliance = build(make_settings(home, admin_password=want["admin_password"]))
    try:
        perf = {v.version: v for v in appliance.serving.performance("churn", hours=24 * 365 * 100).versions}
    finally:
        appliance.close()
    for p in want["predictions"]:
        assert perf[p["version"]].labelled == p["labelled"]
        assert perf[p["version"]].predictions >= p["predictions"]


def _fresh_store(home: Path) -> Path:
    settings = make_settings(home)
    Store(settings.db_path, lock_path=settings.lock_path).open().close()
    return settings.db_path


@pytest.mark.parametrize(("sql", "named"), [
    ("INSERT INTO schema_migrations VALUES (9999, 'from_the_future', now())", "9999_from_the_future"),
    ("UPDATE schema_migrations SET name = 'core_rewritten' WHERE version = 1", "0001_core_rewritten"),
])
def test_migrate_refuses_a_store_from_a_newer_appliance(tmp_path: Path, sql: str, named: str) -> None:
    import appliance

    db = _fresh_store(tmp_path / "home")
    with duckdb.connect(str(db)) as conn:
        conn.execute(sql)
        before = conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()

    out = _migrate(tmp_path / "home")
    assert out.exit_code == 2
    message = " ".join(out.output.split())
    assert "written by a newer appliance" in message and named in message
    assert f"appliance {appliance.__version__} does not know" in message
    newest = max(known_migrations(), key=lambda m: m.number)
    assert f"ships up to {newest}" in message

    server = start_server(tmp_path / "home", wait=False)  # the start-up path refuses it too
    assert server.proc.wait(60) == 2
    assert named in " ".join(server.log().split())
    assert ProcessLock.holder(make_settings(tmp_path / "home").lock_path) is None  # lock released
    with duckdb.connect(str(db)) as conn:  # and nothing was changed
        assert conn.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall() == before


def test_migrate_without_a_store_creates_nothing(tmp_path: Path) -> None:
    out = _migrate(tmp_path / "home")
    assert out.exit_code == 2 and "no store" in out.output
    assert not (tmp_path / "home" / "appliance.duckdb").exists()


def test_migrate_while_a_server_holds_the_store_names_its_pid(tmp_path: Path) -> None:
    server = start_server(tmp_path / "home")
    try:
        out = _migrate(tmp_path / "home")
        assert out.exit_code == 2
        assert f"PID {server.proc.pid}" in out.output
    finally:
        server.stop()


def test_migrate_reports_an_up_to_date_store_as_a_table(tmp_path: Path) -> None:
    _fresh_store(tmp_path / "home")
    out = CliRunner().invoke(app, ["migrate", "--home", str(tmp_path / "home")])
    assert out.exit_code == 0, out.output
    for m in known_migrations():
        assert str(m) in out.stdout
    assert "already applied" in out.stdout and "applied now" not in out.stdout
