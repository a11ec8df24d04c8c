"""Runs: create, log in validated batches, move through the status state machine.

A batch is all or nothing: every entry is checked before anything is
written, so a bad value refuses the batch whole and leaves the run as it was.
Run creation and endings are audited; the metric points themselves are
telemetry, not governance, and are not.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterable
from typing import IO, Any

from pydantic import TypeAdapter

from appliance.artifacts import ArtifactStore
from appliance.audit import Auditor
from appliance.domain import runkeys as rules
from appliance.domain.lineage import run_node, version_node
from appliance.domain.principal import Principal
from appliance.domain.runs import (
    ArtifactRef,
    LatestMetric,
    LoggedBatch,
    MetricPoint,
    Run,
    RunDetail,
    RunKind,
    RunPage,
    RunProgress,
    RunRecord,
    RunStatus,
    check_transition,
)
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.runs.checks import check_artifact_path, check_name
from appliance.runs.checks import params as check_params
from appliance.runs.checks import points as check_points
from appliance.runs.checks import tags as check_tags
from appliance.store import experiments as eq
from appliance.store import lineage as lq
from appliance.store import runs as q
from appliance.store.db import Store
from appliance.store.tables import RunArtifactRow, RunRow

_ARTIFACT_NAME_MAX = 200
MAX_WARNINGS = 20
MAX_WARNING_CHARS = 500


class RunService:
    def __init__(self, store: Store, auditor: Auditor, artifacts: ArtifactStore) -> None:
        self.store = store
        self.auditor = auditor
        self.artifacts = artifacts

    # -- creating and ending ----------------------------------------------------

    def start_external(
        self,
        *,
        name: str,
        experiment: str | None,
        params: dict[str, Any] | None,
        tags: dict[str, Any] | None,
        by: Principal,
    ) -> Run:
        """A run logged from outside (a notebook, a script): running from the start."""
        check_name(name)
        experiment = experiment or "default"
        check_name(experiment, "experiment")
        clean_params = check_params(params or {})
        clean_tags = check_tags(tags or {})
        now = _now()
        with self.store.write() as s:
            eq.ensure(s, experiment, by=by.actor)
            row = q.add_run(s, RunRow(
                name=name, kind=RunKind.external.value, status=RunStatus.running.value,
                experiment=experiment, params=clean_params, tags=clean_tags, metrics={},
                created_by=by.actor, started_at=now, heartbeat_at=now, attempts=1,
            ))
            self.auditor.record(s, by, "run.start", run_node(row.id),
                                after={"name": name, "experiment": experiment, "kind": row.kind})
        return run_of(row)

    def queue(self, row: RunRow, *, by: Principal) -> Run:
        """Record a run the appliance will execute (a training job or a trial)."""
        row.status = RunStatus.queued.value
        row.created_by = by.actor
        with self.store.write() as s:
            eq.ensure(s, row.experiment, by=by.actor)
            q.add_run(s, row)
            if row.kind == RunKind.train.value and row.dataset and row.dataset_version:
                lq.add_edge(s, src=version_node(row.dataset, row.dataset_version),
                            dst=run_node(row.id), relation="trained")
            self.auditor.record(s, by, "run.queue", run_node(row.id),
                                after={"name": row.name, "kind": row.kind,
                                       "dataset": row.dataset})
        return run_of(row)

    def transition(
        self, run_id: uuid.UUID | str, status: RunStatus, *, by: Principal | str = "system",
        **fields: Any,
    ) -> Run:
        """Move a run along the state machine, setting ``fields`` in the same write."""
        rid = _uuid(run_id)
        now = _now()
        with self.store.write() as s:
            row = self._get(s, rid)
            before = row.status
            check_transition(row.status, status)
            row.status = status.value
            if status is RunStatus.running:
                row.started_at = row.started_at or now
                row.attempts += 1
            if status.finished:
                row.ended_at = now
            row.heartbeat_at = now
            for key, value in fields.items():
                setattr(row, key, value)
            s.add(row)
            if status.finished or status is RunStatus.queued:
                self.auditor.record(s, by, f"run.{status.value}", run_node(row.id),
                                    before={"status": before},
                                    after={"status": row.status, "error": row.error})
        return run_of(row)

    def end(self, run_id: str, status: str, *, error: str | None, by: Principal) -> Run:
        if status not in (RunStatus.succeeded.value, RunStatus.failed.value):
            raise InvalidInput("an external run ends as 'succeeded' or 'failed'")
        return self.transition(run_id, RunStatus(status), by=by, error=error)

    def set_logs(self, run_id: uuid.UUID, logs: str) -> None:
        with self.store.write() as s:
            row = self._get(s, run_id)
            row.logs = logs
            s.add(row)

    def set_warnings(self, run_id: uuid.UUID, warnings: list[str]) -> None:
        """What training warned about (rows left out, a rare class...): kept on the run."""
        clean = [str(w)[:MAX_WARNING_CHARS] for w in warnings[:MAX_WARNINGS]]
        with self.store.write() as s:
            row = self._get(s, run_id)
            row.warnings = clean
            s.add(row)

    def heartbeat(self, run_id: uuid.UUID, progress: RunProgress | None = None) -> None:
        with self.store.write() as s:
            row = self._get(s, run_id)
            row.heartbeat_at = _now()
            if progress is not None:
                row.progress = progress.model_dump()
            s.add(row)

    # -- logging ----------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        *,
        params: dict[str, Any] | None = None,
        metrics: Iterable[dict[str, Any]] | None = None,
        tags: dict[str, Any] | None = None,
    ) -> LoggedBatch:
        """Store one batch of params, metric points and tags, or refuse it whole."""
        rid = _uuid(run_id)
        clean_params = check_params(params or {})
        clean_tags = check_tags(tags or {})
        points = check_points(list(metrics or []))
        with self.store.write() as s:
            row = self._get(s, rid)
            if RunStatus(row.status).finished:
                raise Conflict(f"run {rid} is {row.status}: it takes no more logging")
            current = dict(row.params or {})
            for key, value in clean_params.items():
                if key in current and current[key] != value:
                    raise InvalidInput(
                        f"param {key!r} is already {current[key]!r}; params are logged once",
                        detail={"key": key},
                    )
            latest: dict[str, float] = dict(row.metrics or {})
            # batches arrive in order: the newest point of a key (by step, then time) wins
            for m_key, _, m_value, _ in sorted(points, key=lambda p: (p[1], p[3])):
                latest[m_key] = m_value
            row.params = {**current, **clean_params}
            row.tags = {**(row.tags or {}), **clean_tags}
            row.metrics = latest
            row.heartbeat_at = _now()
            s.add(row)
            q.append_metrics(s, rid, points)
        return LoggedBatch(run_id=str(rid), params=len(clean_params), metrics=len(points),
                           tags=len(clean_tags))

    def add_artifact(self, run_id: str, name: str, stream: IO[bytes]) -> ArtifactRef:
        if not name or len(name) > _ARTIFACT_NAME_MAX or "/" in name or "\\" in name \
                or name.startswith(".") or "\x00" in name:
            raise InvalidInput(f"invalid artifact name {name!r}")
        return self.add_artifact_at(run_id, name, stream)

    def add_artifact_at(self, run_id: str, path: str, stream: IO[bytes]) -> ArtifactRef:
        """Store a file under a relative path of the run's artifacts (``model/MLmodel``):
        the path is a name in the store, never a place on disk."""
        rid = _uuid(run_id)
        name = check_artifact_path(path)
        with self.store.read() as s:
            self._get(s, rid)
        art = self.artifacts.put_stream(stream)
        with self.store.write() as s:
            q.add_artifact(s, RunArtifactRow(run_id=rid, name=name, sha256=art.sha256,
                                             size_bytes=art.size))
        return ArtifactRef(name=name, sha256=art.sha256, size_bytes=art.size)

    def artifact_bytes(self, run_id: str, name: str) -> bytes:
        rid = _uuid(run_id)
        with self.store.read() as s:
            found = [a for a in q.artifacts(s, rid) if a.name == name]
        if not found:
            raise NotFound(f"run {rid} has no artifact {name!r}")
        return self.artifacts.read_bytes(found[-1].sha256)

    def artifact_files(self, run_id: str) -> list[ArtifactRef]:
        """The run's artifacts by path, the newest file of each path, sorted by path."""
        rid = _uuid(run_id)
        with self.store.read() as s:
            self._get(s, rid)
            arts = q.artifacts(s, rid)
        newest = {a.name: ArtifactRef(name=a.name, sha256=a.sha256, size_bytes=a.size_bytes)
                  for a in arts}
        return [newest[k] for k in sorted(newest)]

    # -- editing (what an MLflow client may change on a run) ------------------------

    def rename(self, run_id: str, name: str) -> Run:
        check_name(name)
        with self.store.write() as s:
            row = self._get(s, _uuid(run_id))
            row.name = name
            s.add(row)
        return run_of(row)

    def delete_tag(self, run_id: str, key: str) -> None:
        key = rules.check_key("tag", key)
        with self.store.write() as s:
            row = self._get(s, _uuid(run_id))
            tags = dict(row.tags or {})
            if key not in tags:
                raise NotFound(f"run {row.id} has no tag {key!r}", detail={"key": key})
            del tags[key]
            row.tags = tags
            s.add(row)

    def set_deleted(self, run_id: str, deleted: bool, *, by: Principal) -> Run:
        """Soft delete (or restore) a run: a deleted run leaves the lists, nothing is lost."""
        with self.store.write() as s:
            row = self._get(s, _uuid(run_id))
            row.deleted_at = _now() if deleted else None
            s.add(row)
            self.auditor.record(s, by, "run.delete" if deleted else "run.restore",
                                run_node(row.id), after={"deleted": deleted})
        return run_of(row)

    def records(self, experiments: list[str], *, deleted: bool | None) -> list[RunRecord]:
        """Every run of the named experiments, with params and the newest point of each
        metric; ``deleted`` None: deleted or not."""
        with self.store.read() as s:
            rows = q.runs_of_experiments(s, experiments, deleted=deleted)
            latest = q.latest_points(s, [r.id for r in rows])
        return [record_of(r, latest.get(r.id, [])) for r in rows]

    def record(self, run_id: str) -> RunRecord:
        rid = _uuid(run_id)
        with self.store.read() as s:
            row = self._get(s, rid)
            latest = q.latest_points(s, [rid])
        return record_of(row, latest.get(rid, []))

    # -- reading ------------------------------------------------------------------

    def list_runs(self, *, tag: str | None = None, limit: int = 50, offset: int = 0,
                  **filters: Any) -> RunPage:
        tag_pair = None
        if tag:
            key, sep, value = tag.partition(":")
            if not sep:
                raise InvalidInput("a tag filter is key:value")
            tag_pair = (rules.check_key("tag", key), value)
        sort = filters.pop("sort", None) or "-created_at"
        if sort.lstrip("-").startswith("metric:"):
            rules.check_key("metric", sort.lstrip("-").removeprefix("metric:"))
        with self.store.read() as s:
            total, rows = q.list_runs(s, tag=tag_pair, sort=sort, limit=max(1, min(limit, 500)),
                                      offset=max(0, offset), **filters)
        return RunPage(total=total, items=[run_of(r) for r in rows])

    def show(self, run_id: str) -> RunDetail:
        rid = _uuid(run_id)
        with self.store.read() as s:
            row = self._get(s, rid)
            kids = q.children(s, rid)
            arts = q.artifacts(s, rid)
        return RunDetail(
            **dict(run_of(row)),
            params=row.params or {},
            environment=row.environment or {},
            seed=row.seed,
            spec=row.spec,
            logs=row.logs,
            artifacts=[ArtifactRef(name=a.name, sha256=a.sha256, size_bytes=a.size_bytes)
                       for a in arts],
            children=[run_of(k) for k in kids],
        )

    def metric_history(self, run_id: str, key: str | None = None) -> list[MetricPoint]:
        rid = _uuid(run_id)
        with self.store.read() as s:
            self._get(s, rid)
            points = q.metric_points(s, rid, key)
        # thousands of points: validated in one call (pydantic's core loop), not one by one
        return _metric_points().validate_python(
            [{"key": k, "step": step, "value": v, "ts": ts.isoformat()} for k, step, v, ts in points])

    def unfinished(self) -> list[RunRow]:
        with self.store.read() as s:
            return q.runs_in_status(s, [RunStatus.queued.value, RunStatus.running.value])

    @staticmethod
    def _get(s: Any, run_id: uuid.UUID) -> RunRow:
        row = q.get_run(s, run_id)
        if row is None:
            raise NotFound(f"run {run_id} does not exist")
        return row


