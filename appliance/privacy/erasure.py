"""Erasure by key: one data subject out of every dataset version, the prediction log and
its labels, in one audited step.

For each dataset version holding matching rows a new version is written without them
(a new Parquet file, content-addressed by its own sha256, re-validated against the
contract version the old one was checked against, freshly summarised) and a lineage
edge ``old -> new`` (relation ``erasure``) plus ``erasure:<id> -> new`` records why.
The old version keeps its number, its source sha256 and its history, becomes status
``erased`` and points at the new file; its own file and its archived source file are
deleted. So afterwards no Parquet file under the home holds a matching row, and every
reader of an old version number (a run's reproduction, a drift reference) reads the
erased data. Other Parquet files under the home (training holdouts, archived Parquet
sources) are rewritten in place.

Prediction-log rows whose ``inputs`` hold the values (matched on the JSON field) are
deleted with the labels of their requests, in the same transaction as the new versions,
the ``erasures`` record and ONE audit event carrying counts and column names, never the
values. Files are replaced before the commit and deleted after it; the files still to
delete are listed in the ``erasures`` row until done, so ``recover`` finishes a clean-up
a crash interrupted. Backups in the home are not rewritten: the report names them.

In scale-out (``APPLIANCE_OBJECT_STORE=s3://...``) version snapshots and run artifacts
live in the bucket: the new file is put under its own content-addressed key and the old
key is deleted from the bucket and from this host's cache after the commit. Every reader
asks for the key its version row names, so no host is ever served the old bytes; other
hosts' caches may keep them on disk (unreferenced) until evicted or that host's next
start (``forget_cached``), which the report's next steps say. Archived source files live
in the home of the host that ingested them.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.artifacts import ArtifactStore
from appliance.audit import Auditor
from appliance.auth.service import require
from appliance.domain.changes import Topic
from appliance.domain.lineage import dataset_node, erasure_node, version_node
from appliance.domain.principal import Principal
from appliance.domain.privacy import (
    Condition,
    ErasedFile,
    ErasedVersion,
    ErasureEntry,
    ErasureReport,
    ErasureRequest,
    check_conditions,
)
from appliance.domain.roles import Role
from appliance.objects import LocalObjectStore, ObjectStore
from appliance.privacy import files
from appliance.privacy.plan import ArtifactHit, Plan, VersionHit, make_plan
from appliance.store import changes
from appliance.store import datasets as dq
from appliance.store import erasures as eq
from appliance.store import lineage as lq
from appliance.store.db import Store
from appliance.store.tables import DatasetVersionRow

log = logging.getLogger(__name__)


class ErasureService:
    def __init__(self, store: Store, auditor: Auditor, artifacts: ArtifactStore, *, home: Path,
                 flush: Callable[[], object] = lambda: None,
                 erased: Callable[[], object] = lambda: None,
                 objects: ObjectStore | None = None) -> None:
        self.store = store
        # where snapshots and artifacts live: the home (default) or the bucket (scale-out)
        self.objects = objects if objects is not None else LocalObjectStore(home)
        self.in_bucket = not isinstance(self.objects, LocalObjectStore)
        self.auditor = auditor
        self.artifacts = artifacts
        self.home = home
        self.flush = flush  # the prediction log's buffer, so no matching row lands after us
        self.erased = erased  # after the commit: explainers built from rewritten artifacts go
        self._lock = threading.Lock()  # one erasure at a time: two would rewrite one version

    def erase(self, request: ErasureRequest, *, by: Principal) -> ErasureReport:
        """Erase (or with ``dry_run`` count) the rows matching ``request.where``."""
        require(by, Role.admin)
        where = check_conditions(list(request.where))
        with self._lock:
            return self._erase(request, where, by)

    def _erase(self, request: ErasureRequest, where: list[Condition],
               by: Principal) -> ErasureReport:
        started = time.perf_counter()
        self.flush()
        plan = make_plan(self.store, self.home, where, request.dataset, self.objects)
        at = dt.datetime.now(dt.UTC)
        if request.dry_run:
            return _report(plan, None, request.dataset, started, at, new={})
        eid = uuid.uuid4()
        new = {h.version_id: self._write_version(h) for h in plan.versions}
        for f in plan.files:  # before the commit: a rewrite cannot be redone without values
            files.write_without(self.home / f.path, self.home / f.path, f.match)
        replaced = {a.sha256: self._rewrite_artifact(a) for a in plan.artifacts}
        kept = {v["path"] for v in new.values()}  # identical bytes may share a file
        pending = sorted(({h.path for h in plan.versions} - kept) | set(plan.sources)
                         | {s + ".reason.json" for s in plan.sources}
                         | {a.path for a in plan.artifacts})
        report = self._commit(plan, eid, request.dataset, new, replaced, pending, by,
                              started, at)
        self.erased()
        self._clean(str(eid), pending)
        self.store.checkpoint()  # fold the deletions into the database file now
        steps = [self._purge_hint()]
        if self.in_bucket and (plan.versions or plan.artifacts):
            steps.append(
                "the old snapshots and artifacts were deleted from the object store and from "
                "this host's cache; no host reads them again (versions name the new keys), but "
                "another host's cache may hold their bytes until it restarts (a host drops "
                "cached copies of erased snapshots at start) or deletes "
                "$APPLIANCE_HOME/cache/objects (always safe), and erase "
                "archived source files on the host that ingested them (docs/scale-out.md)")
        if self.store.parts is not None and plan.inputs:
            steps.append(self._late_pass(plan.inputs, eid))
        return report.model_copy(update={"next_steps": steps})

    def _late_pass(self, inputs: eq.InputMatch, eid: uuid.UUID) -> str:
        """Scale-out: rows other hosts logged but had not rolled into parts yet are erased
        by a second pass once their roll interval has passed (held in memory until then)."""
        assert self.store.parts is not None
        delay = self.store.parts.roll_seconds + 15

        def run() -> None:
            try:
                n, k = eq.erase_matching_in_parts(self.store, inputs, salt=f"{eid}-late")
                log.warning("erasure %s, second pass: %d prediction and %d label rows other "
                            "hosts had not rolled yet were erased", eid, n, k)
            except Exception:
                log.exception("erasure %s: the second pass over the log parts failed; run "
                              "the erasure again", eid)

        timer = threading.Timer(delay, run)
        timer.daemon = True
        timer.start()
        return (f"prediction-log rows other hosts had not rolled into parts yet are erased by "
                f"a second pass in {delay:.0f} s (on this host; if it stops before then, run "
                "the erasure again)")

    def _purge_hint(self) -> str:
        """What removes the deleted rows' bytes from the store's freed pages."""
        if self.store.postgres:
            return ("the deleted rows' bytes stay in PostgreSQL's dead tuples until "
                    "`VACUUM FULL` rewrites the tables (docs/operations/privacy.md)")
        return ("the deleted rows' bytes stay in the store file's freed pages: stop the server "
                "and run `appliance compact` to purge them (docs/operations/privacy.md)")

    def erasures(self, *, limit: int = 100) -> list[ErasureEntry]:
        with self.store.read() as s:
            return [_entry(r) for r in eq.list_erasures(s, limit=max(1, min(limit, 1000)))]

    def recover(self) -> int:
        """Finish the file deletions of erasures a crash interrupted after their commit."""
        with self.store.read() as s:
            unfinished = eq.list_erasures(s, limit=1000, status="cleaning")
        for r in unfinished:
            self._clean(r.id, r.pending_files)
        return len(unfinished)

    def forget_cached(self) -> int:
        """Scale-out, every host at start: drop this host's cached copies of snapshots that
        erasures deleted from the bucket (never served, but their bytes were on disk)."""
        from appliance.objects.s3 import S3ObjectStore

        if not isinstance(self.objects, S3ObjectStore):
            return 0
        cache = self.objects.cache
        with self.store.read() as s:
            keys = eq.erased_snapshot_keys(s)
        dropped = 0
        for key in keys:
            path = cache.path_for(key)
            if path.is_file():
                path.unlink(missing_ok=True)
                dropped += 1
        if dropped:
            log.info("dropped %d cached cop%s of erased snapshots", dropped,
                     "y" if dropped == 1 else "ies")
        return dropped

    # -- steps --------------------------------------------------------------------------

    def _write_version(self, h: VersionHit) -> dict[str, Any]:
        """The new file of a hit version (by its own sha256), its report and its summary
        (read once, eagerly: the contract check needs the whole frame anyway)."""
        import polars as pl

        from appliance.validate.summary import summarize

        folder = self.home / "datasets" / h.dataset
        if self.in_bucket:
            folder = self.home / "staging"
            folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".erasure-{uuid.uuid4().hex}.parquet"
        try:
            kept = files.write_without(self._file(h.path), tmp, h.match)
            sha = files.sha256_of(tmp)
            rel = Path("datasets") / h.dataset / f"{sha}.parquet"
            if self.in_bucket:  # a new content-addressed object; the old key goes after commit
                self.objects.put_file(rel.as_posix(), tmp, move=True)
            else:
                os.replace(tmp, self.home / rel)
        finally:
            tmp.unlink(missing_ok=True)
        local = self._file(str(rel))
        frame = pl.read_parquet(local)
        return {"sha256": sha, "path": str(rel), "rows": kept,
                "size_bytes": local.stat().st_size,
                "report": self._revalidate(h, frame),
                "summary": [c.to_dict() for c in summarize(frame)]}

    def _rewrite_artifact(self, a: ArtifactHit) -> tuple[str, int]:
        """A run artifact without the matching rows, stored under its new sha256."""
        tmp = self.home / "staging" / f".erasure-{uuid.uuid4().hex}.parquet"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            files.write_without(self._file(a.path), tmp, a.match)
            with tmp.open("rb") as fh:
                art = self.artifacts.put_stream(fh)
        finally:
            tmp.unlink(missing_ok=True)
        return art.sha256, art.size

    def _file(self, key: str) -> Path:
        """A local file holding the snapshot or artifact ``key`` (home, or this host's cache)."""
        if not self.in_bucket:
            return self.home / key
        return self.objects.local_path(Path(key).as_posix())

    def _revalidate(self, h: VersionHit, frame: Any) -> dict[str, Any]:
        """The new file checked against the contract version the old one was checked
        against (a fresh report: the old one's failure samples may quote erased values)."""
        from appliance.validate.contracts import validate_frame

        with self.store.read() as s:
            contract = (dq.get_contract(s, h.dataset_id, h.contract_version)
                        if h.contract_version is not None else None)
        if contract is None:
            return {"passed": h.status == "accepted", "failures": [],
                    "contract_version": h.contract_version}
        report = validate_frame(frame, contract.yaml, contract_version=contract.version)
        return {**report.to_dict(), "contract_version": contract.version}

    def _commit(self, plan: Plan, eid: uuid.UUID, dataset: str | None,
                new: dict[uuid.UUID, dict[str, Any]], replaced: dict[str, tuple[str, int]],
                pending: list[str], by: Principal, started: float,
                at: dt.datetime) -> ErasureReport:
        numbers: dict[uuid.UUID, int] = {}
        with self.store.write() as s:
            for h in plan.versions:
                old = s.get(DatasetVersionRow, h.version_id)
                assert old is not None
                made = new[h.version_id]
                number = dq.next_version_number(s, h.dataset_id)
                numbers[h.version_id] = number
                report = {**made["report"], "erasure": str(eid), "erased_from": h.number}
                s.add(DatasetVersionRow(
                    dataset_id=h.dataset_id, number=number,
                    status="accepted" if report.get("passed") else "rejected",
                    sha256=made["sha256"], size_bytes=made["size_bytes"], rows=made["rows"],
                    columns=old.columns, parquet_path=made["path"],
                    source_file=old.source_file, claim_id=str(eid),
                    contract_version=old.contract_version, report=report,
                    summary=made["summary"]))
                # the old version (and any an earlier erasure pointed at its file): same
                # number, history and source sha256; its rows now read from the new file
                erased = {**made["report"], "erasure": str(eid), "erased_into": number}
                for row in [old, *dq.erased_versions_reading(s, h.dataset_id, h.path)]:
                    row.status, row.parquet_path = "erased", made["path"]
                    row.report, row.summary = erased, made["summary"]
                    s.add(row)
                s.flush()
                src, dst = version_node(h.dataset, h.number), version_node(h.dataset, number)
                lq.add_edge(s, src=src, dst=dst, relation="erasure")
                lq.add_edge(s, src=erasure_node(eid), dst=dst, relation="erased_into")
                lq.add_edge(s, src=dst, dst=dataset_node(h.dataset), relation="version_of")
                eq.add_erased_version(s, erasure_id=eid, dataset=h.dataset, old=h.number,
                                      new=number, rows_removed=h.matches, at=at)
            for old_sha, (new_sha, size) in replaced.items():
                eq.replace_artifact(s, old_sha, new_sha, size)
            if self.store.parts is None:
                predictions, labels = eq.delete_matching_predictions(s, plan.inputs)
            else:  # scale-out: the log's parts are rewritten (before this commits)
                predictions, labels = eq.erase_matching_in_parts(self.store, plan.inputs,
                                                                 salt=str(eid))
            plan.predictions, plan.labels = predictions, labels
            out = _report(plan, eid, dataset, started, at, new=numbers,
                          shas={k: v["sha256"] for k, v in new.items()})
            counts = _counts(out)
            eq.add_erasure(s, erasure_id=eid, actor=by.actor, columns=plan.columns,
                           dataset=dataset, counts=counts, pending_files=pending, at=at)
            self.auditor.record(s, by, "erasure.apply", erasure_node(eid), after=counts)
            changes.note(s, Topic.erasure, str(eid))  # the other hosts drop their explainers
        return out

    def _clean(self, erasure_id: str, pending: list[str]) -> None:
        root = self.home.resolve()
        for rel in pending:
            if self.in_bucket and rel.startswith(("datasets/", "artifacts/")):
                self.objects.delete(Path(rel).as_posix())  # the bucket's and this cache's
                continue
            path = (self.home / rel).resolve()
            if root in path.parents:  # stored paths are ours, but containment is checked
                path.unlink(missing_ok=True)
        with self.store.write() as s:
            eq.finish_cleanup(s, erasure_id)


def _report(plan: Plan, eid: uuid.UUID | None, dataset: str | None, started: float,
            at: dt.datetime, *, new: dict[uuid.UUID, int],
            shas: dict[uuid.UUID, str] | None = None) -> ErasureReport:
    dry = eid is None
    versions = [ErasedVersion(dataset=h.dataset, version=h.number, rows=h.rows,
                              rows_removed=h.matches, new_version=new.get(h.version_id),
                              new_sha256=(shas or {}).get(h.version_id))
                for h in plan.versions]
    touched = [ErasedFile(path=p, rows_removed=0, action="would delete" if dry else "deleted")
               for p in plan.sources]
    rewritten = [(f.path, f.matches) for f in plan.files]
    rewritten += [(a.path, a.matches) for a in plan.artifacts]
    touched += [ErasedFile(path=path, rows_removed=n,
                           action="would rewrite" if dry else "rewritten")
                for path, n in rewritten]
    return ErasureReport(
        id=None if dry else str(eid), dry_run=dry, columns=plan.columns, dataset=dataset,
        versions=versions, files=touched, predictions_removed=plan.predictions,
        labels_removed=plan.labels, models_flagged=plan.models, backups_holding_data=plan.backups,
        seconds=round(time.perf_counter() - started, 3), at=at.isoformat())


def _counts(r: ErasureReport) -> dict[str, Any]:
    """The audit event's ``after`` and the erasures row's counts: numbers and names only."""
    return {
        "columns": r.columns,
        "dataset": r.dataset,
        "versions": [{"dataset": v.dataset, "version": v.version, "new_version": v.new_version,
                      "rows_removed": v.rows_removed} for v in r.versions],
        "rows_removed": r.rows_removed,
        "files": {"deleted": sum(f.action == "deleted" for f in r.files),
                  "rewritten": sum(f.action == "rewritten" for f in r.files),
                  "rows_removed": sum(f.rows_removed for f in r.files)},
        "tables": {"predictions": r.predictions_removed, "labels": r.labels_removed},
        "models_flagged": r.models_flagged,
        "backups_holding_data": len(r.backups_holding_data),
    }


def _entry(r: eq.ErasureRecord) -> ErasureEntry:
    tables = r.counts.get("tables") or {}
    return ErasureEntry(
        id=r.id, actor=r.actor, columns=r.columns, dataset=r.dataset,
        status="done" if r.status == "done" else "cleaning",
        versions=len(r.counts.get("versions") or []),
        rows_removed=int(r.counts.get("rows_removed") or 0),
        predictions_removed=int(tables.get("predictions") or 0),
        labels_removed=int(tables.get("labels") or 0),
        at=r.created_at.isoformat() if hasattr(r.created_at, "isoformat") else str(r.created_at))
