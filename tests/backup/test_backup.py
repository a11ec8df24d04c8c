"""Backup and restore in-process: a round trip on real data, and every way a backup can be bad."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import make_settings, tiny_onnx

from appliance.backup import read_manifest, restore, verify_backup
from appliance.domain.principal import SYSTEM
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.store.db import ProcessLock

from .conftest import Source, populate_light, reseal_file, rewrite_manifest, state


def _restored(home: Path, backup: Path) -> Any:
    return restore(make_settings(home), backup, actor="local:tester")


def _dataset_parquet(backup: Path) -> str:
    return next(e["path"] for e in read_manifest(backup)["files"]
                if e["path"].startswith("datasets/"))


def _flip_byte(path: Path) -> None:
    os.chmod(path, 0o644)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


# -- the round trip ------------------------------------------------------------------


def test_restore_into_a_new_home_gives_the_same_datasets_runs_models_and_aliases(
        source: Source, tmp_path: Path) -> None:
    from appliance.runtime import build

    out = _restored(tmp_path / "new", source.backup)
    assert out.ok and out.audit.ok, out
    assert out.counts["dataset_versions"] == 2 and out.counts["model_versions"] == 2
    app = build(make_settings(tmp_path / "new"))
    try:
        assert state(app) == source.state
        assert app.registry.aliases("churn") == {"champion": 1, "challenger": 2}
        verified = app.auditor.verify()
        assert verified.ok, verified
        events = app.auditor.recent(limit=1000)
    finally:
        app.close()
    assert events[0].action == "backup.restore" and events[0].actor == "local:tester"
    # the source's chain up to the backup, event for event, then the restore on top
    assert [e.hash for e in events[1:]] == [e.hash for e in source.events[1:]]
    assert source.events[0].action == "backup.create"


def test_the_restored_home_serves_its_onnx_checked_against_its_sha256(
        source: Source, tmp_path: Path) -> None:
    from appliance.runtime import build

    _restored(tmp_path / "new", source.backup)
    app = build(make_settings(tmp_path / "new"))
    try:
        assert app.registry.onnx_bytes("churn", 1) == tiny_onnx(1.0)
        answer = app.serving.predict("churn", [{"x": 1.0}], alias="champion", version=None)
        assert answer["version"] == 1 and answer["predictions"][0] == pytest.approx(2.0)
        frame = app.datasets.parquet_path("customers", 2)
        assert frame.is_file() and frame.is_relative_to(tmp_path / "new")
        new = app.registry.register_upload("churn", tiny_onnx(3.0), by=SYSTEM)  # and takes writes
        assert new.number == 3
    finally:
        app.close()


def test_the_manifest_lists_every_file_with_its_sha256_and_size(source: Source) -> None:
    manifest = verify_backup(source.backup)
    files = {e["path"]: e for e in manifest["files"]}
    on_disk = {p.relative_to(source.backup).as_posix() for p in source.backup.rglob("*")
               if p.is_file()}
    assert on_disk == set(files) | {"manifest.json"}
    for rel, e in files.items():
        data = (source.backup / rel).read_bytes()
        assert (hashlib.sha256(data).hexdigest(), len(data)) == (e["sha256"], e["size"])
    assert {"db/schema.sql", "db/datasets.parquet", "db/audit_events.parquet", "audit.head",
            "jobs/churn.yaml"} <= set(files)
    assert sum(p.startswith("datasets/customers/") for p in files) == 2
    assert sum(p.startswith("artifacts/") for p in files) == 3  # 2 ONNX + 1 run artifact
    assert manifest["format_version"] == 1 and manifest["migration_level"] >= 1
    assert manifest["tables"]["dataset_versions"] == 2
    assert manifest["missing_references"] == [] and manifest["skipped"] == []
    assert not source.backup.with_name("backup.partial").exists()


def test_a_backup_is_audited_with_its_summary(source: Source) -> None:
    event = source.events[0]
    assert event.action == "backup.create" and event.target == str(source.backup)
    assert event.after["manifest_sha256"] == source.summary.manifest_sha256


def test_restore_accepts_a_home_that_init_made_and_left_empty(source: Source, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "inited")
    settings.ensure_dirs()
    assert restore(settings, source.backup).ok


# -- bad backups: refused, and nothing written ----------------------------------------


def _refused(home: Path, backup: Path, match: str, kind: type[Exception] = InvalidInput) -> None:
    with pytest.raises(kind, match=match):
        _restored(home, backup)
    assert not home.exists(), sorted(home.rglob("*"))


def test_a_flipped_byte_in_a_dataset_parquet_is_refused(backup_copy: Path, tmp_path: Path) -> None:
    rel = _dataset_parquet(backup_copy)
    _flip_byte(backup_copy / rel)
    _refused(tmp_path / "new", backup_copy, "does not match its checksum")


def test_a_flipped_byte_in_the_store_export_is_refused(backup_copy: Path, tmp_path: Path) -> None:
    _flip_byte(backup_copy / "db" / "audit_events.parquet")
    _refused(tmp_path / "new", backup_copy, "audit_events.parquet.*corrupt")


def test_a_missing_file_is_refused(backup_copy: Path, tmp_path: Path) -> None:
    (backup_copy / _dataset_parquet(backup_copy)).unlink()
    _refused(tmp_path / "new", backup_copy, "missing")


def test_a_file_the_manifest_does_not_list_is_refused(backup_copy: Path, tmp_path: Path) -> None:
    (backup_copy / "datasets" / "customers" / "extra.parquet").write_bytes(b"PAR1")
    _refused(tmp_path / "new", backup_copy, "does not list")


def test_a_link_inside_the_backup_is_refused(backup_copy: Path, tmp_path: Path) -> None:
    (backup_copy / "datasets" / "escape").symlink_to("/etc")
    _refused(tmp_path / "new", backup_copy, "link")


def test_an_edited_manifest_is_refused(backup_copy: Path, tmp_path: Path) -> None:
    path = backup_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["tables"]["users"] += 1
    path.write_text(json.dumps(manifest))
    _refused(tmp_path / "new", backup_copy, "edited or is corrupt")


def test_a_manifest_that_is_not_json_is_refused(backup_copy: Path, tmp_path: Path) -> None:
    (backup_copy / "manifest.json").write_text('{"format": "appliance-backup", ')
    _refused(tmp_path / "new", backup_copy, "not valid JSON")


def test_a_folder_without_a_manifest_is_an_incomplete_backup(backup_copy: Path,
                                                             tmp_path: Path) -> None:
    (backup_copy / "manifest.json").unlink()
    _refused(tmp_path / "new", backup_copy, "not a complete backup")


def test_a_path_that_is_no_folder_is_not_found(tmp_path: Path) -> None:
    _refused(tmp_path / "new", tmp_path / "nothing-here", "no backup there", NotFound)


@pytest.mark.parametrize("name", [
    "../escape", "datasets/../../escape", "/etc/passwd", "datasets/customers/..",
    "datasets\\..\\x", "db/sub/x.parquet", "somewhere/else", "datasets/.hidden", "",
], ids=["dotdot", "nested-dotdot", "absolute", "trailing-dotdot", "backslash", "deep-db",
        "unknown-top", "hidden", "empty"])
def test_a_manifest_naming_a_path_outside_the_backup_is_refused(
        backup_copy: Path, tmp_path: Path, name: str) -> None:
    def edit(m: dict[str, Any]) -> None:
        m["files"].append({"path": name, "sha256": "0" * 64, "size": 0})

    rewrite_manifest(backup_copy, edit)
    _refused(tmp_path / "new", backup_copy, "path")
    assert not (tmp_path / "escape").exists()


def test_an_unknown_format_version_is_refused(backup_copy: Path, tmp_path: Path) -> None:
    rewrite_manifest(backup_copy, lambda m: m.update(format_version=2))
    _refused(tmp_path / "new", backup_copy, "format version 2 is not supported")


def test_a_backup_from_a_newer_schema_is_refused(backup_copy: Path, tmp_path: Path) -> None:
    rewrite_manifest(backup_copy, lambda m: m.update(migration_level=9999))
    _refused(tmp_path / "new", backup_copy, "restore with a newer one")


def test_a_forged_export_that_passes_its_checksums_is_still_refused(
        backup_copy: Path, tmp_path: Path) -> None:
    """Rows that do not match the manifest's counts stop the import; the half-built home goes."""
    import duckdb

    users = backup_copy / "db" / "users.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT * FROM read_parquet('{users}') LIMIT 0) "
                    f"TO '{users}.tmp' (FORMAT PARQUET)")
    os.replace(f"{users}.tmp", users)
    reseal_file(backup_copy, "db/users.parquet")
    _refused(tmp_path / "new", backup_copy, "users has 0 rows")


