"""The trainer's files outside the store: the commit of the jobs folder a run was defined
in, and the tail of a training child's log."""

from __future__ import annotations

import subprocess
from pathlib import Path


def log_tail(path: Path, limit: int = 20_000) -> str:
    """The last ``limit`` bytes of a log, as text ("" when it cannot be read)."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", errors="replace")


def git_commit(folder: Path) -> str | None:
    """The commit of the jobs folder's repository, when it is one (DESIGN: 'git commit if any')."""
    if not (folder / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
