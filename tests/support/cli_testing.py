"""Running the ``appliance`` CLI in tests: in-process (typer's CliRunner) on a home, or
as a real ``python -m appliance`` process (to talk to a running server)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from appliance_test_support import ADMIN_PASSWORD
from typer.testing import CliRunner, Result

from appliance.cli import app

SMALL_JOB = """
name: churn
dataset: customers
target: churned
model: {kind: LogisticRegression, params: {C: 1.0}}
split: {test_size: 0.25, seed: 1}
metric: roc_auc
"""


def cli_env(home: Path, **extra: str | None) -> dict[str, str | None]:
    """Env for CliRunner: no APPLIANCE_* from the outer shell, then the home and ``extra``."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("APPLIANCE_")}
    env.update({"APPLIANCE_HOME": str(home), "APPLIANCE_ADMIN_PASSWORD": ADMIN_PASSWORD})
    env.update(extra)
    return env


def invoke(home: Path, *args: str, **extra: str | None) -> Result:
    return CliRunner().invoke(app, list(args), env=cli_env(home, **extra))


def run_cli(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """``python -m appliance ARGS`` as a real process (for talking to a running server)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    env.update({"APPLIANCE_HOME": str(home), **extra})
    return subprocess.run([sys.executable, "-m", "appliance", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def assert_one_line_error(stderr: str, *, mentions: str) -> None:
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ") and mentions in lines[0], stderr


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
