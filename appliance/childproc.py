"""What every worker child does to itself: cap its memory, die with its parent."""

from __future__ import annotations

import os
import resource
import threading
import time


def limit_memory(memory_mb: int) -> None:
    """Cap the address space (RLIMIT_AS) and turn off core files."""
    limit = int(memory_mb) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def watch_parent(parent_pid: int) -> None:
    """Exit as soon as the parent is gone (checked every second, busy or not).

    Not PR_SET_PDEATHSIG: it fires when the *thread* that spawned the child
    exits, and the server's threads come and go.
    """

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)
            time.sleep(1.0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
