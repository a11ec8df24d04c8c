"""Ingesting one claimed file: hash, dedupe, parse in a child, record, file away.

The order is what makes ``kill -9`` safe at any moment:

1. the file is claimed (atomic rename into ``claimed/``): from here on it is
   either still in ``claimed/`` or fully recorded;
2. the bytes are hashed; the same bytes as an existing version are a
   duplicate, unless that version was recorded by this very claim (a crash
   after commit), in which case only the filing away is redone;
3. a child process parses, validates and writes a staging Parquet file; a
   file whose size or mtime changed meanwhile is refused (its writer was
   not done: ``changed_while_reading``);
4. the Parquet file is renamed to its final, content-addressed place;
5. one transaction records the version, its contract, its ingest row, its
   lineage edges and its audit event: nothing is visible before this commit;
6. the claimed file is moved to ``archive/`` (or ``quarantine/``);
7. what happened is published on the event bus (``VersionAccepted``,
   ``FileQuarantined``, ``IngestFinished``): alerts, metrics and the training
   loop react there, never inside this pipeline.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, Protocol

from appliance.audit import Auditor
from appliance.config import Settings
from appliance.domain.events import FileQuarantined, IngestFinished, VersionAccepted
from appliance.domain.ingest import Ingest, IngestOutcome, Reason, VersionStatus
from appliance.domain.lineage import dataset_node, file_node, version_node
from appliance.domain.names import check_dataset_name, check_file_name, printable_name
from appliance.domain.principal import INBOX, Principal
from appliance.domain.reports import ValidationReport
from appliance.domain.serving import Feedback
from appliance.durable import require_free_disk
from appliance.errors import (
    ApplianceError,
    IngestRejected,
    InsufficientDisk,
    StoreUnavailable,
)
from appliance.events import EventBus
from appliance.failpoints import failpoint
from appliance.ingest import inbox
from appliance.ingest.files import UploadSink, check_unchanged, sha256_file
from appliance.ingest.formats import detect_format
from appliance.ingest.labels import LABELS_SUFFIX, read_labels
from appliance.ingest.parse import ParseLimits, ParseResult
from appliance.ingest.publish import publish_snapshot, readable
from appliance.ingest.worker import ParserPool
from appliance.objects import LocalObjectStore, ObjectStore
from appliance.store import datasets as dq
from appliance.store import ingests as iq
from appliance.store import lineage as lq
from appliance.store.db import Store
from appliance.store.tables import DatasetVersionRow, IngestRow

log = logging.getLogger(__name__)
_CHUNK = 4 * 1024 * 1024



class LabelSink(Protocol):
    """Where delayed labels from ``inbox/<model>__labels/`` go (the prediction service):
    joined to the prediction log; the answer counts ``received`` and ``matched``."""

    def feedback(self, model: str, labels: Any, *, source: str = ...) -> Feedback: ...


class IngestService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        auditor: Auditor,
        *,
        events: EventBus,
        labels: LabelSink | None = None,
        objects: ObjectStore | None = None,  # where snapshots go (default: the home)
    ) -> None:
        self.settings = settings
        self.objects = objects if objects is not None else LocalObjectStore(settings.home)
        self.store = store
        self.auditor = auditor
        # VersionAccepted, FileQuarantined, IngestFinished (see appliance.domain.events)
        self.events = events
        self.labels = labels  # None: this process does not take label files
        self.pool = ParserPool(ParseLimits.from_settings(settings))
        self._lock = threading.Lock()  # one file at a time: the parser child is single
        # Column summaries are made after a version is recorded, one at a time.
        self._summaries = ThreadPoolExecutor(1, thread_name_prefix="ingest-summary")

    def close(self) -> None:
        self._summaries.shutdown(wait=True, cancel_futures=True)
        self.pool.close()

    # -- entry points -------------------------------------------------------

    def ingest_claim(self, claim: inbox.Claim, *, who: Principal = INBOX) -> Ingest:
        with self._lock:
            started = time.perf_counter()
            try:
                out = self._ingest(claim, who, started)
            except InsufficientDisk:
                raise  # leave the claim where it is: it is retried later
            except IngestRejected as exc:
                out = self._quarantine(claim, who, exc.reason, exc.message, started,
                                       detail=exc.detail)
            except ApplianceError:
                raise  # the store is unavailable: the claim stays and is retried
            except Exception as exc:
                # A bug or a library failure: the file still leaves claimed/ with a reason,
                # an ingest row and an alert, so nobody loses sight of it.
                if self.store.degraded:
                    raise
                log.exception("ingesting %s/%s failed", claim.dataset, claim.name)
                out = self._quarantine(claim, who, Reason.internal,
                                       f"{type(exc).__name__}: {exc}"[:2000], started)
            self.events.publish(IngestFinished(out.outcome.value, time.perf_counter() - started))
            return out

    def open_upload(self, *, file_name: str, dataset: str) -> UploadSink:
        """Start an upload (API body or a local file): checked names, capped size."""
        if self.store.degraded:
            raise StoreUnavailable(f"the store is read-only: {self.store.degraded_reason}")
        base = os.path.basename(file_name)
        check_dataset_name(dataset)
        check_file_name(base)
        detect_format(base)
        self._check_disk(0)
        return UploadSink(self.settings.claimed_dir, dataset, base, self.settings.max_file_bytes)

    def ingest_stream(
        self,
        stream: IO[bytes],
        *,
        file_name: str,
        dataset: str,
        who: Principal,
        progress: Callable[[int], None] | None = None,
    ) -> Ingest:
        """Copy a local file into the claimed area, then ingest it: the inbox's path."""
        sink = self.open_upload(file_name=file_name, dataset=dataset)
        try:
            while chunk := stream.read(_CHUNK):
                sink.write(chunk)
                if progress:
                    progress(len(chunk))
            claim = sink.commit()
        finally:
            sink.discard()
        return self.ingest_claim(claim, who=who)

    def quarantine_entry(self, entry: inbox.Hostile) -> Ingest:
        """A hostile inbox entry: moved aside unopened, then reason JSON, ingest row, audit
        event and alert as for any refusal, its name escaped (it may not be UTF-8)."""
        started = time.perf_counter()
        claim_id = uuid.uuid4().hex
        name = printable_name(entry.path.name)
        dataset = entry.dataset or inbox.INVALID_DATASET_FOLDER
        inbox.quarantine(
            entry.path, quarantine_dir=self.settings.quarantine_dir, dataset=entry.dataset,
            name=name, reason=entry.reason, message=entry.message, claim_id=claim_id,
        )
        self.events.publish(FileQuarantined(dataset, name, entry.reason.value, entry.message))
        out = self._record_ingest(
            claim_id, dataset=dataset, file_name=name, who=INBOX,
            outcome=IngestOutcome.quarantined, reason=entry.reason.value,
            message=entry.message, started=started,
        )
        self.events.publish(IngestFinished(out.outcome.value, time.perf_counter() - started))
        return out

    def summarize_later(self, version_id: uuid.UUID, parquet: Path) -> Future[None]:
        """Queue the column summary of a recorded version (the console's charts).

        A version is accepted once validated and durable; its summary follows
        a moment later, so it is not on the acceptance path. Until then the
        version's ``summary_status`` is ``pending``; after a crash, ``recover``
        queues every version still without one.
        """
        return self._summaries.submit(self._summarize, version_id, parquet)

    def _summarize(self, version_id: uuid.UUID, parquet: Path) -> None:
        try:
            summary = self.pool.summarize(parquet)
        except RuntimeError:
            log.exception("summary of %s failed; it stays pending", parquet)
            return
        with self.store.write() as s:
            row = s.get(DatasetVersionRow, version_id)
            if row is not None:
                row.summary = summary
                s.add(row)

    def recover(self) -> list[Ingest]:
        """At start: ``recover_claims``, then queue the summaries still pending."""
        results = self.recover_claims()
        self.recover_summaries()
        return results

    def recover_summaries(self) -> None:
        """Queue the column summary of every version still without one (its host died
        between recording the version and summarising it)."""
        with self.store.read() as s:
            pending = [(v.id, v.parquet_path) for v in dq.versions_without_summary(s)]
        for version_id, path in readable(self.objects, pending):
            self.summarize_later(version_id, path)

    def recover_claims(self) -> list[Ingest]:
        """At start only (later, these are uploads in flight): drop stale staging files
        and cut-off uploads, ingest every claimed file a crash left. In scale-out every
        host does this at its start, leader or not: its home's files are its own."""
        if self.settings.staging_dir.exists():
            for leftover in self.settings.staging_dir.iterdir():
                leftover.unlink(missing_ok=True)
        for partial in self.settings.claimed_dir.glob("*/.*.part"):
            partial.unlink(missing_ok=True)  # its uploader never got an answer: nothing lost
        return self.finish_claims()

    def finish_claims(self) -> list[Ingest]:
        """Ingest every file still in ``claimed/`` (after a crash, or once disk is free)."""
        results = []
        for claim in inbox.pending_claims(self.settings.claimed_dir):
            try:
                results.append(self.ingest_claim(claim))
            except InsufficientDisk:
                log.warning("not enough disk to ingest %s yet", claim.path)
                break
        return results

    def recent(self, *, dataset: str | None = None, limit: int = 50) -> list[Ingest]:
        """The ingest ledger, newest first."""
        limit = max(1, min(limit, 1000))
        with self.store.read() as s:
            return [ingest_of(r) for r in iq.list_ingests(s, dataset=dataset, limit=limit)]

    # -- the pipeline -------------------------------------------------------

    def _ingest(self, claim: inbox.Claim, who: Principal, started: float) -> Ingest:
        st = os.stat(claim.path, follow_symlinks=False)
        problem = inbox.entry_problem(st)
        if problem:
            raise IngestRejected(Reason.not_regular_file, f"{claim.name!r} is {problem}")
        if st.st_size > self.settings.max_file_bytes:
            raise IngestRejected(
                Reason.too_big,
                f"{claim.name!r} is {st.st_size} bytes; the limit is {self.settings.max_file_bytes}",
            )
        fmt = detect_format(claim.name)
        self._check_disk(st.st_size)
        if claim.dataset.endswith(LABELS_SUFFIX):
            return self._ingest_labels(claim, fmt, who, started, st)
        with self.store.read() as s:
            already = s.get(IngestRow, uuid.UUID(claim.id))
            ds = dq.get_dataset(s, claim.dataset)
            contract = dq.current_contract(s, ds.id) if ds else None
        if already is not None:
            return self._finish_recovered(claim, already)

        # Hash in this thread while the child parses: hashlib releases the GIL,
        # so the two overlap and the duplicate check costs no extra pass.
        staging = self.settings.staging_dir / f"{claim.id}.parquet"
        with ThreadPoolExecutor(1, thread_name_prefix="ingest-parse") as ex:
            parsing = ex.submit(
                self.pool.parse, claim.path, staging, fmt=fmt, dataset=claim.dataset,
                contract_yaml=contract.yaml if contract else None,
                contract_version=contract.version if contract else None,
            )
            sha = sha256_file(claim.path)
            hashed = time.perf_counter()
            result = parsing.result()
        check_unchanged(claim.path, claim.name, st, discard=staging)
        log.info("%s/%s: hashed in %.3f s, parsed in %.3f s (%s)", claim.dataset, claim.name,
                 hashed - started, time.perf_counter() - started, result.reason or "ok")
        with self.store.read() as s:
            existing = dq.find_version_by_sha(s, ds.id, sha) if ds else None
        if existing is not None:
            staging.unlink(missing_ok=True)
            raise IngestRejected(
                Reason.duplicate,
                f"the same bytes are already {claim.dataset} version {existing.number}",
                detail={"version": existing.number, "sha256": sha},
            )
        if not result.ok:
            staging.unlink(missing_ok=True)
            raise IngestRejected(Reason(result.reason or Reason.internal), result.message)
        return self._record_version(claim, who, sha, st.st_size, staging, result, started,
                                    checked_against=contract.version if contract else None)

    def _record_version(
        self,
        claim: inbox.Claim,
        who: Principal,
        sha: str,
        size: int,
        staging: Path,
        result: ParseResult,
        started: float,
        *,
        checked_against: int | None,
    ) -> Ingest:
        rel, final = publish_snapshot(self.objects, claim.dataset, sha, staging)
        failpoint("ingest.before_commit")
        report = result.report or {"passed": False, "failures": []}
        passed = bool(report.get("passed"))
        status = VersionStatus.accepted if passed else VersionStatus.rejected
        outcome = IngestOutcome.accepted if passed else IngestOutcome.rejected
        duration_ms = (time.perf_counter() - started) * 1000
        with self.store.write() as s:
            ds = dq.get_or_create_dataset(s, claim.dataset)
            contract_version = checked_against
            if contract_version is None:
                # The dataset's first file: the contract inferred from it becomes v1.
                contract = dq.current_contract(s, ds.id)
                if contract is None:
                    if not result.contract_yaml:
                        raise IngestRejected(Reason.internal, "no contract was inferred")
                    contract = dq.add_contract(s, ds.id, yaml=result.contract_yaml,
                                               inferred=True, created_by=who.actor)
                    self.auditor.record(s, who, "contract.create", dataset_node(claim.dataset),
                                        after={"version": contract.version, "inferred": True})
                contract_version = contract.version
            number = dq.next_version_number(s, ds.id)
            report = {**report, "contract_version": contract_version}
            row = DatasetVersionRow(
                dataset_id=ds.id, number=number, status=status.value, sha256=sha,
                size_bytes=size, rows=result.rows, columns=result.columns,
                parquet_path=str(rel), source_file=claim.name, claim_id=claim.id,
                contract_version=contract_version, report=report,
            )
            s.add(row)
            headline = ValidationReport.from_dict(report).headline()
            # "accepted", "accepted with 2 warnings: ...", or "contract failed: ..."
            message = ("accepted" + headline.removeprefix("passed") if passed
                       else "contract failed: " + headline)
            s.add(IngestRow(
                id=uuid.UUID(claim.id), dataset=claim.dataset, file_name=claim.name,
                sha256=sha, size_bytes=size, outcome=outcome.value,
                reason=None if passed else Reason.contract_failed.value, message=message,
                version_number=number, actor=who.actor, duration_ms=duration_ms,
            ))
            vnode = version_node(claim.dataset, number)
            lq.add_edge(s, src=file_node(sha), dst=vnode, relation="ingested_as")
            lq.add_edge(s, src=vnode, dst=dataset_node(claim.dataset), relation="version_of")
            self.auditor.record(
                s, who, "dataset.version.create", vnode,
                after={"status": status.value, "sha256": sha, "rows": result.rows,
                       "file": claim.name},
            )
        failpoint("ingest.after_commit")
        self.summarize_later(row.id, final)
        if passed:
            inbox.archive(claim, self.settings.archive_dir)
            # a failing subscriber is logged by the bus: the file is recorded, and the
            # jobs reconcile at the next start
            self.events.publish(VersionAccepted(claim.dataset, number))
        else:
            inbox.quarantine(
                claim.path, quarantine_dir=self.settings.quarantine_dir, dataset=claim.dataset,
                name=claim.name, reason=Reason.contract_failed, message=message,
                claim_id=claim.id, detail={"version": number, "report": report},
            )
            self.events.publish(FileQuarantined(claim.dataset, claim.name,
                                                Reason.contract_failed.value, message,
                                                version=number))
        return Ingest(
            id=claim.id, dataset=claim.dataset, file_name=claim.name, sha256=sha,
            size_bytes=size, outcome=outcome,
            reason=None if passed else Reason.contract_failed.value,
            message=message, version=number, duration_ms=duration_ms,
            at=dt.datetime.now(dt.UTC).isoformat(),
        )

    def _ingest_labels(self, claim: inbox.Claim, fmt: str, who: Principal, started: float,
                       before: os.stat_result) -> Ingest:
        """``inbox/<model>__labels/<file>``: request_id,label rows, joined to predictions."""
        model = claim.dataset.removesuffix(LABELS_SUFFIX)
        with self.store.read() as s:
            already = s.get(IngestRow, uuid.UUID(claim.id))
        if already is not None:
            return self._finish_recovered(claim, already)
        if self.labels is None:
            raise IngestRejected(Reason.internal, "labels are not taken by this process")
        records = read_labels(self.pool, claim, fmt=fmt, before=before,
                              staging=self.settings.staging_dir / f"{claim.id}.parquet")
        try:
            out = self.labels.feedback(model, records, source="file")
        except ApplianceError as exc:
            raise IngestRejected(Reason.contract_failed, exc.message, detail=exc.detail) from exc
        message = f"{out.received} labels, {out.matched} matched to predictions"
        row = IngestRow(
            id=uuid.UUID(claim.id), dataset=claim.dataset, file_name=claim.name,
            sha256=sha256_file(claim.path), size_bytes=before.st_size,
            outcome=IngestOutcome.accepted.value,
            message=message, actor=who.actor,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        labels = out.model_dump()
        with self.store.write() as s:
            iq.add_ingest(s, row)
            self.auditor.record(s, who, "labels.ingest", f"model:{model}",
                                after={"file": claim.name, **labels})
        inbox.archive(claim, self.settings.archive_dir)
        return ingest_of(row, labels=labels)

    def _finish_recovered(self, claim: inbox.Claim, row: IngestRow) -> Ingest:
        """The crash came after commit: only the filing away is left to do."""
        if row.outcome == IngestOutcome.accepted.value:
            inbox.archive(claim, self.settings.archive_dir)
        else:
            inbox.quarantine(
                claim.path, quarantine_dir=self.settings.quarantine_dir, dataset=claim.dataset,
                name=claim.name, reason=row.reason or Reason.internal, message=row.message,
                claim_id=claim.id,
            )
        return ingest_of(row, outcome=IngestOutcome.recovered)

    def _quarantine(
        self,
        claim: inbox.Claim,
        who: Principal,
        reason: str,
        message: str,
        started: float,
        *,
        detail: Any = None,
    ) -> Ingest:
        size = None
        with contextlib.suppress(OSError):
            size = os.stat(claim.path, follow_symlinks=False).st_size
        inbox.quarantine(
            claim.path, quarantine_dir=self.settings.quarantine_dir, dataset=claim.dataset,
            name=claim.name, reason=reason, message=message, claim_id=claim.id, detail=detail,
        )
        self.events.publish(FileQuarantined(claim.dataset, claim.name, reason, message))
        return self._record_ingest(
            claim.id, dataset=claim.dataset, file_name=claim.name, who=who,
            outcome=IngestOutcome.quarantined, reason=reason, message=message,
            started=started, size=size,
        )

    def _record_ingest(
        self,
        claim_id: str,
        *,
        dataset: str,
        file_name: str,
        who: Principal,
        outcome: IngestOutcome,
        reason: str | None,
        message: str,
        started: float,
        size: int | None = None,
    ) -> Ingest:
        file_name = printable_name(file_name)
        row = IngestRow(
            id=uuid.UUID(claim_id), dataset=dataset, file_name=file_name, size_bytes=size,
            outcome=outcome.value, reason=reason, message=message, actor=who.actor,
            duration_ms=(time.perf_counter() - started) * 1000,
        )
        with self.store.write() as s:
            iq.add_ingest(s, row)
            self.auditor.record(s, who, "ingest.quarantine", f"file:{dataset}/{file_name}",
                                after={"reason": reason, "message": message})
        return ingest_of(row)

    def _check_disk(self, incoming: int) -> None:
        require_free_disk(self.settings.home, floor_mb=self.settings.min_free_disk_mb,
                          extra_bytes=2 * incoming, doing="ingesting")


def ingest_of(row: IngestRow, *, outcome: IngestOutcome | None = None,
              labels: dict[str, Any] | None = None) -> Ingest:
    """The ledger entry of a row (``outcome`` overrides the stored one: ``recovered``)."""
    return Ingest(
        id=str(row.id).replace("-", ""),
        dataset=row.dataset,
        file_name=row.file_name,
        sha256=row.sha256,
        size_bytes=row.size_bytes,
        outcome=outcome or IngestOutcome(row.outcome),
        reason=row.reason,
        message=row.message,
        version=row.version_number,
        at=row.created_at.isoformat(),
        duration_ms=row.duration_ms,
        labels=labels,
    )
