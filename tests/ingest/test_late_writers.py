"""Late and odd writers: files that change after they are taken, names that are not UTF-8.

The inbox is driven one poll at a time (``InboxWatcher.run_once``) with a
minimum age of 0, so "the writer paused longer than the stability window" is
two polls without a write, not a sleep.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.ingest import inbox
from appliance.ingest.watcher import InboxWatcher

HEADER = b"id,x,kind\n"


def rows(start: int, stop: int) -> bytes:
    return b"".join(f"{i},{i * 0.5},{'ab'[i % 2]}\n".encode() for i in range(start, stop))


@pytest.fixture
def watcher(appliance_app: Any) -> InboxWatcher:
    (appliance_app.settings.inbox_dir / "d").mkdir(parents=True, exist_ok=True)
    return InboxWatcher(appliance_app.ingest, inbox_dir=appliance_app.settings.inbox_dir,
                        claimed_dir=appliance_app.settings.claimed_dir, poll_seconds=0.1,
                        min_age_seconds=0)


@pytest.fixture
def writer(appliance_app: Any) -> Iterator[Any]:
    """A writer that keeps its file open, as a slow export does."""
    folder = appliance_app.settings.inbox_dir / "d"
    folder.mkdir(parents=True, exist_ok=True)
    fh = (folder / "slow.csv").open("ab")
    yield fh
    fh.close()


def poll_until_taken(watcher: InboxWatcher, polls: int = 3) -> list[Any]:
    for _ in range(polls):
        results = watcher.run_once()
        if results:
            return results
    raise AssertionError("the file was never taken")


def reason_doc(app: Any, dataset: str) -> dict[str, Any]:
    [path] = (app.settings.quarantine_dir / dataset).glob("*.reason.json")
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def test_a_file_appended_to_while_it_is_read_is_quarantined_whole(
    appliance_app: Any, writer: Any
) -> None:
    app = appliance_app
    writer.write(HEADER + rows(0, 100))
    writer.flush()
    claim = inbox.claim(Path(writer.name), "d", app.settings.claimed_dir)
    parse = app.ingest.pool.parse

    def parse_while_the_writer_goes_on(*args: Any, **kwargs: Any) -> Any:
        writer.write(rows(100, 200))      # through the descriptor it held before the claim
        writer.flush()
        return parse(*args, **kwargs)

    app.ingest.pool.parse = parse_while_the_writer_goes_on
    out = app.ingest.ingest_claim(claim)
    assert (out.outcome, out.reason) == ("quarantined", "changed_while_reading")
    assert ".part" in out.message and "none of it was accepted" in out.message
    assert app.datasets.list_datasets() == []
    doc = reason_doc(app, "d")
    assert doc["reason"] == "changed_while_reading"
    assert doc["detail"]["size_before"] < doc["detail"]["size_after"]
    kept = app.settings.quarantine_dir / "d" / "slow.csv"
    assert kept.read_bytes() == HEADER + rows(0, 200)       # nothing lost
    assert not list(app.settings.staging_dir.iterdir())
    assert [a.kind for a in app.alerts.list_alerts()] == ["validation_rejected"]


def test_a_writer_pausing_past_the_stability_window_has_its_file_taken_early(
    appliance_app: Any, watcher: InboxWatcher, writer: Any
) -> None:
    """What docs/concepts/datasets.md describes: complete rows so far become a version."""
    app = appliance_app
    writer.write(HEADER + rows(0, 100))
    writer.flush()
    [first] = poll_until_taken(watcher)            # the writer pauses: two stable polls
    assert (first.outcome, first.version) == ("accepted", 1)
    assert app.datasets.version("d", 1).rows == 100
    writer.write(rows(100, 200))                    # it goes on, into the archived file
    writer.flush()
    assert watcher.run_once() == []
    assert app.datasets.version("d", 1).rows == 100
    # a writer that reopens the name instead starts a new file: its rows have no header
    tail = app.settings.inbox_dir / "d" / "slow.csv"
    tail.write_bytes(rows(200, 300))
    [second] = poll_until_taken(watcher)
    assert second.outcome == "rejected" and second.reason == "contract_failed"


def test_a_writer_pausing_mid_row_has_its_half_file_quarantined(
    appliance_app: Any, watcher: InboxWatcher, writer: Any
) -> None:
    writer.write(HEADER + rows(0, 100) + b"100,50.0")   # the last row is cut short
    writer.flush()
    [out] = poll_until_taken(watcher)
    assert (out.outcome, out.reason) == ("quarantined", "malformed")
    assert "line 102: ragged row with 2 fields where the header has 3" in out.message


def test_a_part_file_is_never_taken_however_long_its_writer_pauses(
    appliance_app: Any, watcher: InboxWatcher
) -> None:
    app = appliance_app
    part = app.settings.inbox_dir / "d" / "f.csv.part"
    part.write_bytes(HEADER + rows(0, 100))
    for _ in range(5):
        assert watcher.run_once() == []
    with part.open("ab") as fh:
        fh.write(rows(100, 200))
    part.rename(part.with_name("f.csv"))
    [out] = poll_until_taken(watcher)
    assert out.outcome == "accepted"
    assert app.datasets.version("d", 1).rows == 200


def test_a_non_utf8_file_name_is_recorded_like_any_refusal(
    appliance_app: Any, watcher: InboxWatcher
) -> None:
    app = appliance_app
    folder = os.fsencode(app.settings.inbox_dir / "d")
    fd = os.open(folder + b"/caf\xe9.csv", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, HEADER + rows(0, 10))
    os.close(fd)
    [out] = watcher.run_once()
    shown = "caf\\xe9.csv"
    assert (out.outcome, out.reason, out.file_name) == ("quarantined", "invalid_name",
                                                                  shown)
    assert shown in out.message
    assert [(r.file_name, r.reason) for r in app.ingest.recent()] == [
        (shown, "invalid_name")]
    event = app.auditor.recent(limit=1)[0]
    assert event.action == "ingest.quarantine" and shown in event.target
    [alert] = app.alerts.list_alerts()
    assert alert.kind == "validation_rejected" and shown in alert.message
    doc = reason_doc(app, "d")
    assert (doc["file"], doc["reason"]) == (shown, "invalid_name")
    assert os.listdir(folder) == []                  # moved aside, not left to retry
    assert app.auditor.verify().ok
