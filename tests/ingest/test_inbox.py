"""The inbox scanner: completion rules and hostile entries, on a real folder."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from appliance.domain.ingest import Reason
from appliance.ingest.inbox import InboxScanner, claim, pending_claims, quarantine


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    (tmp_path / "inbox" / "customers").mkdir(parents=True)
    return tmp_path / "inbox"


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t), follow_symlinks=False)


def test_scan_ignores_hidden_part_and_tmp_files(inbox: Path) -> None:
    for name in (".hidden.csv", "a.csv.part", "b.csv.tmp"):
        (inbox / "customers" / name).write_text("x\n1\n")
    scanner = InboxScanner(inbox, min_age_seconds=0)
    scanner.poll()
    scan = scanner.poll()
    assert scan.ready == [] and scan.hostile == []


def test_scan_takes_a_file_only_after_two_stable_polls_past_min_age(inbox: Path) -> None:
    f = inbox / "customers" / "a.csv"
    f.write_text("x\n1\n")
    scanner = InboxScanner(inbox, min_age_seconds=5)
    assert scanner.poll().ready == []          # first sighting
    assert scanner.poll().ready == []          # stable but too young
    _age(f, 10)
    assert scanner.poll().ready == []          # mtime changed: a new signature
    assert scanner.poll().ready == [("customers", f)]


def test_scan_waits_while_a_file_keeps_growing(inbox: Path) -> None:
    f = inbox / "customers" / "a.csv"
    scanner = InboxScanner(inbox, min_age_seconds=0)
    for i in range(4):
        with f.open("a") as fh:
            fh.write(f"{i}\n")
        _age(f, 10 - i)
        assert scanner.poll().ready == []


def test_scan_takes_a_file_at_once_with_a_done_marker(inbox: Path) -> None:
    f = inbox / "customers" / "a.csv"
    f.write_text("x\n1\n")
    (inbox / "customers" / "a.csv.done").touch()
    assert InboxScanner(inbox, min_age_seconds=60).poll().ready == [("customers", f)]


def test_scan_takes_a_file_at_once_after_a_rename_hint(inbox: Path) -> None:
    f = inbox / "customers" / "a.csv"
    f.write_text("x\n1\n")
    scanner = InboxScanner(inbox, min_age_seconds=60)
    scanner.hint_renamed(f)
    assert scanner.poll().ready == [("customers", f)]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: os.symlink("/etc/passwd", d / "passwd.csv"), Reason.not_regular_file),
        (lambda d: os.symlink(d.parent.parent / "appliance.duckdb", d / "store.csv"),
         Reason.not_regular_file),
        (lambda d: os.mkfifo(d / "fifo.csv"), Reason.not_regular_file),
        (lambda d: (d / "dir.csv").mkdir(), Reason.not_regular_file),
        (lambda d: ((d / "orig.bin").write_text("a\n1\n"),
                    os.link(d / "orig.bin", d / "hard.csv")), Reason.not_regular_file),
        (lambda d: (d / "evil\\..\\x.csv").write_text("a\n1\n"), Reason.invalid_name),
        (lambda d: (d / "a..b.csv").write_text("a\n1\n"), Reason.invalid_name),
    ],
    ids=["symlink-passwd", "symlink-store", "fifo", "directory", "hardlink", "backslashes",
         "dotdot"],
)
def test_scan_flags_hostile_entries_without_opening_them(inbox: Path, make, reason: Reason) -> None:
    make(inbox / "customers")
    scan = InboxScanner(inbox, min_age_seconds=0).poll()
    assert reason in {h.reason for h in scan.hostile}
    assert all(path.name != "passwd.csv" for _, path in scan.ready)


def test_scan_flags_files_in_a_badly_named_dataset_folder(inbox: Path) -> None:
    bad = inbox / "Bad Name!"
    bad.mkdir()
    (bad / "a.csv").write_text("x\n1\n")
    scan = InboxScanner(inbox, min_age_seconds=0).poll()
    assert [(h.dataset, h.reason) for h in scan.hostile] == [(None, Reason.invalid_name)]


def test_quarantine_moves_a_symlink_itself_and_writes_a_reason(inbox: Path, tmp_path: Path) -> None:
    link = inbox / "customers" / "passwd.csv"
    os.symlink("/etc/passwd", link)
    target = quarantine(link, quarantine_dir=tmp_path / "q", dataset="customers",
                        name=link.name, reason=Reason.not_regular_file, message="a symbolic link")
    assert target.is_symlink() and not link.exists()
    assert (target.parent / (target.name + ".reason.json")).read_text().count("not_regular_file")
    assert Path("/etc/passwd").exists()


def test_claim_is_an_atomic_rename_that_recovery_finds(inbox: Path, tmp_path: Path) -> None:
    f = inbox / "customers" / "a.csv"
    f.write_text("x\n1\n")
    c = claim(f, "customers", tmp_path / "claimed")
    assert not f.exists() and c.path.read_text() == "x\n1\n"
    assert [p.id for p in pending_claims(tmp_path / "claimed")] == [c.id]