# -- the target home ----------------------------------------------------------------------


def test_restore_refuses_a_home_that_is_not_empty(source: Source, tmp_path: Path) -> None:
    home = tmp_path / "busy"
    (home / "datasets").mkdir(parents=True)
    (home / "datasets" / "keep.parquet").write_bytes(b"mine")
    with pytest.raises(Conflict, match="not empty"):
        _restored(home, source.backup)
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == [
        "datasets", "datasets/keep.parquet"]


def test_restore_refuses_a_home_a_running_server_holds(source: Source, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "held")
    lock = ProcessLock(settings.lock_path)
    lock.acquire()
    try:
        with pytest.raises(Conflict, match=r"running server.*offline"):
            restore(settings, source.backup)
    finally:
        lock.release()
    assert not settings.db_path.exists()


# -- where a backup goes ------------------------------------------------------------------


def test_backup_refuses_a_path_that_exists_and_is_not_empty(source: Source, tmp_path: Path) -> None:
    from appliance.runtime import build

    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    app = build(make_settings(tmp_path / "home"))
    try:
        with pytest.raises(Conflict, match="not empty"):
            app.backup.create(dest, by=SYSTEM)
        with pytest.raises(InvalidInput, match="inside the home"):
            app.backup.create(tmp_path / "home" / "datasets" / "b", by=SYSTEM)
        empty = tmp_path / "it's empty"  # a quote reaches DuckDB's EXPORT as a literal
        empty.mkdir()
        assert app.backup.create(empty, by=SYSTEM).complete
        verify_backup(empty)
    finally:
        app.close()
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    assert not (tmp_path / "taken.partial").exists()


