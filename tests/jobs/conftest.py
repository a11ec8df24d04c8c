from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from scheduler_clock import Rig


@pytest.fixture
def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    """A job service on a real DuckDB file whose scheduler runs on a stepped clock."""
    r = Rig(tmp_path, monkeypatch)
    (tmp_path / "jobs").mkdir()
    yield r
    r.close()
