"""The audit log: every mutation appends one hash-chained event.

``record`` runs inside the caller's write transaction, so the event commits
or rolls back with the change it describes. After commit the chain head is
written to ``audit.head`` beside the store: an anchor outside the database,
so truncating the newest events is detected too, not only edits and gaps.

The anchor may lag the table, never lead it: it is written after the commit
(a ``kill -9`` in between leaves it one transaction behind), and a fresh
store gets the genesis anchor (seq 0) before its first event. So at start
``check_anchor`` accepts a table that runs ahead of the anchor when the
events after it chain onto it, catches the anchor up, and reports anything
else (fewer events than the anchor names, a different event at its seq, a
missing or unreadable anchor while events exist) as a finding that
degrades the store. That check reads the anchor's event and the tail only,
so it costs the same for ten events or a million; ``verify`` recomputes the
whole chain on demand.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from appliance.audit_anchor import SharedAnchor
from appliance.domain.audit import (
    GENESIS,
    Anchor,
    AuditEvent,
    AuditVerification,
    ChainEvent,
    ChainProblem,
    Reanchored,
    event_hash,
    verify_chain,
)
from appliance.domain.principal import Principal
from appliance.errors import Conflict
from appliance.failpoints import failpoint
from appliance.store import audit as q
from appliance.store.db import Store
from appliance.store.tables import AuditEventRow

log = logging.getLogger(__name__)
_HASH = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class AnchorCheck:
    """What the start-up check found: the table's newest seq against the anchor."""

    ok: bool
    newest_seq: int  # 0 for an empty log
    anchor: Anchor | None
    checked: int  # events after the anchor, recomputed and linked to it
    problems: tuple[ChainProblem, ...] = ()

    def describe(self) -> str:
        found = "; ".join(f"seq {p.seq}: {p.problem}" for p in self.problems[:5])
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        return (f"the audit log does not match its anchor (audit.head): {found}{more}. "
                "Writes are refused so the evidence is kept: see `appliance audit verify`, "
                "then restore a backup, or stop the server and accept the log as it is with "
                "`appliance audit reanchor` (recorded in the chain)")