def record_of(r: RunRow, latest: list[tuple[str, int, float, dt.datetime]]) -> RunRecord:
    return RunRecord(
        **dict(run_of(r)), params=r.params or {},
        deleted_at=r.deleted_at.isoformat() if r.deleted_at else None,
        latest=[LatestMetric(key=k, step=step, value=v, ts=ts.isoformat())
                for k, step, v, ts in latest],
    )


def run_of(r: RunRow) -> Run:
    def iso(v: dt.datetime | None) -> str | None:
        return v.isoformat() if v else None

    duration = (r.ended_at - r.started_at).total_seconds() if r.ended_at and r.started_at else None
    return Run(
        id=str(r.id), name=r.name, kind=RunKind(r.kind), status=RunStatus(r.status),
        parent_id=str(r.parent_id) if r.parent_id else None, experiment=r.experiment,
        dataset=r.dataset, dataset_version=r.dataset_version,
        metrics=r.metrics or {}, tags=r.tags or {},
        progress=RunProgress(**r.progress) if r.progress else None,
        warnings=r.warnings or [],
        created_by=r.created_by, created_at=iso(r.created_at),
        started_at=iso(r.started_at), ended_at=iso(r.ended_at), duration_s=duration,
        error=r.error,
    )


@functools.cache
def _metric_points() -> TypeAdapter[list[MetricPoint]]:
    return TypeAdapter(list[MetricPoint])


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _uuid(value: uuid.UUID | str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"run {value!r} does not exist") from None


