"""Scheduled jobs: schedules, next runs, the run ledger with logs, run-now, pause and resume."""

from __future__ import annotations

from fastapi import APIRouter, Query

from appliance.api.deps import App, Operator, Viewer
from appliance.domain.jobs import Job, JobList, JobRun, JobRunPage
from appliance.errors import NotFound

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


@router.get("", response_model=JobList)
def list_jobs(app: App, _: Viewer) -> JobList:
    """Every job (built-ins and job files), with its trigger, next run, last run and pause
    state; ``files`` reports each job file, invalid ones with the line and field at fault."""
    return app.jobs.list_jobs()


@router.get("/{job_id}", response_model=Job)
def show_job(app: App, _: Viewer, job_id: str) -> Job:
    return app.jobs.job(job_id)


@router.get("/{job_id}/runs", response_model=JobRunPage)
def job_runs(
    app: App, _: Viewer, job_id: str,
    status: str | None = Query(None, description="queued, running, succeeded, failed, "
                                                 "interrupted or skipped"),
    limit: int = Query(50, ge=1, le=500), offset: int = Query(0, ge=0),
) -> JobRunPage:
    return app.jobs.runs(job_id, status=status, limit=limit, offset=offset)


@router.get("/{job_id}/runs/{run_id}", response_model=JobRun)
def job_run(app: App, _: Viewer, job_id: str, run_id: str) -> JobRun:
    """One ledger row with its captured logs and result."""
    run = app.jobs.run(run_id)
    if run.job != job_id:
        raise NotFound(f"job {job_id!r} has no run {run_id!r}")
    return run


@router.post("/{job_id}/run", status_code=202, response_model=JobRun)
def run_now(app: App, who: Operator, job_id: str) -> JobRun:
    """Queue a run now (audited); it waits for a run already going, never overlaps it."""
    return app.jobs.run_now(job_id, by=who)


@router.post("/{job_id}/pause", response_model=Job)
def pause(app: App, who: Operator, job_id: str) -> Job:
    return app.jobs.pause(job_id, by=who)


@router.post("/{job_id}/resume", response_model=Job)
def resume(app: App, who: Operator, job_id: str) -> Job:
    return app.jobs.resume(job_id, by=who)
