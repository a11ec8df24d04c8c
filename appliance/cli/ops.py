"""CLI verbs for operating a home: backup and restore (added to ``appliance.cli``'s app)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from appliance.cli.common import Home, cli_settings, fail, os_user
from appliance.cli.output import Json, mapping, record, show, text
from appliance.errors import ApplianceError


@contextmanager
def _bar() -> Iterator[Any]:
    """A byte progress bar on stderr (stdout carries only the answer: JSON with --json)."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("backup", total=None)

        def update(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        yield update


def backup(
    path: Annotated[Path, typer.Argument(help="A new (or empty) folder to write the backup to.")],
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Write a consistent backup of the home (store, datasets, artifacts, jobs) to PATH."""
    from appliance.backup import check_destination, copy_backup
    from appliance.cli.backend import LocalBackend, RemoteBackend, open_backend
    from appliance.errors import NotFound
    from appliance.store.db import ProcessLock

    settings = cli_settings(home)
    try:
        check_destination(path.absolute())
        if ProcessLock.holder(settings.lock_path) is None and not settings.db_path.exists():
            raise NotFound(f"there is no store at {settings.db_path}: nothing to back up")
        with open_backend(settings) as backend, _bar() as progress:
            if isinstance(backend, RemoteBackend):
                progress(f"the server ({backend.where}) writes the backup", 0, 0)
                made = backend.client.create_backup()
                src = Path(made["path"])
                if not (src / "manifest.json").is_file():
                    raise NotFound(f"the server wrote its backup to {src}, which this machine "
                                   "cannot read; copy that folder from the server's host")
                out = copy_backup(src, path, progress).model_dump(mode="json")
                out["server_copy"] = str(src)
            else:
                assert isinstance(backend, LocalBackend)
                out = backend.app.backup.create(path, by=backend.who,
                                                progress=progress).model_dump(mode="json")
    except ApplianceError as exc:
        fail(exc)
    show(out, as_json, lambda b: [record(b, title="backup")])
    typer.secho(f"backup written to {out['path']} ({out['files']} files, {out['bytes']} bytes)",
                fg="green", err=True)


def restore(
    path: Annotated[Path, typer.Argument(help="A backup folder written by `appliance backup`.")],
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Restore the backup at PATH into an empty home (offline: no server may run there)."""
    from appliance.backup import restore as run_restore

    settings = cli_settings(home)
    try:
        with _bar() as progress:
            out = run_restore(settings, path, actor=f"local:{os_user()}",
                              progress=progress).model_dump(mode="json")
    except ApplianceError as exc:
        fail(exc)
    show(out, as_json, _restore_view)
    if not out["ok"]:
        typer.secho("restored, but the checks found problems (see above)", fg="red", err=True)
        raise typer.Exit(1)
    typer.secho(f"restored into {out['home']}; audit chain intact "
                f"({out['audit']['events']} events)", fg="green", err=True)


def _restore_view(out: dict[str, Any]) -> list[Any]:
    lines = [record({k: v for k, v in out.items() if not isinstance(v, dict | list)},
                    title="restore")]
    for key, value in out.items():
        if isinstance(value, dict):
            lines.append(record(value, title=key))
        elif isinstance(value, list) and value:
            lines.append(text(f"{key}: " + "; ".join(str(v) for v in value),
                              "red" if key == "problems" else None))
    return lines



def compact(
    keep_old: Annotated[bool, typer.Option(
        "--keep-old", help="Keep the old file beside the store as appliance.duckdb.pre-compact-"
                           "<UTC stamp> (it still holds the freed pages' bytes).")] = False,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Rewrite the store file without the pages deleted rows left (run after an erasure;
    offline: stop the server first). Row counts and the audit chain are checked first."""
    from appliance.backup.compact import compact as run_compact

    settings = cli_settings(home)
    try:
        with _bar() as progress:
            out = run_compact(settings, keep_old=keep_old, actor=f"local:{os_user()}",
                              progress=progress)
    except ApplianceError as exc:
        fail(exc)
    show(out.model_dump(mode="json"), as_json, _compact_view)
    typer.secho(f"compacted {out.path}: {out.bytes_before} -> {out.bytes_after} bytes, "
                f"{len(out.tables)} tables, {out.rows} rows, audit chain intact "
                f"({out.audit_events} events)", fg="green", err=True)


def _compact_view(out: dict[str, Any]) -> list[Any]:
    head = {k: v for k, v in out.items() if k != "tables"}
    head["rows"] = sum(out["tables"].values())
    return [record(head, title="compact"),
            mapping(out["tables"], "table", "rows", title="rows per table, copied and checked")]
