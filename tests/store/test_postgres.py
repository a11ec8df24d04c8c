"""Metadata on PostgreSQL: what several writers on one database need and the one
embedded writer never did (migrations under a lock, a server refusing an old schema,
version numbers and audit appends serialised in the database)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cli_testing import invoke

from appliance.audit import Auditor
from appliance.config import Settings
from appliance.errors import StoreUnavailable
from appliance.store import datasets
from appliance.store.db import Store, migrate
from appliance.store.migrations import known_migrations, migration_files
from appliance.store.tables import DatasetVersionRow

pytestmark = pytest.mark.postgres


def _together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` for i < n in threads released at the same moment; their results."""
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        barrier.wait()
        try:
            out[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return out


def test_two_migrate_calls_at_once_on_an_empty_database_migrate_it_once(
        pg_url: str, tmp_path: Path) -> None:
    reports = _together(2, lambda i: migrate(tmp_path / f"{i}.duckdb", tmp_path / f"{i}.lock",
                                             pg_url))
    known = [m.number for m in known_migrations()]
    applied = sorted([[m.number for m in r.applied] for r in reports], key=len)
    assert applied == [[], known]  # one migrated; the other waited and found nothing to do
    assert {r.level for r in reports} == {known[-1]}
    with Store(tmp_path / "x.duckdb", url=pg_url) as store:  # opens: the schema is current
        rows = store.execute("SELECT version FROM schema_migrations ORDER BY version")
    assert [r[0] for r in rows] == known


def _as_an_older_release(pg_url: str) -> str:
    """The schema an older release left: every migration but the newest, applied and
    recorded (not empty); the migration it lacks."""
    import psycopg

    *older, (number, name, _sql) = migration_files()
    with psycopg.connect(pg_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                     "name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)")
        for n, label, sql in older:
            body = "\n".join(ln for ln in sql.splitlines() if not ln.strip().startswith("--"))
            for statement in filter(str.strip, body.split(";")):
                conn.execute(statement)  # type: ignore[call-overload]
            conn.execute("INSERT INTO schema_migrations VALUES (%s, %s, now())", (n, label))
    return f"{number:04d}_{name}"


def test_a_server_refuses_an_old_schema_naming_the_command(pg_url: str, tmp_path: Path) -> None:
    missing = _as_an_older_release(pg_url)
    with pytest.raises(StoreUnavailable, match=r"needs .*run `appliance migrate`") as caught:
        Store(tmp_path / "a.duckdb", url=pg_url).open()
    assert caught.value.detail["missing"] == [missing]
    store = Store(tmp_path / "a.duckdb", url=pg_url).open(migrate=False)
    try:
        rows = store.execute("SELECT count(*) FROM schema_migrations")
    finally:
        store.close()
    assert rows[0][0] == len(known_migrations()) - 1  # refused, not migrated


def test_a_server_migrates_an_empty_database_once_when_two_open_it_at_once(
        pg_url: str, tmp_path: Path) -> None:
    stores = _together(2, lambda i: Store(tmp_path / f"{i}.duckdb", url=pg_url).open())
    try:
        rows = stores[0].execute("SELECT version, applied_at FROM schema_migrations "
                                 "ORDER BY version")
    finally:
        for s in stores:
            s.close()
    assert [r[0] for r in rows] == [m.number for m in known_migrations()]  # each once (PK)


def test_a_server_refuses_a_database_with_foreign_tables_and_no_migration_record(
        pg_url: str, tmp_path: Path) -> None:
    store = Store(tmp_path / "a.duckdb", url=pg_url).open(migrate=False)
    try:
        store.execute("CREATE TABLE someone_elses (id INTEGER)")
    finally:
        store.close()
    with pytest.raises(StoreUnavailable, match=r"at schema 0000.*run `appliance migrate`"):
        Store(tmp_path / "a.duckdb", url=pg_url).open()


def test_appliance_serve_refuses_an_old_schema_and_migrate_fixes_it(
        pg_url: str, tmp_path: Path) -> None:
    from appliance.runtime import build

    missing = _as_an_older_release(pg_url)
    settings = Settings(home=tmp_path / "home", store_url=pg_url)
    with pytest.raises(StoreUnavailable, match="appliance migrate"):
        build(settings)
    result = invoke(tmp_path / "home", "migrate", "--json", APPLIANCE_STORE_URL=pg_url)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [f"{m['number']:04d}_{m['name']}" for m in report["applied"]] == [missing]
    assert report["level"] == known_migrations()[-1].number
    assert "***" in report["path"] or "@" not in report["path"]  # no password in the report


def test_two_hosts_allocating_version_numbers_at_once_get_distinct_numbers(
        pg_url: str, tmp_path: Path) -> None:
    migrate(tmp_path / "a.duckdb", tmp_path / "a.lock", pg_url)
    hosts = [Store(tmp_path / f"{i}.duckdb", url=pg_url).open() for i in range(2)]
    with hosts[0].write() as s:
        ds_id = datasets.get_or_create_dataset(s, "sales").id

    def allocate(i: int) -> list[int]:
        numbers = []
        for _ in range(15):
            with hosts[i].write() as s:
                number = datasets.next_version_number(s, ds_id)
                s.add(DatasetVersionRow(
                    dataset_id=ds_id, number=number, status="accepted", sha256=f"{i}-{number}",
                    size_bytes=1, rows=1, parquet_path="p", source_file="f", claim_id="c"))
            numbers.append(number)
        return numbers

    try:
        got = _together(2, allocate)
    finally:
        for h in hosts:
            h.close()
    assert sorted(got[0] + got[1]) == list(range(1, 31))


def test_two_hosts_appending_audit_events_at_once_keep_one_verifiable_chain(
        pg_url: str, tmp_path: Path) -> None:
    migrate(tmp_path / "a.duckdb", tmp_path / "a.lock", pg_url)
    hosts = [Store(tmp_path / f"{i}.duckdb", url=pg_url).open() for i in range(2)]
    auditors = [Auditor(h, tmp_path / f"audit{i}.head") for i, h in enumerate(hosts)]

    def append(i: int) -> None:
        for n in range(15):
            with hosts[i].write() as s:
                auditors[i].record(s, f"host{i}", "thing.update", f"thing:{n}")

    try:
        _together(2, append)
        result = auditors[0].verify()
        seqs = hosts[0].execute("SELECT seq FROM audit_events ORDER BY seq")
    finally:
        for h in hosts:
            h.close()
    assert [r[0] for r in seqs] == list(range(1, 31))
    assert (result.events, [p for p in result.problems if "anchor" not in p.problem]) == (30, [])


@pytest.mark.slow
def test_two_serve_processes_started_at_once_on_an_empty_database_both_come_up(
        pg_url: str, tmp_path: Path) -> None:
    import httpx
    from appliance_test_support import start_server

    env = {"APPLIANCE_STORE_URL": pg_url, "APPLIANCE_LOG_LEVEL": "info"}
    servers = _together(2, lambda i: start_server(tmp_path / f"h{i}" / "home", env=env))
    try:
        health = [httpx.get(s.url + "/healthz", timeout=5).json() for s in servers]
        store = Store(tmp_path / "x.duckdb", url=pg_url).open(migrate=False)
        try:
            versions = [r[0] for r in store.execute("SELECT version FROM schema_migrations")]
            admins = store.execute("SELECT count(*) FROM users WHERE username = 'admin'")
        finally:
            store.close()
        logs = [s.log() for s in servers]
        assert all(s.proc.poll() is None for s in servers), logs
    finally:
        for s in servers:
            s.stop()
    assert sorted(versions) == [m.number for m in known_migrations()]  # applied once each
    assert sum("was empty: applied" in log for log in logs) == 1, logs  # by one of them
    assert admins == [(1,)]
    assert [h["status"] for h in health] == ["ok", "ok"], health
    assert sorted(h["leader"] for h in health) == [False, True]
