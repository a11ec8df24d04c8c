"""The audit log: every mutation appends one hash-chained event.

``record`` runs inside the caller's write transaction, so the event commits
or rolls back with the change it describes. After commit the chain head is
written to ``audit.head`` beside the store: an anchor outside the database,
so truncating the newest events is detected too, not only edits and gaps.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from sqlmodel import Session

from appliance.domain.audit import GENESIS, ChainProblem, event_hash, verify_chain
from appliance.domain.principal import Principal
from appliance.store import audit as q
from appliance.store.db import Store
from appliance.store.tables import AuditEventRow


class Auditor:
    def __init__(self, store: Store, head_path: Path) -> None:
        self.store = store
        self.head_path = head_path
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
        # The chain head: from earlier in this transaction, else the last commit's (this
        # process is the only writer), else the table. Saves a query on every mutation.
        head = s.info.get("audit_head") or self._head
        if head is None:
            last = q.last_event(s)
            head = (last.seq, last.hash) if last else (0, GENESIS)
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
        if self._head is None or seq > self._head[0]:
            self._head = (seq, digest)
        tmp = self.head_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seq": seq, "hash": digest}))
        os.replace(tmp, self.head_path)

    def recent(self, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        with self.store.read() as s:
            return [event_public(e) for e in q.list_events(s, limit=limit, offset=offset)]

    def verify(self) -> dict[str, Any]:
        with self.store.read() as s:
            events = [event_public(e) for e in q.all_events(s)]
        problems = verify_chain(events)
        if self.head_path.exists():
            head = json.loads(self.head_path.read_text())
            last = events[-1] if events else None
            if last is None or last["seq"] < head["seq"]:
                problems.append(ChainProblem(int(head["seq"]), "events after this point were deleted"))
            elif last["seq"] == head["seq"] and last["hash"] != head["hash"]:
                problems.append(ChainProblem(int(head["seq"]), "newest event does not match the anchor"))
        return {
            "ok": not problems,
            "events": len(events),
            "problems": [{"seq": p.seq, "problem": p.problem} for p in problems],
        }


def event_public(e: AuditEventRow) -> dict[str, Any]:
    return {
        "seq": e.seq,
        "at": e.created_at,
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "before": e.before,
        "after": e.after,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON so the hashed form is exactly the stored form."""
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))
