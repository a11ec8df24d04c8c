"""CLI verbs for data-subject erasure (added to ``appliance.cli``'s app): ``erase`` and
``erasures``. Thin adapters over ``ErasureService`` (locally) or ``/api/v1/erasures``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from appliance.cli.common import Home, cli_settings, fail
from appliance.cli.output import Json, record, rows, show, text
from appliance.errors import ApplianceError


def erase(
    where: Annotated[list[str], typer.Option(
        "--where", help="COLUMN=VALUE; the value is converted to the column's type. "
                        "Repeat to AND several conditions.")],
    dataset: Annotated[str | None, typer.Option(
        "--dataset", help="Rewrite only this dataset's versions (the prediction log and "
                          "labels are searched in any case).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Count what would be erased; change nothing.")] = False,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Erase a data subject: rows matching --where leave every dataset version (rewritten as
    new versions), the prediction log and its labels; audited with counts (admin)."""
    from rich.console import Console

    from appliance.cli.backend import LocalBackend, RemoteBackend, open_backend
    from appliance.domain.privacy import ErasureRequest, parse_condition

    try:
        conditions = [parse_condition(w) for w in where]
        request = ErasureRequest(where=conditions, dataset=dataset, dry_run=dry_run)
        with open_backend(cli_settings(home)) as backend, \
                Console(stderr=True).status("erasing" if not dry_run else "counting"):
            if isinstance(backend, RemoteBackend):
                out: dict[str, Any] = backend.client.erase(
                    [c.model_dump() for c in conditions], dataset=dataset, dry_run=dry_run)
            else:
                assert isinstance(backend, LocalBackend)
                out = backend.app.erasure.erase(request, by=backend.who).model_dump(mode="json")
    except ApplianceError as exc:
        fail(exc)
    show(out, as_json, _report_view)


def erasures(as_json: Json = False, home: Home = None) -> None:
    """List past erasures: who, when, which columns (never the values), counts (admin)."""
    from appliance.cli.backend import LocalBackend, RemoteBackend, open_backend

    try:
        with open_backend(cli_settings(home)) as backend:
            if isinstance(backend, RemoteBackend):
                out: list[dict[str, Any]] = backend.client.erasures()
            else:
                assert isinstance(backend, LocalBackend)  # the local user acts as admin
                out = [e.model_dump(mode="json") for e in backend.app.erasure.erasures()]
    except ApplianceError as exc:
        fail(exc)
    show(out, as_json, lambda items: [rows(items, ["id", "at", "actor", "columns", "dataset",
                                                   "versions", "rows_removed",
                                                   "predictions_removed", "labels_removed",
                                                   "status"], title="erasures")])


def _report_view(r: dict[str, Any]) -> list[Any]:
    head = {k: r[k] for k in ("id", "dry_run", "columns", "dataset", "predictions_removed",
                              "labels_removed", "models_flagged", "seconds")}
    out = [record(head, title="erasure (dry run: nothing changed)" if r["dry_run"]
                  else "erasure")]
    if r["versions"]:
        out.append(rows(r["versions"], ["dataset", "version", "rows", "rows_removed",
                                        "new_version", "new_sha256"], title="dataset versions"))
    else:
        out.append(text("no dataset version holds a matching row"))
    if r["files"]:
        out.append(rows(r["files"], ["path", "action", "rows_removed"], title="other files"))
    if r["backups_holding_data"]:
        out.append(text(f"{len(r['backups_holding_data'])} backup(s) in the home were taken "
                        "before this erasure and still hold the rows: "
                        + ", ".join(r["backups_holding_data"])
                        + " (see docs/operations/privacy.md)", "yellow"))
    for step in r.get("next_steps") or []:
        out.append(text(f"next: {step}", "yellow"))
    return out
