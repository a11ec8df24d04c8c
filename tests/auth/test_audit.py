"""The audit log is hash-chained: edits, deletions and truncation are detected,
also while the server was down (the start-up check against the anchor)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import logged_in, make_settings
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from appliance.api.app import create_app
from appliance.cli import app as cli
from appliance.config import Settings
from appliance.errors import StoreUnavailable
from appliance.runtime import build
from appliance.store.db import Store


def _some_events(appliance_app: Any) -> None:
    for i in range(3):
        appliance_app.auth.add_user(f"user{i}", "password123", "viewer", by="test")


def test_verify_audit_chain_intact_after_mutations(appliance_app: Any) -> None:
    _some_events(appliance_app)
    out = appliance_app.auditor.verify()
    assert out.ok and out.events >= 4  # admin bootstrap + three users


def test_verify_audit_detects_an_edited_row(appliance_app: Any) -> None:
    _some_events(appliance_app)
    appliance_app.store.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    out = appliance_app.auditor.verify()
    assert not out.ok
    assert any(p.seq == 2 and "hash" in p.problem for p in out.problems)


def test_verify_audit_detects_a_deleted_row(appliance_app: Any) -> None:
    _some_events(appliance_app)
    appliance_app.store.execute("DELETE FROM audit_events WHERE seq = 2")
    out = appliance_app.auditor.verify()
    assert not out.ok
    assert any(p.seq == 3 for p in out.problems)


def test_verify_audit_detects_truncated_newest_events(appliance_app: Any) -> None:
    _some_events(appliance_app)
    appliance_app.store.execute("DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")
    assert not appliance_app.auditor.verify().ok


def test_audit_verify_command_fails_after_a_hand_edit(appliance_app: Any) -> None:
    _some_events(appliance_app)
    appliance_app.store.execute("UPDATE audit_events SET after = '{\"role\": \"admin\"}' WHERE seq = 3")
    home = appliance_app.settings.home
    appliance_app.close()
    result = CliRunner().invoke(cli, ["audit", "verify", "--home", str(home)])
    assert result.exit_code == 1, result.output
    assert "BROKEN" in result.output


# -- the anchor at start: truncation while the server was down ---------------------------

_DIE_BETWEEN_COMMIT_AND_ANCHOR = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from appliance_test_support import make_settings
from appliance.runtime import build
app = build(make_settings(Path(sys.argv[1])))  # a fresh home: dies at the admin's event
app.auth.add_user("late", "password123", "viewer", by="test")  # an existing one: dies here
"""


def _home_with_events(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path / "home")
    app = build(settings)
    try:
        _some_events(app)
    finally:
        app.close()
    return settings


def _sql_on_closed_home(settings: Settings, sql: str) -> None:
    """What someone with the files does while no server runs."""
    with Store(settings.db_path, lock_path=settings.lock_path) as store:
        store.execute(sql)


def test_restart_after_the_newest_events_were_deleted_degrades_the_store(tmp_path: Path) -> None:
    settings = _home_with_events(tmp_path)
    anchor = (settings.home / "audit.head").read_bytes()
    _sql_on_closed_home(settings, "DELETE FROM audit_events WHERE seq >= 3")

    app = build(settings)
    try:
        assert app.store.degraded and "audit.head" in (app.store.degraded_reason or "")
        assert app.metrics.store_degraded._value.get() == 1
        with pytest.raises(StoreUnavailable, match="anchor"):
            app.auth.add_user("mallory", "password123", "admin", by="test")
        out = app.auditor.verify()
        assert not out.ok and "deleted" in out.problems[0].problem
    finally:
        app.close()
    assert (settings.home / "audit.head").read_bytes() == anchor  # the evidence is kept


def test_restart_after_the_anchor_was_deleted_degrades_the_store(tmp_path: Path) -> None:
    settings = _home_with_events(tmp_path)
    (settings.home / "audit.head").unlink()
    app = build(settings)
    try:
        assert app.store.degraded and "missing" in (app.store.degraded_reason or "")
        out = app.auditor.verify()
        assert not out.ok and any("missing" in p.problem for p in out.problems)
    finally:
        app.close()


def test_restart_after_the_newest_events_were_replaced_degrades_the_store(tmp_path: Path) -> None:
    settings = _home_with_events(tmp_path)
    _sql_on_closed_home(settings, "UPDATE audit_events SET hash = repeat('a', 64) "
                                  "WHERE seq = (SELECT max(seq) FROM audit_events)")
    app = build(settings)
    try:
        assert app.store.degraded and "replaced" in (app.store.degraded_reason or "")
    finally:
        app.close()