class Auditor:
    """``shared``: the anchor every host shares (scale-out, in the object store; see
    ``appliance.audit_anchor``), written beside the home's file and read with it: the
    newer of the two is the anchor."""

    def __init__(self, store: Store, head_path: Path, *,
                 shared: SharedAnchor | None = None) -> None:
        self.store = store
        self.head_path = head_path
        self.shared = shared
        self._head: tuple[int, str] | None = None  # (seq, hash) of the last committed event

    def record(
        self,
        s: Session,
        who: Principal | str,
        action: str,
        target: str,
        *,
        before: Any = None,
        after: Any = None,
    ) -> AuditEventRow:
        actor = who.actor if isinstance(who, Principal) else who
        # The chain head: from earlier in this transaction, else the last commit's (embedded:
        # this process is the only writer; saves a query on every mutation), else the table
        # (PostgreSQL: always, under an advisory lock held to the commit).
        head = s.info.get("audit_head") or q.chain_head(s, self._head)
        seq, prev = head[0] + 1, head[1]
        at = dt.datetime.now(dt.UTC).isoformat()
        before_j, after_j = _jsonable(before), _jsonable(after)
        digest = event_hash(
            seq=seq, at=at, actor=actor, action=action, target=target,
            before=before_j, after=after_j, prev_hash=prev,
        )
        row = AuditEventRow(
            seq=seq, created_at=at, actor=actor, action=action, target=target,
            before=before_j, after=after_j, prev_hash=prev, hash=digest,
        )
        q.append_event(s, row)
        s.info["audit_head"] = (seq, digest)
        s.info.setdefault("after_commit", []).append(lambda: self._write_head(seq, digest))
        return row

    def _write_head(self, seq: int, digest: str) -> None:
        """Replace the anchor (after the commit, under the store's write lock: in order).

        Flushed before the rename, so a power cut leaves the old anchor or the new
        one, never a torn file. A failed write is logged, not raised: the commit
        stands, the anchor lags, and the next start checks the events since it.
        """
        if self._head is None or seq > self._head[0]:
            self._head = (seq, digest)
        failpoint("audit.before_anchor")
        if self.shared is not None:
            self.shared.publish(seq, digest)
        tmp = self.head_path.with_suffix(".tmp")
        try:
            with tmp.open("wb") as fh:
                fh.write(json.dumps({"seq": seq, "hash": digest}).encode())
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.head_path)
        except OSError as exc:
            log.error("could not write the audit anchor %s (seq %d): %s; the next start "
                      "checks the events after the last anchor", self.head_path, seq, exc)

    # -- checking ------------------------------------------------------------------

    def read_anchor(self) -> tuple[Anchor | None, str | None]:
        """(anchor, problem): ``(None, None)`` when there is no anchor (file, or shared one);
        with both, the newer."""
        local, problem = self._read_file()
        if self.shared is None or problem is not None:
            return local, problem
        shared, problem = self.shared.read()
        if problem is not None:
            return None, problem
        found = [a for a in (local, shared) if a is not None]
        return max(found, key=lambda a: a.seq) if found else None, None

    def _read_file(self) -> tuple[Anchor | None, str | None]:
        try:
            raw = self.head_path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"the anchor audit.head cannot be read: {exc}"
        try:
            data = json.loads(raw)
            seq, digest = data["seq"], data["hash"]
        except (ValueError, KeyError, TypeError):
            return None, "the anchor audit.head is not a {\"seq\", \"hash\"} document"
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0 \
                or not isinstance(digest, str) or not _HASH.fullmatch(digest):
            return None, "the anchor audit.head holds no valid seq and sha256"
        return Anchor(seq, digest), None

    def check_anchor(self, *, repair: bool = True) -> AnchorCheck:
        """The start-up check: the newest events against the anchor (see the module doc).

        With ``repair`` (a writable store) an anchor that lags an intact tail is
        caught up, and an empty log gets the genesis anchor before its first event.
        """
        anchor, unreadable = self.read_anchor()
        with self.store.read() as s:
            last = q.last_event(s)
            newest = last.seq if last else 0
            if anchor is None and unreadable is None and last is not None and self._new_host():
                log.warning("this host has no audit anchor and the shared database holds %d "
                            "events: a new host, anchored at seq %d (copy audit.head from a "
                            "running host first to hold the chain against that host's anchor; "
                            "with APPLIANCE_OBJECT_STORE the anchor is shared once a host has "
                            "published it)", newest, newest)
            problems = self._anchor_problems(s, anchor, unreadable, newest)
            tail = _Counted(q.iter_events(s, from_seq=anchor.seq + 1)) if anchor else None
            if not problems and anchor is not None and tail is not None and newest > anchor.seq:
                problems += verify_chain(tail, start_seq=anchor.seq + 1, prev_hash=anchor.hash)
            checked = tail.count if tail is not None else 0
        result = AnchorCheck(ok=not problems, newest_seq=newest, anchor=anchor, checked=checked,
                             problems=tuple(problems))
        if not result.ok:
            log.error("AUDIT ANCHOR MISMATCH: %s", result.describe())
            return result
        if last is not None:
            self._head = (last.seq, last.hash)
        if repair and (anchor is None or (last is not None and last.seq > anchor.seq)
                       or self.shared is not None):  # the shared anchor catches up too
            if anchor is not None:
                log.warning("the audit anchor was %d event(s) behind the log (a stop between "
                            "a commit and its anchor); the events after it check out, caught "
                            "up to seq %d", checked, newest)
            self._write_head(*(self._head or (0, GENESIS)))
        return result

    def _new_host(self) -> bool:
        """PostgreSQL: no anchor at all (no ``audit.head``, none in the bucket yet: hosts
        starting together on a fresh database publish after their first commits) is a new
        host, the database not being in the home, not a deleted anchor."""
        return self.store.postgres

    def _anchor_problems(self, s: Session, anchor: Anchor | None, unreadable: str | None,
                         newest: int) -> list[ChainProblem]:
        """What the anchor says about the log's newest events (not the chain before them)."""
        if unreadable is not None:
            return [ChainProblem(newest, unreadable)]
        if anchor is None:
            if newest == 0 or self._new_host():
                return []
            return [ChainProblem(newest, f"the anchor audit.head is missing while {newest} "
                                         "events exist: it was deleted")]
        if newest < anchor.seq:
            return [ChainProblem(anchor.seq, f"events after seq {newest} were deleted: the "
                                             f"anchor names seq {anchor.seq}")]
        if anchor.seq == 0:
            return []
        at = next(q.iter_events(s, from_seq=anchor.seq, batch=1), None)
        if at is None or at.seq != anchor.seq:
            return [ChainProblem(anchor.seq, "the event the anchor names was deleted")]
        if at.hash != anchor.hash:
            return [ChainProblem(anchor.seq, "the event at the anchor's seq does not match "
                                             "the anchor: the newest events were replaced")]
        return []

    def recent(self, *, limit: int = 100, offset: int = 0) -> list[AuditEvent]:
        with self.store.read() as s:
            return [event_of(e) for e in q.list_events(s, limit=limit, offset=offset)]

    def verify(self) -> AuditVerification:
        """Recompute the whole chain, then hold its newest events against the anchor."""
        anchor, unreadable = self.read_anchor()
        with self.store.read() as s:
            events = _Counted(q.iter_events(s))
            problems = verify_chain(events)
            last = q.last_event(s)
            problems += self._anchor_problems(s, anchor, unreadable, last.seq if last else 0)
        return AuditVerification(ok=not problems, events=events.count, anchor=anchor,
                                 problems=problems)


