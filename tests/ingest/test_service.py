"""The ingest service in-process: crash windows, the disk guard, pending summaries."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.domain.principal import INBOX
from appliance.errors import InsufficientDisk
from appliance.ingest import inbox
from appliance.runtime import build

CSV = b"id,x,kind\n" + b"".join(f"{i},{i * 0.5},{'ab'[i % 2]}\n".encode() for i in range(100))


def _claim(app: Any, name: str, content: bytes, dataset: str = "d") -> inbox.Claim:
    folder = app.settings.inbox_dir / dataset
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(content)
    return inbox.claim(folder / name, dataset, app.settings.claimed_dir)


def test_recover_after_a_crash_between_commit_and_archive_files_it_once(appliance_app: Any) -> None:
    app = appliance_app
    claim = _claim(app, "a.csv", CSV)
    first = app.ingest.ingest_claim(claim)
    assert first.outcome == "accepted"
    # the crash: the version is committed but the claimed file was never filed away
    archived = app.settings.archive_dir / "d" / "a.csv"
    shutil.move(archived, claim.path)
    [again] = app.ingest.recover()
    assert again.outcome == "recovered" and again.version == 1
    assert [v.number for v in app.datasets.versions("d")] == [1]
    assert archived.exists() and not claim.path.exists()
    assert len(app.ingest.recent(dataset="d")) == 1


def test_recover_after_a_crash_before_commit_ingests_the_claim_once(appliance_app: Any) -> None:
    app = appliance_app
    claim = _claim(app, "a.csv", CSV)
    (app.settings.staging_dir / f"{claim.id}.parquet.tmp").write_bytes(b"half a file")
    [result] = app.ingest.recover()
    assert result.outcome == "accepted" and result.version == 1
    assert not list(app.settings.staging_dir.iterdir())
    assert app.ingest.recover() == []


def test_recover_queues_summaries_a_crash_left_pending(appliance_app: Any) -> None:
    app = appliance_app
    app.ingest.ingest_claim(_claim(app, "a.csv", CSV))
    _wait_summary(app)
    app.store.execute("UPDATE dataset_versions SET summary = NULL")
    assert app.datasets.version("d", 1).summary_status == "pending"
    app.ingest.recover()
    detail = _wait_summary(app)
    assert [s["name"] for s in detail.summary] == ["id", "x", "kind"]


def test_disk_guard_refuses_work_and_leaves_the_claim_for_later(tmp_path: Path, settings_for: Any) -> None:
    app = build(settings_for(tmp_path / "home", min_free_disk_mb=10**9))
    try:
        claim = _claim(app, "a.csv", CSV)
        with pytest.raises(InsufficientDisk, match="MiB free"):
            app.ingest.ingest_claim(claim, who=INBOX)
        assert claim.path.exists()  # nothing lost: retried once there is room
        assert app.ingest.recent() == []
        with pytest.raises(InsufficientDisk):
            app.ingest.open_upload(file_name="b.csv", dataset="d")
    finally:
        app.close()


def _wait_summary(app: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = app.datasets.version("d", 1)
        if detail.summary_status == "ready":
            return detail
        time.sleep(0.05)
    raise AssertionError("the summary never arrived")


def test_a_claim_held_back_by_the_disk_guard_is_taken_once_there_is_room(
    tmp_path: Path, settings_for: Any
) -> None:
    from appliance.ingest.watcher import InboxWatcher

    app = build(settings_for(tmp_path / "home", min_free_disk_mb=10**9))
    try:
        watcher = InboxWatcher(app.ingest, inbox_dir=app.settings.inbox_dir,
                               claimed_dir=app.settings.claimed_dir, poll_seconds=0.1,
                               min_age_seconds=0)
        folder = app.settings.inbox_dir / "d"
        folder.mkdir(parents=True)
        (folder / "a.csv").write_bytes(CSV)
        (folder / "a.csv.done").touch()
        assert watcher.run_once() == []  # claimed, then refused by the guard
        assert len(inbox.pending_claims(app.settings.claimed_dir)) == 1
        app.settings.min_free_disk_mb = 0  # room again
        [result] = watcher.run_once()
        assert result.outcome == "accepted"
        assert inbox.pending_claims(app.settings.claimed_dir) == []
    finally:
        app.close()


def test_recover_drops_uploads_cut_off_by_a_crash(appliance_app: Any) -> None:
    sink = appliance_app.ingest.open_upload(file_name="a.csv", dataset="d")
    sink.write(b"id\n1\n")  # the server dies here: the uploader never got an answer
    assert sink.tmp.exists()
    appliance_app.ingest.recover()
    assert not sink.tmp.exists()
