"""`appliance backup` and `appliance restore`: local mode in-process, remote against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from appliance_test_support import ADMIN_PASSWORD, ServerProcess
from typer.testing import CliRunner, Result

from appliance.cli import app

from .conftest import Source, populate_light


def invoke(home: Path, *args: str, **extra: str) -> Result:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("APPLIANCE_")}
    env.update({"APPLIANCE_HOME": str(home), "APPLIANCE_ADMIN_PASSWORD": ADMIN_PASSWORD, **extra})
    return CliRunner().invoke(app, list(args), env=env)


def run_cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update({"APPLIANCE_HOME": str(home), **extra})
    return subprocess.run([sys.executable, "-m", "appliance", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def one_line_error(stderr: str, mentions: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and mentions in lines[0], stderr


def test_backup_then_restore_through_the_cli_in_local_mode(source: Source, tmp_path: Path) -> None:
    made = invoke(source.home, "backup", str(tmp_path / "b"), "--json")
    assert made.exit_code == 0, made.output
    out = json.loads(made.stdout)
    assert out["path"] == str(tmp_path / "b") and out["counts"]["model_versions"] == 2
    restored = invoke(tmp_path / "new", "restore", str(tmp_path / "b"), "--json")
    assert restored.exit_code == 0, restored.output
    report = json.loads(restored.stdout)
    assert report["ok"] and report["audit"]["ok"] and report["counts"]["dataset_versions"] == 2
    assert "audit chain intact" in restored.stderr
    listed = invoke(tmp_path / "new", "models", "list")
    assert listed.exit_code == 0 and "champion" in listed.stdout


def test_restore_of_a_corrupt_backup_exits_2_and_writes_nothing(backup_copy: Path,
                                                                tmp_path: Path) -> None:
    victim = next((backup_copy / "datasets" / "customers").iterdir())
    os.chmod(victim, 0o644)
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    out = invoke(tmp_path / "new", "restore", str(backup_copy))
    assert out.exit_code == 2
    one_line_error(out.stderr, "corrupt")
    assert not (tmp_path / "new").exists()


def test_backup_to_a_folder_that_is_not_empty_exits_2(source: Source, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("mine")
    out = invoke(source.home, "backup", str(tmp_path / "taken"))
    assert out.exit_code == 2
    one_line_error(out.stderr, "not empty")


def test_backup_of_a_home_without_a_store_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    out = invoke(tmp_path / "nohome", "backup", str(tmp_path / "b"))
    assert out.exit_code == 2
    one_line_error(out.stderr, "nothing to back up")
    assert not (tmp_path / "nohome").exists() and not (tmp_path / "b").exists()


def test_backup_goes_through_the_api_while_a_server_runs_and_restore_is_refused(
        tmp_path: Path, server_factory: Any) -> None:
    from appliance_test_support import make_settings

    from appliance.runtime import build

    seeded = build(make_settings(tmp_path / "home"))
    try:
        populate_light(seeded)
    finally:
        seeded.close()
    server: ServerProcess = server_factory(tmp_path / "home")
    with server.client() as c:
        token = c.token
    assert token
    env = {"APPLIANCE_PORT": str(server.port), "APPLIANCE_TOKEN": token}

    made = run_cli(server.home, "backup", str(tmp_path / "b"), "--json", **env)
    assert made.returncode == 0, made.stderr
    out = json.loads(made.stdout)
    assert Path(out["server_copy"]).parent == (server.home / "backups").resolve()
    assert out["path"] == str(tmp_path / "b") and out["counts"]["model_versions"] == 1
    with server.client() as c:
        assert [b["name"] for b in c.backups()] == [Path(out["server_copy"]).name]

    refused = invoke(server.home, "restore", str(tmp_path / "b"), **env)
    assert refused.exit_code == 2
    one_line_error(refused.stderr, f"running server (PID {server.proc.pid})")

    server.stop()
    restored = invoke(tmp_path / "new", "restore", str(tmp_path / "b"), "--json")
    assert restored.exit_code == 0, restored.output
    report = json.loads(restored.stdout)
    assert report["ok"] and report["counts"]["model_versions"] == 1 and report["counts"]["runs"] == 1