def reanchor(store: Store, head_path: Path, *, by: Principal | str,
             shared: SharedAnchor | None = None) -> Reanchored:
    """Accept the log as it is after a finding: record the finding, then re-anchor.

    For an operator who has looked at a mismatch and will not restore a
    backup. The store must be open read-write and not degraded (the server
    stopped; the CLI opens the store itself). The ``audit.reanchor`` event
    carries the old anchor and every problem found, so the evidence moves
    into the chain instead of disappearing; edits found inside the chain
    stay reported by ``verify``.
    """
    auditor = Auditor(store, head_path, shared=shared)
    found = auditor.check_anchor(repair=False)
    if found.ok:
        raise Conflict("the audit log matches its anchor: there is nothing to accept "
                       "(`appliance audit verify` reports any edit inside the chain)")
    verified = auditor.verify()
    full = verified.model_dump(mode="json")  # the event holds the finding as JSON
    with store.write() as s:
        event = auditor.record(s, by, "audit.reanchor", f"audit:{head_path.name}", before={
            "anchor": full["anchor"], "newest_seq": found.newest_seq,
        }, after={"problems": full["problems"][:100], "problem_count": len(full["problems"])})
    if shared is not None:
        shared.close()  # the new anchor is in the bucket before the command ends
    return Reanchored(seq=event.seq, hash=event.hash, previous_anchor=verified.anchor,
                      problems=verified.problems, anchor_ok_before=found.ok)


class _Counted:
    """An iterator that counts what went through it (events checked, without a list)."""

    def __init__(self, items: Iterator[ChainEvent]) -> None:
        self._items = items
        self.count = 0

    def __iter__(self) -> Iterator[ChainEvent]:
        for item in self._items:
            self.count += 1
            yield item


def event_of(e: AuditEventRow) -> AuditEvent:
    return AuditEvent(seq=e.seq, at=e.created_at, actor=e.actor, action=e.action,
                      target=e.target, before=e.before, after=e.after, prev_hash=e.prev_hash,
                      hash=e.hash)


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON so the hashed form is exactly the stored form."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))
