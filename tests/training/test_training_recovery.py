"""Training-run recovery in scale-out: only runs whose heartbeat expired (a dead host's),
never a run with a fresh heartbeat (another live host is training it)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any

from appliance.domain.principal import SYSTEM
from appliance.domain.runs import RunKind, RunStatus
from appliance.store.tables import RunRow


def test_recovery_takes_a_run_whose_heartbeat_expired_and_leaves_a_fresh_one_alone(
        tmp_path: Path, settings_for: Any) -> None:
    from appliance.runtime import build

    app = build(settings_for(tmp_path / "home"))
    try:
        ids = []
        for name in ("live", "dead"):
            row = RunRow(name=name, kind=RunKind.train.value, status=RunStatus.queued.value,
                         experiment=name, dataset="gone", dataset_version=1, spec="name: x",
                         seed=0, params={}, tags={}, metrics={})
            app.runs.queue(row, by=SYSTEM)
            app.runs.transition(row.id, RunStatus.running)  # as another host's process left it
            ids.append(row.id)
        live, dead = ids
        old = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)
        app.store.execute("UPDATE runs SET heartbeat_at = :t WHERE id = :id",
                          {"t": old, "id": str(dead)})
        app.training.recover(stale_before=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=60))
        deadline = time.monotonic() + 30
        while app.runs.show(str(dead)).status in ("running", "queued"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert app.runs.show(str(live)).status == "running"  # a live host's: untouched
        actions = [e.action for e in app.auditor.recent(limit=50) if e.target == f"run:{dead}"]
        assert "run.interrupted" in actions and "run.queued" in actions  # re-queued once
        assert app.runs.show(str(dead)).status == "failed"  # its dataset is gone
    finally:
        app.close()
