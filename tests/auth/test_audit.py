"""The audit log is hash-chained: edits, deletions and truncation are detected."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from appliance.cli import app as cli


def _some_events(appliance_app: Any) -> None:
    for i in range(3):
        appliance_app.auth.add_user(f"user{i}", "password123", "viewer", by="test")


def test_verify_audit_chain_intact_after_mutations(appliance_app: Any) -> None:
    _some_events(appliance_app)
    out = appliance_app.auditor.verify()
    assert out["ok"] and out["events"] >= 4  # admin bootstrap + three users


def test_verify_audit_detects_an_edited_row(appliance_app: Any) -> None:
    _some_events(appliance_app)
    appliance_app.store.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
    out = appliance_app.auditor.verify()
    assert not out["ok"]
    assert any(p["seq"] == 2 and "hash" in p["problem"] for p in out["problems"])


def test_verify_audit_detects_a_deleted_row(appliance_app: Any) -> None:
    _some_events(appliance_app)
    appliance_app.store.execute("DELETE FROM audit_events WHERE seq = 2")
    out = appliance_app.auditor.verify()
    assert not out["ok"]
    assert any(p["seq"] == 3 for p in out["problems"])


def test_verify_audit_detects_truncated_newest_events(appliance_app: Any) -> None:
    _some_events(appliance_app)
    appliance_app.store.execute("DELETE FROM audit_events WHERE seq = (SELECT max(seq) FROM audit_events)")
    assert not appliance_app.auditor.verify()["ok"]


def test_audit_verify_command_fails_after_a_hand_edit(appliance_app: Any) -> None:
    _some_events(appliance_app)
    appliance_app.store.execute("UPDATE audit_events SET after = '{\"role\": \"admin\"}' WHERE seq = 3")
    home = appliance_app.settings.home
    appliance_app.close()
    result = CliRunner().invoke(cli, ["audit", "verify", "--home", str(home)])
    assert result.exit_code == 1, result.output
    assert "BROKEN" in result.output
