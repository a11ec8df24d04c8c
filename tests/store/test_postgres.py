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
from appliance.store.migrations import known_migrations
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


def test_a_server_refuses_an_old_schema_naming_the_command(pg_url: str, tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match=r"at schema 0000.*run `appliance migrate`"):
        Store(tmp_path / "a.duckdb", url=pg_url).open()  # an empty database
    migrate(tmp_path / "a.duckdb", tmp_path / "a.lock", pg_url)
    newest = known_migrations()[-1]
    store = Store(tmp_path / "a.duckdb", url=pg_url).open(migrate=False)  # as an older release
    try:
        store.execute("DELETE FROM schema_migrations WHERE version = :v", {"v": newest.number})
    finally:
        store.close()
    with pytest.raises(StoreUnavailable, match=r"needs .*run `appliance migrate`") as caught:
        Store(tmp_path / "a.duckdb", url=pg_url).open()
    assert caught.value.detail["missing"] == [str(newest)]


def test_appliance_serve_refuses_an_unmigrated_database_and_migrate_fixes_it(
        pg_url: str, tmp_path: Path) -> None:
    from appliance.runtime import build

    settings = Settings(home=tmp_path / "home", store_url=pg_url)
    with pytest.raises(StoreUnavailable, match="appliance migrate"):
        build(settings)
    result = invoke(tmp_path / "home", "migrate", "--json", APPLIANCE_STORE_URL=pg_url)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["level_before"] is None and report["level"] == known_migrations()[-1].number
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
