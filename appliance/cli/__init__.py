"""The ``appliance`` command line: thin adapters over the services or the HTTP API.

``app`` (root verbs, in :mod:`appliance.cli.app`) gathers the verb groups of
:mod:`~appliance.cli.registry` (train, runs, models, predict, drift, jobs),
:mod:`~appliance.cli.ops` (backup, restore), :mod:`~appliance.cli.erasure` (erase,
erasures) and :mod:`~appliance.cli.install`
(migrate, bundle). Where a verb runs, the live server or the store itself, is
:mod:`~appliance.cli.backend`'s business; how it prints (tables for people,
``--json`` for scripts) is :mod:`~appliance.cli.output`'s.
"""

from appliance.cli.app import app, main

__all__ = ["app", "main"]
