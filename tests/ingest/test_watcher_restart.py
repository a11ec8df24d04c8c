"""The inbox watcher starts again after a stop: a host that loses the leader lease stops
it, and starts it when it leads again (docs/scale-out.md, "Leader lease")."""

from __future__ import annotations

import time
from typing import Any

from appliance.ingest.watcher import InboxWatcher


def test_a_stopped_watcher_started_again_polls_the_inbox_again(appliance_app: Any) -> None:
    watcher = InboxWatcher(appliance_app.ingest, inbox_dir=appliance_app.settings.inbox_dir,
                           claimed_dir=appliance_app.settings.claimed_dir, poll_seconds=0.05,
                           min_age_seconds=0)
    watcher.start()
    watcher.stop()
    polls = watcher.heartbeat["polls"]
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while watcher.heartbeat["polls"] <= polls + 2:
            assert time.monotonic() < deadline, "the restarted watcher never polled"
            time.sleep(0.05)
    finally:
        watcher.stop()
