"""``appliance serve``: the one process that owns the store.

One uvicorn worker (never ``--reload`` or several workers), the inbox
watcher and the scheduler, all in this process. A second serve on the same
home fails fast with "store is locked by PID n" and the first keeps serving.
"""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

from appliance.config import Settings
from appliance.errors import StoreLocked

log = logging.getLogger("appliance")


class _StopRequest:
    """SIGTERM/SIGINT while starting or after uvicorn is done: note it, stop cleanly.

    Raising from a signal handler is fragile (it can land inside a C callback
    that swallows it), so the handler only sets a flag; ``_serve`` checks it
    between start-up steps and before handing over to uvicorn, which installs
    its own handlers while it serves and, once shut down, re-raises the signal
    into this handler (the default SIGTERM action would kill the process
    before the store is closed: no CHECKPOINT, a stale PID in the lock file).
    A second signal takes the default action: force quit.
    """

    def __init__(self) -> None:
        self.requested = False
        self.server: Any = None  # the uvicorn server, once there is one

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.requested:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        self.requested = True
        if self.server is not None:  # landed just before uvicorn took the signals over
            self.server.should_exit = True


def serve(settings: Settings) -> int:
    """Run until stopped; 0 after a clean stop by SIGTERM/SIGINT."""
    stop = _StopRequest()
    stop.install()
    return _serve(settings, stop)


def _serve(settings: Settings, stop: _StopRequest) -> int:
    import uvicorn

    from appliance.api.app import create_app
    from appliance.api.edge import keep_alive_after_errors
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
        if stop.requested:
            return 0
        appliance.start()
        if stop.requested:
            return 0
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
        api = create_app(appliance)
        # loop and http stay "auto": uvloop and httptools when installed (both are locked)
        config = uvicorn.Config(
            keep_alive_after_errors(api), host=settings.host, port=settings.port, workers=1,
            log_level=settings.log_level.lower(), access_log=False, reload=False,
        )
        config.load()
        api.state.http_parser = _parser_name(config.http_protocol_class)
        server = uvicorn.Server(config)
        stop.server = server
        if stop.requested:
            return 0
        log.info("serving %s on http://%s:%d", settings.home, settings.host, settings.port)
        server.run()
        return 0 if server.started or stop.requested else 1
    finally:
        appliance.close()


def _parser_name(protocol: Any) -> str:
    """``httptools`` or ``h11`` from uvicorn's protocol class (``...httptools_impl``)."""
    module = str(getattr(protocol, "__module__", ""))
    return module.rsplit(".", 1)[-1].removesuffix("_impl") or str(protocol)
