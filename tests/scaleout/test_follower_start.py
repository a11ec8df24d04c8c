"""A host's own files across a takeover (docs/scale-out.md, Recovery).

A host that starts as a follower still finishes what a kill left in its own home (a
file it had claimed from the shared inbox, or an upload), instead of leaving it in
``claimed/`` until the day it leads again. A follower that takes the lease while it
serves uploads leaves their files alone (they are in flight, not a crash's leftovers),
and a leader whose recovery fails still watches the inbox and runs the scheduler.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import make_settings
from pg_testing import PgServer, fresh_database

from appliance.demo import make_customers
from appliance.lease import PostgresLease

pytestmark = pytest.mark.postgres


def csv(seed: int) -> bytes:
    return make_customers(50, seed=seed).write_csv().encode()


@pytest.fixture
def shared_url(pg_server: PgServer, pg_template: str) -> Iterator[str]:
    with fresh_database(pg_server, pg_template) as url:
        yield url


@pytest.fixture
def other_host(shared_url: str) -> Iterator[PostgresLease]:
    """Another host, holding the leader lease until the test stops it."""
    lease = PostgresLease(shared_url, retry_seconds=0.2)
    lease.start(lambda: None, lambda: None)
    yield lease
    lease.stop()


@pytest.fixture
def follower(shared_url: str, other_host: PostgresLease, tmp_path: Path) -> Iterator[Any]:
    """An appliance on the shared store, built but not started (a follower once started)."""
    from appliance.runtime import build

    app = build(make_settings(tmp_path / "home", store_url=shared_url,
                              leader_retry_seconds=0.2))
    yield app
    app.close()


def _take_over(app: Any, other: PostgresLease) -> None:
    other.stop()
    deadline = time.monotonic() + 10
    while not app.lease.leader:
        assert time.monotonic() < deadline, "the follower did not take the lease"
        time.sleep(0.05)
    time.sleep(0.5)  # the lease thread runs the leader's recovery right after taking it


def test_a_follower_ingests_the_file_a_kill_left_claimed_in_its_home_at_start(
        follower: Any, other_host: PostgresLease, tmp_path: Path) -> None:
    claimed = tmp_path / "home" / "claimed" / "customers" / f"{uuid.uuid4().hex}__batch.csv"
    claimed.parent.mkdir(parents=True)
    claimed.write_bytes(csv(1))
    follower.start()
    assert other_host.leader and not follower.lease.leader
    done = follower.ingest.recent(dataset="customers")
    assert [(i.file_name, i.outcome.value, i.version) for i in done] == \
        [("batch.csv", "accepted", 1)]
    assert not any(p.is_file() for p in (tmp_path / "home" / "claimed").rglob("*"))
    assert (tmp_path / "home" / "archive" / "customers" / "batch.csv").is_file()


def test_a_follower_taking_the_lease_leaves_the_uploads_it_is_serving_alone(
        follower: Any, other_host: PostgresLease, tmp_path: Path) -> None:
    follower.start()
    # an upload in flight on this host: its file claimed, its snapshot being written
    sink = follower.ingest.open_upload(file_name="live.csv", dataset="customers")
    sink.write(csv(2))
    claim = sink.commit()
    staging = tmp_path / "home" / "staging" / f"{claim.id}.parquet"
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.write_bytes(b"PAR1 being written")
    _take_over(follower, other_host)
    assert claim.path.is_file() and staging.is_file(), "the leader's recovery took them"
    assert follower.ingest.recent(dataset="customers") == []
    done = follower.ingest.ingest_claim(claim)  # the upload finishes, undisturbed
    assert (done.outcome.value, done.version) == ("accepted", 1)


def test_a_new_leader_whose_recovery_fails_still_watches_the_inbox_and_schedules(
        follower: Any, other_host: PostgresLease, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("a recovery step failed")

    follower.start()
    monkeypatch.setattr(follower.erasure, "recover", broken)
    _take_over(follower, other_host)
    polls = follower.watcher.heartbeat["polls"]
    time.sleep(1.0)  # the watcher polls every 0.2 s
    assert follower.watcher.heartbeat["polls"] > polls
    assert follower.scheduler.next_run("inbox.scan") is not None
