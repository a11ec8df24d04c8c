"""Reading the scheduled jobs: the list, one job, its runs (a part of ``JobService``)."""

from __future__ import annotations

import uuid
from pathlib import Path

from appliance.auth.service import require
from appliance.domain.jobs import Job, JobList, JobRun, JobRunPage, JobRunStatus, check_job_id
from appliance.domain.principal import Principal
from appliance.errors import InvalidInput, NotFound
from appliance.jobs import files as jobfiles
from appliance.jobs.defs import JobDef
from appliance.jobs.ledger import JobLedger
from appliance.jobs.scheduler import Scheduler


class JobReading:
    """What ``JobService`` answers about its jobs; the state is the service's own."""

    ledger: JobLedger
    scheduler: Scheduler
    jobs_dir: Path
    _defs: dict[str, JobDef]
    _files: dict[Path, jobfiles.LoadedFile]

    def list_jobs(self) -> JobList:
        paused = self.ledger.paused()
        last = self.ledger.last_runs()
        items = [self._public(j, paused, last) for j in sorted(self._defs.values(),
                                                               key=lambda j: j.id)]
        return JobList(items=items, files=[f.public() for f in self._files.values()],
                       jobs_dir=str(self.jobs_dir))

    def job(self, job_id: str) -> Job:
        job = self._job(job_id)
        return self._public(job, self.ledger.paused(), self.ledger.last_runs())

    def runs(self, job_id: str, *, status: str | None = None, limit: int = 50,
             offset: int = 0) -> JobRunPage:
        check_job_id(job_id)
        if status is not None and status not in {s.value for s in JobRunStatus}:
            raise InvalidInput(f"unknown job run status {status!r}",
                               detail={"field": "status"})
        if job_id not in self._defs and not self.ledger.page(job=job_id, limit=1).total:
            raise NotFound(f"no job {job_id!r}")
        return self.ledger.page(job=job_id, status=status, limit=max(1, min(limit, 500)),
                                offset=max(0, offset))

    def run(self, run_id: str) -> JobRun:
        try:
            uuid.UUID(str(run_id))
        except ValueError:
            raise InvalidInput(f"not a job run id: {str(run_id)[:80]!r}") from None
        return self.ledger.get(str(run_id))

    def _public(self, job: JobDef, paused: set[str], last: dict[str, JobRun]) -> Job:
        nxt = self.scheduler.next_run(job.id)
        return Job(id=job.id, kind=job.kind, trigger=job.describe(),
                   description=job.description, source=job.source,
                   paused=job.id in paused, running=job.lock.locked(),
                   retries=job.retries, role=job.role.value,
                   next_run=nxt.isoformat() if nxt and job.id not in paused else None,
                   last_run=last.get(job.id))

    def _job(self, job_id: str, *, by: Principal | None = None) -> JobDef:
        """The job; with ``by``, also the check that they may run, pause or resume it."""
        check_job_id(job_id)
        job = self._defs.get(job_id)
        if job is None:
            raise NotFound(f"no job {job_id!r}: see GET /api/v1/jobs")
        if by is not None:
            require(by, job.role)
        return job

