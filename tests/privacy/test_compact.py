"""`appliance compact`: after an erasure the erased value's bytes leave the store file's freed
pages; the compacted store opens with the same rows and an intact audit chain."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from cli_testing import invoke
from erasure_data import add_version, csv_of, home_of, log_predictions

from appliance.domain.principal import Principal
from appliance.domain.privacy import Condition, ErasureRequest
from appliance.domain.roles import Role
from appliance.errors import Conflict, NotFound

ADMIN = Principal(username="admin", role=Role.admin)
# long and unique: its bytes appear nowhere in a home unless this subject's rows put them there
SUBJECT = "subject-3f9c2a7e-erase-me-" + "q8Zr" * 12


def _files_holding(home: Path, value: bytes) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*")
                  if p.is_file() and value in p.read_bytes())


def _populate(app: Any) -> None:
    add_version(app, "a.csv", csv_of(["c1", SUBJECT, "c3"]))
    at = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    log_predictions(app, [(f"r{i}", {"customer_id": SUBJECT if i % 50 == 0 else f"c{i}",
                                     "n": i}) for i in range(400)], at)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A home whose subject was erased through the service, closed (the server stopped)."""
    from appliance_test_support import make_settings

    from appliance.runtime import build

    app = build(make_settings(tmp_path_factory.mktemp("compact") / "erased"))
    try:
        _populate(app)
        report = app.erasure.erase(ErasureRequest(
            where=[Condition(column="customer_id", value=SUBJECT)]), by=ADMIN)
        assert report.predictions_removed == 8 and report.rows_removed == 1
        assert any("appliance compact" in s for s in report.next_steps)
        counts = {t: app.store.execute(f'SELECT count(*) FROM "{t}"')[0][0]
                  for t in ("predictions", "labels", "audit_events", "dataset_versions")}
    finally:
        app.close()
    return home_of(app), counts


def _erased_home(template: tuple[Path, dict[str, int]],
                 tmp_path: Path) -> tuple[Path, tuple[Any, dict[str, int]]]:
    """A copy of the template home, each test its own."""
    from appliance_test_support import make_settings

    home = tmp_path / "erased"
    shutil.copytree(template[0], home)
    return home, (make_settings(home), dict(template[1]))


def test_compact_after_erasure_leaves_no_byte_of_the_value_in_the_home(
        template: Any, tmp_path: Path) -> None:
    from appliance.audit import Auditor
    from appliance.backup.compact import compact
    from appliance.store.compact import table_counts
    from appliance.store.db import Store

    home, (settings, counts) = _erased_home(template, tmp_path)
    value = SUBJECT.encode()
    # the erasure removed every row, but the deleted rows' bytes are still in the store file
    assert _files_holding(home, value) == ["appliance.duckdb"]
    tables_before = table_counts(settings.db_path)
    size_before = settings.db_path.stat().st_size

    out = compact(settings, actor="local:tester")

    assert _files_holding(home, value) == []
    assert not Path(str(settings.db_path) + ".wal").exists()
    assert out.tables == tables_before and out.kept_old is None
    assert out.bytes_before == size_before and out.bytes_after == settings.db_path.stat().st_size
    assert list(home.glob(".compact-*")) == [] and list(home.glob("*.pre-compact-*")) == []
    store = Store(settings.db_path, lock_path=settings.lock_path).open()
    try:
        chain = Auditor(store, home / "audit.head").verify()
        assert chain.ok and chain.events == counts["audit_events"] + 1
        for table, n in counts.items():
            want = n + 1 if table == "audit_events" else n
            assert store.execute(f'SELECT count(*) FROM "{table}"')[0][0] == want
        last = store.execute("SELECT action, actor, after FROM audit_events ORDER BY seq DESC "
                             "LIMIT 1")[0]
        assert last[0] == "store.compact" and last[1] == "local:tester"
        assert last[2]["rows"] == out.rows and last[2]["bytes"] > 0
    finally:
        store.close()
    after = table_counts(settings.db_path)
    assert after == {**tables_before, "audit_events": tables_before["audit_events"] + 1}


def test_compact_keeps_the_old_file_when_asked_and_removes_a_crashed_copy(template: Any, tmp_path: Path) -> None:
    from appliance.backup.compact import compact

    home, (settings, _) = _erased_home(template, tmp_path)
    (home / ".compact-20260101T000000Z.duckdb").write_bytes(b"a copy a crash left")
    out = compact(settings, keep_old=True)
    assert list(home.glob(".compact-*")) == []
    assert out.kept_old is not None and Path(out.kept_old).parent == home
    assert Path(out.kept_old).name.startswith("appliance.duckdb.pre-compact-")
    assert _files_holding(home, SUBJECT.encode()) == [Path(out.kept_old).name]


def test_compact_refuses_while_a_server_holds_the_store(appliance_app: Any) -> None:
    from appliance.backup.compact import compact

    db = appliance_app.settings.db_path
    before = db.read_bytes()
    with pytest.raises(Conflict, match=r"running server.*appliance stop"):
        compact(appliance_app.settings)
    assert db.read_bytes() == before
    assert list(db.parent.glob(".compact-*")) == []


def test_compact_refuses_postgres_naming_vacuum_full(tmp_path: Path) -> None:
    from appliance_test_support import make_settings

    from appliance.backup.compact import compact

    settings = make_settings(tmp_path / "home",
                             store_url="postgresql+psycopg://u@localhost:5/appliance")
    with pytest.raises(Conflict, match="VACUUM FULL"):
        compact(settings)


def test_compact_without_a_store_is_not_found(tmp_path: Path) -> None:
    from appliance_test_support import make_settings

    from appliance.backup.compact import compact

    with pytest.raises(NotFound, match="nothing to compact"):
        compact(make_settings(tmp_path / "empty"))


def test_cli_compact_prints_a_table_then_json_and_refuses_in_one_line(
        template: Any, tmp_path: Path, appliance_app: Any) -> None:
    home, _ = _erased_home(template, tmp_path)
    table = invoke(home, "compact")
    assert table.exit_code == 0, table.output
    assert "rows per table" in table.output and "predictions" in table.output
    as_json = invoke(home, "compact", "--json")
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.stdout)
    assert body["tables"]["predictions"] == 392 and body["kept_old"] is None
    held = invoke(home_of(appliance_app), "compact")
    assert held.exit_code == 2
    assert "running server" in held.stderr and "appliance stop" in held.stderr
