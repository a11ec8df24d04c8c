"""CLI verbs for training, runs and the model registry (added to ``appliance.cli``'s app)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from appliance.cli import views
from appliance.cli.backend import backend_for, call
from appliance.cli.common import Home, fail
from appliance.cli.output import Json, show
from appliance.errors import ApplianceError, InvalidInput

runs_app = typer.Typer(help="Tracked runs: training jobs, search trials, notebook runs.",
                       no_args_is_help=True)
models_app = typer.Typer(help="The model registry: versions, aliases, rollback, ONNX export.",
                         no_args_is_help=True)

_FINISHED = {"succeeded", "failed", "interrupted"}


def train(
    spec: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="A job file (YAML).")],
    detach: Annotated[bool, typer.Option(help="Queue the run and return at once.")] = False,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Train the job in SPEC.yaml: a tracked run and, if it passes, a new model version."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    try:
        with backend_for(home) as backend:
            run = backend.train(spec.read_text())
            if detach:
                show(run, as_json, views.run_detail)
                return
            with Progress(TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                          transient=True, console=Console(stderr=True)) as bar:
                task = bar.add_task(f"run {run['name']} queued", total=1.0)
                while run["status"] not in _FINISHED:
                    time.sleep(0.5)
                    run = backend.run(run["id"])
                    progress = run.get("progress") or {}
                    bar.update(task, completed=progress.get("fraction") or 0.0,
                               description=f"run {run['name']}: {progress.get('stage') or run['status']}")
            run = backend.run(run["id"])
    except ApplianceError as exc:
        fail(exc)
    summary = {k: run.get(k) for k in ("id", "name", "status", "metrics", "error",
                                       "model_version", "dataset", "dataset_version",
                                       "warnings")}
    show(summary, as_json, views.train_summary)
    if run["status"] != "succeeded":
        raise typer.Exit(1)


@runs_app.command("list")
def runs_list(
    status: Annotated[str | None, typer.Option(help="queued, running, succeeded, ...")] = None,
    experiment: Annotated[str | None, typer.Option(help="Experiment (job) name.")] = None,
    sort: Annotated[str, typer.Option(help="-created_at, name, metric:<key>, ...")] = "-created_at",
    trials: Annotated[bool, typer.Option(
        "--trials/--no-trials",
        help="Also list a search's trial runs (`runs show PARENT` lists them).")] = False,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """List runs, filtered and sorted on the server, a page at a time."""
    page = call(home, lambda backend: backend.runs(status=status, experiment=experiment,
                                                    top_level=not trials, sort=sort,
                                                    limit=limit, offset=offset))
    show(page, as_json, views.runs_page)


@runs_app.command("show")
def runs_show(run_id: str, as_json: Json = False, home: Home = None) -> None:
    """Show one run: params, metrics, environment, artifacts, trials, model version."""
    show(call(home, lambda backend: backend.run(run_id)), as_json, views.run_detail)


@models_app.command("list")
def models_list(as_json: Json = False, home: Home = None) -> None:
    """List registered models with their newest version and aliases."""
    show(call(home, lambda backend: backend.models()), as_json, views.models_list)


@models_app.command("show")
def models_show(name: str, as_json: Json = False, home: Home = None) -> None:
    """Show a model, its versions and aliases."""
    show(call(home, lambda backend: backend.model(name)), as_json, views.model_detail)


@models_app.command("promote")
def models_promote(
    name: str,
    version: Annotated[int, typer.Argument(help="The version the alias should point at.")],
    alias: Annotated[str, typer.Option(help="The alias to move.")] = "champion",
    reason: Annotated[str, typer.Option(help="Why: kept in the alias history.")] = "",
    force: Annotated[bool, typer.Option(help="Skip the promotion gate (audited).")] = False,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Point ALIAS of NAME at VERSION (champion must pass the gate unless --force)."""
    show(call(home, lambda backend: backend.set_alias(name, alias, version, reason, force)),
         as_json, views.alias_move)