def test_scheduled_backups_go_to_the_home_and_keep_the_newest(tmp_path: Path) -> None:
    from appliance.runtime import build

    app = build(make_settings(tmp_path / "home", backup_keep=2))
    try:
        populate_light(app)
        made = [app.backup.create_scheduled() for _ in range(3)]  # keeps 2 (backup_keep)
        assert made[2].pruned == [made[0].name]
        names = [m.name for m in made]
        (app.backup.backups_dir / "20000101T000000Z.partial").mkdir()  # a crashed one
        last = app.backup.create_scheduled(keep=2)
        listed = app.backup.list_backups()
    finally:
        app.close()
    assert [b.name for b in listed] == [last.name, names[-1]]
    assert set(last.pruned) == {names[1], "20000101T000000Z.partial"}
    assert sorted(p.name for p in app.backup.backups_dir.iterdir()) == sorted(
        b.name for b in listed)
    assert all(b.complete and b.counts["model_versions"] == 1 for b in listed)


def test_scheduled_backups_never_prune_a_backup_someone_made(tmp_path: Path) -> None:
    from appliance.runtime import build

    app = build(make_settings(tmp_path / "home", backup_keep=1))
    try:
        populate_light(app)
        mine = app.backup.create_in_home(by=SYSTEM)  # POST /api/v1/backups, `appliance backup`
        legacy = app.backup.create_in_home(by=SYSTEM)
        _drop_origin(Path(legacy.path))  # a backup from before manifests said who made it
        runs = [app.backup.create_scheduled() for _ in range(4)]  # run-now, again and again
        listed = {b.name: b for b in app.backup.list_backups()}
    finally:
        app.close()
    assert set(listed) == {mine.name, legacy.name, runs[-1].name}
    assert listed[mine.name].origin == "manual"
    assert listed[runs[-1].name].origin == "scheduled"
    assert all(mine.name not in r.pruned and legacy.name not in r.pruned for r in runs)



def test_the_backup_job_records_the_backup_it_made_as_its_result(tmp_path: Path) -> None:
    from appliance.runtime import build

    app = build(make_settings(tmp_path / "home", backup_keep=1))
    try:
        populate_light(app)
        first = app.jobs.run_here("housekeeping.backup", by=SYSTEM)
        second = app.jobs.run_here("housekeeping.backup", by=SYSTEM)
        listed = app.backup.list_backups()
    finally:
        app.close()
    assert (first.status, second.status) == ("succeeded", "succeeded")
    result = second.result  # the job ledger's JSON: the typed result, dumped
    assert first.result is not None and result is not None
    assert result["complete"] is True and result["origin"] == "scheduled"
    assert result["pruned"] == [first.result["name"]]
    assert [b.name for b in listed] == [result["name"]]


def _drop_origin(path: Path) -> None:
    from appliance.backup import _manifest_digest

    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["origin"]
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_copying_a_backup_checks_every_checksum(backup_copy: Path, tmp_path: Path) -> None:
    from appliance.backup import copy_backup

    out = copy_backup(backup_copy, tmp_path / "copied")
    assert out.complete and verify_backup(tmp_path / "copied")
    _flip_byte(backup_copy / _dataset_parquet(backup_copy))
    with pytest.raises(InvalidInput, match="checksum"):
        copy_backup(backup_copy, tmp_path / "copied-again")
    assert not (tmp_path / "copied-again").exists()
    assert not (tmp_path / "copied-again.partial").exists()
    shutil.rmtree(tmp_path / "copied")


