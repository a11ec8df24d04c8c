"""``appliance serve``: the one process that owns the store.

One uvicorn worker (never ``--reload`` or several workers), the inbox
watcher and the scheduler, all in this process. A second serve on the same
home fails fast with "store is locked by PID n" and the first keeps serving.
"""

from __future__ import annotations

import logging
import sys

from appliance.config import Settings
from appliance.errors import StoreLocked

log = logging.getLogger("appliance")


def serve(settings: Settings) -> int:
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
        if appliance.store.degraded:
            print(f"\n  !!! STORE DEGRADED: {appliance.store.degraded_reason}\n",
                  file=sys.stderr, flush=True)
        appliance.start()
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
