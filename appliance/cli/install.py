"""CLI verbs for installing and upgrading: migrate and bundle (added to ``appliance.cli``'s app)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from appliance.cli.common import Home, cli_settings, fail
from appliance.cli.output import Json, dump
from appliance.errors import ApplianceError


def migrate(home: Home = None, as_json: Json = False) -> None:
    """Upgrade the store's schema to this release (stop the server first); refuses a newer store.

    With APPLIANCE_STORE_URL on PostgreSQL: creates or upgrades that database's schema (servers
    refuse to start until it is current); two at once are safe, one waits for the other."""
    from rich.console import Console
    from rich.table import Table

    from appliance.store.db import migrate as run

    settings = cli_settings(home)
    try:
        report = run(settings.db_path, settings.lock_path, settings.store_url)
    except ApplianceError as exc:
        fail(exc)
    if as_json:
        dump(report)
        return
    table = Table("migration", "status", title=f"store {report.path}")
    applied = {m.number for m in report.applied}
    for m in report.known:
        table.add_row(str(m), "applied now" if m.number in applied else "already applied")
    Console().print(table)
    before = "none" if report.level_before is None else f"{report.level_before:04d}"
    typer.secho(f"schema {before} -> {report.level:04d} ({len(report.applied)} applied)",
                fg="green", err=True)


def bundle(
    out: Annotated[Path, typer.Option("--out", help="A new (or empty) folder for the bundle.")],
    extras: Annotated[str, typer.Option(help="Locked extras to include, e.g. gpu or test.")] = "",
    wheel: Annotated[Path | None, typer.Option(help="The appliance wheel (default: built from "
                                                      "the source checkout).")] = None,
    as_json: Json = False,
) -> None:
    """Write an offline bundle: the locked wheels, the appliance wheel, install.sh and SHA256SUMS."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from rich.table import Table

    from appliance.bundle import build_bundle
    from appliance.lockfile import parse_extras

    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      transient=True, console=Console(stderr=True)) as bar:
            task = bar.add_task("bundle", total=None)

            def update(stage: str, done: int, total: int) -> None:
                bar.update(task, description=stage, completed=done, total=total)

            report = build_bundle(out, extras=parse_extras(extras), wheel=wheel, progress=update)
    except ApplianceError as exc:
        fail(exc)
    if as_json:
        dump(report)
        return
    table = Table("bundle", "")
    for key, value in dataclasses.asdict(report).items():
        table.add_row(key, ", ".join(value) if isinstance(value, tuple) else str(value))
    Console().print(table)
    typer.secho(f"carry {report.path} across; there: ./install.sh /opt/appliance. "
                f"SHA256SUMS digest {report.sha256sums}", fg="green", err=True)