def test_a_backup_from_an_older_schema_is_restored_at_its_level_then_migrated(
        backup_copy: Path, tmp_path: Path) -> None:
    """Forge the backup an appliance one migration older would have written; restore upgrades it."""
    import re

    import duckdb

    from appliance.runtime import build
    from appliance.store.migrations import migration_files

    (previous, _, _), (newest, _, sql) = migration_files()[-2:]  # numbers may have gaps
    new_tables = set(re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", sql))
    for t in new_tables:
        (backup_copy / "db" / f"{t}.parquet").unlink()
    rel = "db/schema_migrations.parquet"
    mig = backup_copy / rel
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT * FROM read_parquet('{mig}') WHERE version < {newest}) "
                    f"TO '{mig}.tmp' (FORMAT PARQUET)")
    os.replace(f"{mig}.tmp", mig)
    data = mig.read_bytes()

    def older(m: dict[str, Any]) -> None:
        m["migration_level"] = previous
        m["tables"] = {k: v for k, v in m["tables"].items() if k not in new_tables}
        m["tables"]["schema_migrations"] = len(migration_files()) - 1  # rows, one a migration
        m["files"] = [e for e in m["files"]
                      if e["path"] not in {f"db/{t}.parquet" for t in new_tables}]
        for e in m["files"]:
            if e["path"] == rel:
                e["sha256"], e["size"] = hashlib.sha256(data).hexdigest(), len(data)

    rewrite_manifest(backup_copy, older)
    out = _restored(tmp_path / "new", backup_copy)
    assert out.ok and out.migration_level == previous
    app = build(make_settings(tmp_path / "new"))
    try:
        applied = app.store.execute("SELECT max(version) FROM schema_migrations")[0][0]
        for t in new_tables:
            # new tables start empty, except what a migration backfills (0012: one
            # experiment for each name the restored runs hold)
            expected = (app.store.execute("SELECT count(DISTINCT experiment) FROM runs")
                        if t == "experiments" else [(0,)])
            assert app.store.execute(f"SELECT count(*) FROM {t}") == expected
        assert app.registry.aliases("churn") == {"champion": 1, "challenger": 2}
    finally:
        app.close()
    assert applied == newest


def test_a_backup_taken_during_writes_restores_with_an_intact_audit_chain(tmp_path: Path) -> None:
    """The export and the audit anchor come from one moment, however busy the store is."""
    import threading

    from appliance.runtime import build

    app = build(make_settings(tmp_path / "home"))
    stop = threading.Event()
    written = []

    def writer() -> None:
        while not stop.is_set():
            written.append(app.runs.start_external(name=f"r{len(written)}", experiment="busy",
                                                   params=None, tags=None, by=SYSTEM))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        while len(written) < 5:
            stop.wait(0.01)
        for n in range(3):
            app.backup.create(tmp_path / f"b{n}", by=SYSTEM)
    finally:
        stop.set()
        thread.join()
        app.close()
    for n in range(3):
        out = _restored(tmp_path / f"new{n}", tmp_path / f"b{n}")
        assert out.ok and out.audit.ok, out
        assert out.audit.events >= out.counts["runs"] > 0


def test_copying_and_restoring_a_backup_read_each_dataset_file_in_chunks(
        backup_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dataset versions larger than the chunk are streamed (read, hashed, written a chunk
    at a time), never read whole: the backup's memory does not grow with a version."""
    from appliance.backup import copy_backup, manifest

    chunk = 512
    monkeypatch.setattr(manifest, "_CHUNK", chunk)
    dataset = _dataset_parquet(backup_copy)
    assert (backup_copy / dataset).stat().st_size > 2 * chunk
    reads: dict[str, list[int]] = {}
    real_open = Path.open

    class Spy:
        def __init__(self, fh: Any, name: str) -> None:
            self._fh, self._name = fh, name

        def read(self, n: int = -1) -> bytes:
            data = self._fh.read(n)
            reads.setdefault(self._name, []).append(len(data) if n >= 0 else -1)
            return data

        def __getattr__(self, attr: str) -> Any:
            return getattr(self._fh, attr)

        def __enter__(self) -> Spy:
            return self

        def __exit__(self, *exc: object) -> None:
            self._fh.close()

    def spy_open(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        fh = real_open(self, mode, *args, **kwargs)
        return Spy(fh, self.name) if mode == "rb" and self.suffix == ".parquet" else fh

    monkeypatch.setattr(Path, "open", spy_open)
    monkeypatch.setattr(Path, "read_bytes", lambda self: (_ for _ in ()).throw(
        AssertionError(f"{self} read whole")) if self.suffix == ".parquet" else
        real_open(self, "rb").read())
    copy_backup(backup_copy, tmp_path / "copied")
    restored = _restored(tmp_path / "home", tmp_path / "copied")
    monkeypatch.undo()
    name = Path(dataset).name
    assert len(reads[name]) > 2 and max(reads[name]) <= chunk   # several chunks, none bigger
    assert -1 not in reads[name]
    assert restored.ok and restored.missing_files == []
    assert (tmp_path / "home" / dataset).read_bytes() == (backup_copy / dataset).read_bytes()
