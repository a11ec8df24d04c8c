"""``appliance serve``: the one process that owns the store.

One uvicorn worker (never ``--reload`` or several workers), the inbox
watcher and the scheduler, all in this process. A second serve on the same
home fails fast with "store is locked by PID n" and the first keeps serving.
"""

from __future__ import annotations

import logging
import signal
import sys

from appliance.config import Settings
from appliance.errors import StoreLocked

log = logging.getLogger("appliance")


class _Stopped(BaseException):
    """Raised by the SIGTERM/SIGINT handler to unwind ``serve`` into a clean close."""


def _stop_on_signals() -> None:
    """Make SIGTERM/SIGINT unwind ``serve`` through its ``finally`` (store closed, lock freed).

    uvicorn catches both while it serves and, once shut down, raises the signal
    again with the handler it found; with the default SIGTERM action that killed
    the process before the appliance was closed (no CHECKPOINT, a stale PID in
    the lock file). Before uvicorn starts (recovery can take a while) the handler
    stops start-up the same way. A second signal while closing takes the default
    action: force quit.
    """

    def handler(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        raise _Stopped(signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def serve(settings: Settings) -> int:
    """Run until stopped; 0 after a clean stop by SIGTERM/SIGINT."""
    _stop_on_signals()
    try:
        return _serve(settings)
    except _Stopped:
        return 0


def _serve(settings: Settings) -> int:
    import uvicorn

    from appliance.api.app import create_app
    from appliance.runtime import build

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        appliance = build(settings)
    except StoreLocked as exc:
        print(f"appliance serve: {exc.message}", file=sys.stderr)
        return 3
    try:
        if appliance.store.degraded:
            print(f"\n  !!! STORE DEGRADED: {appliance.store.degraded_reason}\n",
                  file=sys.stderr, flush=True)
        appliance.start()
        if appliance.bootstrap_token:
            banner = (
                "\n"
                "  No users yet and APPLIANCE_ADMIN_PASSWORD is not set.\n"
                "  One-time bootstrap token (admin, valid 24 h, revoked once a user exists):\n"
                f"    {appliance.bootstrap_token}\n"
                "  Create the first admin with it:\n"
                "    APPLIANCE_TOKEN=<token> appliance users add admin --role admin\n"
            )
            print(banner, file=sys.stderr, flush=True)
        app = create_app(appliance)
        config = uvicorn.Config(
            app, host=settings.host, port=settings.port, workers=1,
            log_level=settings.log_level.lower(), access_log=False, reload=False,
        )
        server = uvicorn.Server(config)
        log.info("serving %s on http://%s:%d", settings.home, settings.host, settings.port)
        server.run()
        return 0 if server.started else 1
    finally:
        appliance.close()
