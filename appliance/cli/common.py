"""What every CLI verb module shares: the ``--home`` option, settings, one-line failures.

A verb parses its arguments, reaches the server or the store through
:func:`call` (or :func:`~appliance.cli.backend.open_backend` when it needs the
backend for longer), prints through :mod:`appliance.cli.output`, and fails
through :func:`fail`: the error's message on stderr, exit code 2. Exit code 1
is left to verbs whose answer is a finding (a rejected file, a broken audit
chain).
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from appliance.config import Settings
from appliance.errors import ApplianceError

Home = Annotated[Path | None, typer.Option("--home", help="APPLIANCE_HOME (default ./data).")]


def fail(exc: ApplianceError) -> NoReturn:
    """Print the error's message in one red line on stderr and exit 2."""
    typer.secho(f"error: {exc.message}", fg="red", err=True)
    raise typer.Exit(2)


def cli_settings(home: Path | None = None, **overrides: Any) -> Settings:
    """Settings from the environment plus command-line overrides; a bad value exits 2."""
    from pydantic import ValidationError

    if home is not None:
        overrides["home"] = home
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        bad = "; ".join(
            f"APPLIANCE_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        typer.secho(f"error: bad setting: {bad}", fg="red", err=True)
        raise typer.Exit(2) from None


def os_user() -> str:
    """Who runs the command, for ``local:<user>`` in the audit log (the uid when unnamed)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
