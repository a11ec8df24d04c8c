"""The ``appliance`` command line: thin adapters over services or the HTTP API."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from appliance.cli.backend import backend_for, call
from appliance.cli.common import Home, cli_settings, fail, os_user
from appliance.cli.output import Json, record, rows, show, text
from appliance.errors import ApplianceError

app = typer.Typer(
    help="The appliance: file-drop ingestion, data contracts, lineage and audit on one host.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
datasets_app = typer.Typer(help="Datasets, versions and contracts.", no_args_is_help=True)
users_app = typer.Typer(help="Users and API tokens.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")


def _dataset(name: str) -> str:
    """Check a dataset name before it reaches a path or a URL (exit 2 when it is bad)."""
    from appliance.domain.names import check_dataset_name

    try:
        return check_dataset_name(name)
    except ApplianceError as exc:
        fail(exc)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (APPLIANCE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (APPLIANCE_PORT).")] = None,
    home: Home = None,
) -> None:
    """Run the API, inbox watcher and scheduler: the one process that owns the store."""
    from appliance.server import serve as run

    raise typer.Exit(run(cli_settings(home, host=host, port=port)))


@app.command()
def up(
    demo: Annotated[bool, typer.Option(help="Seed demo data and keep new demo files flowing.")] = False,
    home: Home = None,
) -> None:
    """Run serve and the console as supervised children (the container's entrypoint)."""
    from appliance.supervisor import run_up

    raise typer.Exit(run_up(cli_settings(home), demo=demo))


@app.command()
def console(
    api_url: Annotated[str | None, typer.Option(help="API base URL (APPLIANCE_API_URL).")] = None,
    port: Annotated[int | None, typer.Option(help="Console port (APPLIANCE_CONSOLE_PORT).")] = None,
) -> None:
    """Run the Streamlit console alone against an API URL."""
    from appliance.supervisor import console_command

    settings = cli_settings(api_url=api_url, console_port=port)
    cmd, env = console_command(settings)
    os.execvpe(cmd[0], cmd, env)  # noqa: S606 - replaces this process on purpose


@app.command()
def init(
    demo: Annotated[bool, typer.Option(help="Copy the example jobs and drop the sample data.")] = False,
    home: Home = None,
) -> None:
    """Create the home folders (and, with --demo, seed example jobs and data)."""
    from appliance.demo import seed_home

    settings = cli_settings(home)
    settings.ensure_dirs()
    for line in seed_home(settings, demo=demo):
        typer.echo(line)


@app.command()
def ingest(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name.")],
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Ingest FILE into DATASET through the same path as the inbox."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    _dataset(dataset)
    try:
        # The bar goes to stderr: stdout carries only the answer (JSON with --json, for scripts).
        with backend_for(home) as backend, Progress(
            "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
            TransferSpeedColumn(), transient=True, console=Console(stderr=True),
        ) as bar:
            task = bar.add_task(f"ingesting {file.name}", total=file.stat().st_size)
            out = backend.ingest(file, dataset, lambda n: bar.advance(task, n))
    except ApplianceError as exc:
        fail(exc)
    show(out, as_json, _ingest_view)
    if out.get("outcome") not in ("accepted", "recovered"):
        raise typer.Exit(1)


def _ingest_view(out: dict[str, Any]) -> list[Any]:
    ok = out.get("outcome") in ("accepted", "recovered")
    return [record(out, title=f"{out.get('file_name') or 'file'}: {out.get('outcome')}"),
            text(f"{out.get('dataset')} v{out.get('version')}" if ok and out.get("version")
                 else f"not accepted: {out.get('message') or out.get('reason') or '-'}",
                 "green" if ok else "red")]


@datasets_app.command("list")
def datasets_list(as_json: Json = False, home: Home = None) -> None:
    """List datasets with their newest and current (accepted) versions."""
    found = call(home, lambda backend: backend.datasets())
    show(found, as_json, lambda items: [rows(
        [{**r, "current": r.get("current_version"), "latest": r.get("latest_version"),
          "contract": r.get("contract_version")} for r in items],
        ["name", "versions", "current", "latest", "contract", "rows"])])


@datasets_app.command("show")
def datasets_show(name: str, as_json: Json = False, home: Home = None) -> None:
    """Show a dataset and its versions."""
    _dataset(name)
    out = call(home, lambda backend: {**backend.dataset(name), "version_list": backend.versions(name)})
    show(out, as_json, _dataset_view)


def _dataset_view(out: dict[str, Any]) -> list[Any]:
    head = {k: v for k, v in out.items() if k != "version_list" and not isinstance(v, list | dict)}
    return [record(head, title=f"dataset {out.get('name')}"),
            rows(out.get("version_list") or [],
                 ["number", "status", "rows", "contract_version", "source_file", "created_at",
                  "report_headline"],
                 title="versions")]


@datasets_app.command("contract")
def datasets_contract(
    name: str,
    set_file: Annotated[Path | None, typer.Option("--set", exists=True, dir_okay=False,
                                                  help="Store this YAML as a new contract version.")] = None,
    home: Home = None,
) -> None:
    """Print the current contract (YAML), or store a new version with --set FILE."""
    _dataset(name)
    try:
        with backend_for(home) as backend:
            if set_file is not None:
                out = backend.set_contract(name, set_file.read_text())
                typer.echo(f"contract v{out['version']} stored for {name}")
                return
            typer.echo(backend.contract(name)["yaml"])
    except ApplianceError as exc:
        fail(exc)


@users_app.command("add")
def users_add(
    username: str,
    role: Annotated[str, typer.Option(help="viewer, operator, approver or admin.")] = "viewer",
    password: Annotated[str | None, typer.Option(help="Prompted for when left out.")] = None,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Create a user."""
    if password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    out = call(home, lambda backend: backend.add_user(username, password, role))
    show(out, as_json, lambda user: [record(user, title=f"user {user.get('username')} added")])


@users_app.command("token")
def users_token(
    username: str,
    name: Annotated[str, typer.Option(help="What the token is for.")] = "cli",
    expires_days: Annotated[float | None, typer.Option(help="Lifetime in days.")] = None,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Mint an API token for a user; the secret is printed once."""
    out = call(home, lambda backend: backend.create_token(username, name, expires_days))
    show(out, as_json, lambda t: [record(t, title=f"token for {username}"), text(
        "The token is shown this once; only its hash is stored.", "yellow")])


@users_app.command("sessions")
def users_sessions(as_json: Json = False, home: Home = None) -> None:
    """List live login sessions (end one with `appliance users revoke ID`)."""
    found = call(home, lambda backend: backend.sessions())
    show(found, as_json, lambda items: [rows(
        [{**r, "created_at": str(r["created_at"])[:19], "expires_at": str(r["expires_at"])[:19]}
         for r in items], ["id", "kind", "username", "created_at", "expires_at"], title="live sessions")])


@users_app.command("revoke")
def users_revoke(token_id: str, as_json: Json = False, home: Home = None) -> None:
    """Revoke an API token or end a session, by id."""
    out = call(home, lambda backend: backend.revoke(token_id))
    show(out, as_json, lambda r: [record(r, title="revoked")])


@audit_app.command("verify")
def audit_verify(as_json: Json = False, home: Home = None) -> None:
    """Check the audit hash chain; exits 1 when any event was edited or deleted."""
    out = call(home, lambda backend: backend.audit_verify())
    show(out, as_json, lambda r: [record({k: v for k, v in r.items() if k != "problems"},
                                         title="audit chain")]
         + ([rows(r["problems"], sorted({k for p in r["problems"] for k in p}),
                  title="problems")] if r.get("problems") else []))
    if not out["ok"]:
        typer.secho("audit chain is BROKEN", fg="red", err=True)
        raise typer.Exit(1)
    typer.secho(f"audit chain intact ({out['events']} events)", fg="green", err=True)


@audit_app.command("reanchor")
def audit_reanchor(
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Accept the audit log as it is after an anchor finding (server stopped; recorded)."""
    from appliance.audit import reanchor
    from appliance.audit_anchor import SharedAnchor
    from appliance.objects import open_object_store
    from appliance.store.db import Store

    settings = cli_settings(home)
    if not yes:
        typer.confirm("Record the finding in the audit chain and re-anchor it to the log as "
                      "it is now?", abort=True)
    try:
        with Store(settings.db_path, lock_path=settings.lock_path,
                   url=settings.store_url) as store:
            shared = SharedAnchor(open_object_store(settings)) if settings.object_store else None
            out = reanchor(store, settings.home / "audit.head", by=f"local:{os_user()}",
                           shared=shared).model_dump(mode="json")
    except ApplianceError as exc:
        fail(exc)
    show(out, as_json, lambda r: [record(r, title="audit anchor")])
    typer.secho(f"re-anchored at seq {out['seq']}; the finding is audit event {out['seq']}",
                fg="green", err=True)


def _add_registry_verbs() -> None:
    from appliance.cli.registry import (
        drift,
        jobs_app,
        models_app,
        outliers,
        predict,
        runs_app,
        train,
    )

    app.command("train")(train)
    app.command("predict")(predict)
    app.command("drift")(drift)
    app.command("outliers")(outliers)
    app.add_typer(runs_app, name="runs")
    app.add_typer(models_app, name="models")
    app.add_typer(jobs_app, name="jobs")


_add_registry_verbs()


def _add_explain_verb() -> None:
    from appliance.cli.explain import explain

    app.command("explain")(explain)


_add_explain_verb()


def _add_ops_verbs() -> None:
    from appliance.cli.ops import backup, compact, restore

    app.command("backup")(backup)
    app.command("restore")(restore)
    app.command("compact")(compact)


_add_ops_verbs()


def _add_erasure_verbs() -> None:
    from appliance.cli.erasure import erase, erasures

    app.command("erase")(erase)
    app.command("erasures")(erasures)


_add_erasure_verbs()


def _add_install_verbs() -> None:
    from appliance.cli.install import bundle, migrate

    app.command("migrate")(migrate)
    app.command("bundle")(bundle)


_add_install_verbs()


def main() -> None:
    try:
        app()
    except ApplianceError as exc:  # anything a command did not translate itself
        typer.secho(f"error: {exc.message}", fg="red", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", fg="red", err=True)
        sys.exit(130)