@models_app.command("rollback")
def models_rollback(
    name: str,
    alias: Annotated[str, typer.Option(help="The alias to move back.")] = "champion",
    reason: Annotated[str, typer.Option(help="Why: kept in the alias history.")] = "",
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Return ALIAS of NAME to the version it pointed at before, in one step."""
    show(call(home, lambda backend: backend.rollback(name, alias, reason)), as_json,
         views.alias_move)


@models_app.command("canary")
def models_canary(
    name: str,
    alpha: Annotated[float | None, typer.Option(
        help="Error rate (default: the job file's promote.canary, else 0.05).")] = None,
    tau: Annotated[float | None, typer.Option(
        help="Mixture sd in units of the outcome's sd (default: the job's, else 0.1).")] = None,
    min_samples: Annotated[int | None, typer.Option(
        help="Labelled requests per arm before any verdict (default: the job's, else 200)."
    )] = None,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """The canary's verdict against the champion from delayed labels (always valid)."""
    show(call(home, lambda backend: backend.canary(name, alpha, tau, min_samples)), as_json,
         views.canary_verdict)


@models_app.command("export")
def models_export(
    name: str,
    version: Annotated[int, typer.Argument(help="The version to export.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the .onnx file.")],
    home: Home = None,
) -> None:
    """Write a version's ONNX file (its sha256 is checked first)."""
    try:
        with backend_for(home) as backend:
            data = backend.onnx(name, version)
    except ApplianceError as exc:
        fail(exc)
    out.write_bytes(data)
    typer.echo(f"wrote {out} ({len(data)} bytes)")


_CHUNK_ROWS = 5_000


def predict(
    target: Annotated[str, typer.Argument(help="MODEL, MODEL@ALIAS or MODEL@vN.")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True,
                                         help="A CSV or Parquet file of rows to score.")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Parquet to write (default FILE.predictions.parquet).")] = None,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Score a file with a registry model; writes the rows plus predictions as Parquet.

    A CSV file goes to the model as text, typed by the model's signature (a zip code
    `02139` stays a string where the model expects one); its columns are written back
    as the text they were."""
    import polars as pl
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    name, _, ref = target.partition("@")
    alias, version = (None, int(ref[1:])) if ref.startswith("v") and ref[1:].isdigit() \
        else (ref or "champion", None)
    is_csv = file.suffix != ".parquet"
    frame = pl.read_csv(file, infer_schema=False) if is_csv else pl.read_parquet(file)
    predictions: list[Any] = []
    probabilities: list[Any] = []
    served: set[int] = set()
    try:
        with backend_for(home) as backend, Progress(
            TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), transient=True,
            console=Console(stderr=True),
        ) as bar:
            task = bar.add_task("rows", total=frame.height)
            for start in range(0, frame.height, _CHUNK_ROWS):
                chunk = frame.slice(start, _CHUNK_ROWS)
                answer = (backend.predict_csv(name, chunk.write_csv().encode(), alias, version)
                          if is_csv else backend.predict(name, chunk.to_dicts(), alias, version))
                predictions += answer["predictions"]
                probabilities += answer["probabilities"] or [None] * chunk.height
                served.add(answer["version"])
                bar.advance(task, chunk.height)
    except ApplianceError as exc:
        fail(exc)
    result = frame.with_columns(pl.Series("prediction", predictions))
    if any(p is not None for p in probabilities):
        result = result.with_columns(
            pl.Series("probabilities", [json.dumps(p) for p in probabilities]))
    destination = out or file.with_name(file.stem + ".predictions.parquet")
    result.write_parquet(destination)
    show({"rows": result.height, "model": name, "versions": sorted(served),
          "out": str(destination)}, as_json, views.predict_result)


def drift(
    model: str,
    window_hours: Annotated[float, typer.Option(help="Prediction-log window to test.")] = 24.0,
    dataset_version: Annotated[int | None, typer.Option(
        help="Test this version of the training dataset instead of the log.")] = None,
    test: Annotated[list[str] | None, typer.Option(
        "--test", help="COLUMN=TEST instead of the automatic choice (e.g. age=psi); "
        "repeatable.")] = None,
    threshold: Annotated[list[str] | None, typer.Option(
        "--threshold", help="COLUMN=VALUE for that column's test; repeatable.")] = None,
    multivariate: Annotated[bool, typer.Option(
        help="Run the classifier-based detector over the whole input.")] = True,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Test recent inputs (or a dataset version) for drift against the champion's training
    data: one automatically chosen test per column, and one multivariate score."""
    from pydantic import ValidationError

    from appliance.domain.drift import DriftOptions

    try:
        options = DriftOptions(
            tests=_pairs(test or [], "--test"),
            thresholds={k: _number(v, k) for k, v in _pairs(threshold or [], "--threshold").items()},
            multivariate=multivariate)
    except ValidationError as exc:
        fail(InvalidInput(str(exc.errors()[0]["msg"]).removeprefix("Value error, ")))
    except InvalidInput as exc:
        fail(exc)
    report = call(home, lambda backend: backend.drift(model, window_hours, dataset_version,
                                                      options.model_dump()))
    drifted = [f["column"] for f in report["features"] if f["drift"]]
    show({**report, "drifted_columns": drifted,
          "prediction_drift": (report.get("prediction") or {}).get("drift")},
         as_json, views.drift_report)
    if report["drift"]:
        raise typer.Exit(1)


def outliers(
    model: str,
    window_hours: Annotated[float, typer.Option(help="Prediction-log window to read.")] = 24.0,
    examples: Annotated[int, typer.Option(min=0, max=200,
                                          help="Most outlying rows to show.")] = 10,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """The share of recent inputs the model's outlier detectors flagged, with examples."""
    show(call(home, lambda backend: backend.outliers(model, window_hours, examples)), as_json,
         views.outlier_report)


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        column, sep, value = item.partition("=")
        if not sep or not column or not value:
            raise InvalidInput(f"{flag} takes COLUMN=VALUE, not {item!r}")
        out[column] = value
    return out


def _number(text: str, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InvalidInput(f"--threshold {column}={text!r}: not a number") from None


jobs_app = typer.Typer(help="Scheduled jobs: schedules, the run ledger, run-now, pause, resume.",
                       no_args_is_help=True)


@jobs_app.command("list")
def jobs_list(as_json: Json = False, home: Home = None) -> None:
    """Every job with its trigger, next run and last run; invalid job files are reported."""
    out = call(home, lambda backend: backend.jobs())
    show(out, as_json, views.jobs_list)
    for f in out["files"]:
        if not f["ok"]:
            err = f["error"] or {}
            where = f" line {err['line']}" if err.get("line") else ""
            typer.secho(f"invalid job file {f['path']}{where}: {err.get('message')}",
                        fg="red", err=True)


@jobs_app.command("runs")
def jobs_runs(
    job_id: str,
    status: Annotated[str | None, typer.Option(help="Only runs with this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """The run ledger of one job, newest first; a single run also shows its steps and logs."""

    def page(backend: Any) -> dict[str, Any]:
        out: dict[str, Any] = backend.job_runs(job_id, status, limit)
        if len(out["items"]) == 1:  # the list leaves logs out; one run is shown whole
            out["items"] = [backend.job_run(job_id, out["items"][0]["id"])]
        return out

    show(call(home, page), as_json, views.job_runs)


@jobs_app.command("run")
def jobs_run(job_id: str, as_json: Json = False, home: Home = None) -> None:
    """Run a job now: queued on the server when one is up, else run here and waited for."""
    out = call(home, lambda backend: backend.run_job(job_id))
    show(out, as_json, views.job_run_row)
    if out.get("status") == "failed":
        raise typer.Exit(1)


@jobs_app.command("pause")
def jobs_pause(job_id: str, as_json: Json = False, home: Home = None) -> None:
    """Stop a job's schedule (it stays paused across restarts); run-now still works."""
    show(call(home, lambda backend: backend.pause_job(job_id, True)), as_json, views.job_state)


@jobs_app.command("resume")
def jobs_resume(job_id: str, as_json: Json = False, home: Home = None) -> None:
    """Put a paused job back on its schedule."""
    show(call(home, lambda backend: backend.pause_job(job_id, False)), as_json,
         views.job_state)