def test_restart_with_an_anchor_behind_an_intact_log_catches_it_up(tmp_path: Path) -> None:
    settings = _home_with_events(tmp_path)
    head = settings.home / "audit.head"
    older = head.read_bytes()
    app = build(settings)
    try:
        _some_events_more(app)
    finally:
        app.close()
    head.write_bytes(older)  # as after a kill -9 between a commit and its anchor

    app = build(settings)
    try:
        assert not app.store.degraded, app.store.degraded_reason
        assert app.auditor.verify().ok
        newest = app.auditor.recent(limit=1)[0]
        assert json.loads(head.read_text()) == {"seq": newest.seq, "hash": newest.hash}
    finally:
        app.close()


def test_restart_with_an_anchor_behind_an_edited_tail_degrades_the_store(tmp_path: Path) -> None:
    settings = _home_with_events(tmp_path)
    head = settings.home / "audit.head"
    older = head.read_bytes()
    app = build(settings)
    try:
        _some_events_more(app)
    finally:
        app.close()
    head.write_bytes(older)
    _sql_on_closed_home(settings, "UPDATE audit_events SET actor = 'mallory' "
                                  "WHERE seq = (SELECT max(seq) FROM audit_events)")
    app = build(settings)
    try:
        assert app.store.degraded and "hash does not match" in (app.store.degraded_reason or "")
    finally:
        app.close()


@pytest.mark.parametrize("fresh", [True, False], ids=["first-event", "later-event"])
def test_kill_9_between_a_commit_and_its_anchor_restarts_clean(tmp_path: Path, fresh: bool) -> None:
    settings = make_settings(tmp_path / "home") if fresh else _home_with_events(tmp_path)
    env = {**os.environ, "APPLIANCE_FAILPOINT": "audit.before_anchor"}
    done = subprocess.run([sys.executable, "-c", _DIE_BETWEEN_COMMIT_AND_ANCHOR,
                           str(settings.home), str(Path(__file__).parents[1] / "support")],
                          env=env, timeout=120, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]

    app = build(settings)
    try:
        assert not app.store.degraded, app.store.degraded_reason
        assert app.auditor.verify().ok
        expected = "admin" if fresh else "late"
        assert expected in {u.username for u in app.auth.list_users()}
    finally:
        app.close()


def test_audit_verify_route_reports_the_anchor_finding(tmp_path: Path) -> None:
    settings = _home_with_events(tmp_path)
    _sql_on_closed_home(settings, "DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")
    app = build(settings)
    try:
        client = logged_in(TestClient(create_app(app)))  # a degraded store still lets people in
        assert client.get("/healthz").json()["status"] == "degraded"
        out = client.get("/api/v1/audit/verify").json()
        assert out["ok"] is False and out["problems"][0]["problem"].startswith("events after")
    finally:
        app.close()


def test_audit_reanchor_records_the_finding_and_clears_the_degraded_start(tmp_path: Path) -> None:
    settings = _home_with_events(tmp_path)
    _sql_on_closed_home(settings, "DELETE FROM audit_events WHERE seq >= 3")  # of 4
    home = str(settings.home)
    result = CliRunner().invoke(cli, ["audit", "reanchor", "--yes", "--home", home])
    assert result.exit_code == 0, result.output

    app = build(settings)
    try:
        assert not app.store.degraded, app.store.degraded_reason
        assert app.auditor.verify().ok
        event = app.auditor.recent(limit=1)[0]
        assert event.action == "audit.reanchor" and event.seq == 3
        assert event.before["anchor"]["seq"] == 4
        assert "deleted" in event.after["problems"][0]["problem"]
    finally:
        app.close()
    again = CliRunner().invoke(cli, ["audit", "reanchor", "--yes", "--home", home])
    assert again.exit_code == 2 and "nothing to accept" in again.output


def test_verify_audit_reports_a_missing_anchor(appliance_app: Any) -> None:
    _some_events(appliance_app)
    (appliance_app.settings.home / "audit.head").unlink()
    out = appliance_app.auditor.verify()
    assert not out.ok and "missing" in out.problems[0].problem


def test_verify_audit_detects_an_inserted_event_sharing_a_seq(appliance_app: Any) -> None:
    _some_events(appliance_app)
    appliance_app.store.execute(
        "INSERT INTO audit_events SELECT uuid(), seq, created_at, 'mallory', action, target, "
        "before, after, prev_hash, hash FROM audit_events WHERE seq = 2")
    out = appliance_app.auditor.verify()
    assert not out.ok and any(p.seq == 2 for p in out.problems)


def _some_events_more(app: Any) -> None:
    for i in range(3):
        app.auth.add_user(f"more{i}", "password123", "viewer", by="test")
