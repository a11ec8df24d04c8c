"""Named crash points for the kill -9 recovery tests (DESIGN §7).

``APPLIANCE_FAILPOINT=<name>`` makes the process SIGKILL itself the first time
it reaches ``failpoint("<name>")``: the same abrupt death as ``kill -9``, at a
known place. Unset (always, in production) a failpoint is one dict lookup.
"""

from __future__ import annotations

import os
import signal

_ENV = "APPLIANCE_FAILPOINT"


def failpoint(name: str) -> None:
    if os.environ.get(_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
