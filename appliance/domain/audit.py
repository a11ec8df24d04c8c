"""The audit hash chain: pure maths over event fields, and what the audit log answers.

Each event's hash covers its own fields and the previous event's hash, so
editing any row breaks its own hash, and deleting one breaks the next row's
``prev_hash`` link (and the sequence numbers).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

GENESIS = "0" * 64


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def event_hash(
    *,
    seq: int,
    at: str,
    actor: str,
    action: str,
    target: str,
    before: Any,
    after: Any,
    prev_hash: str,
) -> str:
    body = canonical(
        {
            "seq": seq,
            "at": at,
            "actor": actor,
            "action": action,
            "target": target,
            "before": before,
            "after": after,
            "prev": prev_hash,
        }
    )
    return hashlib.sha256(body.encode()).hexdigest()


@dataclass(frozen=True)
class ChainProblem:
    """A break in the chain at ``seq``."""

    seq: int
    problem: str


@dataclass(frozen=True)
class Anchor:
    """The newest ``(seq, hash)`` the anchor file vouches for; seq 0 is the genesis."""

    seq: int
    hash: str


class ChainEvent(NamedTuple):
    """The hashed fields of one event, as the store reads them for a chain check."""

    seq: int
    at: str
    actor: str
    action: str
    target: str
    before: Any
    after: Any
    prev_hash: str
    hash: str


def verify_chain(events: Iterable[ChainEvent], *, start_seq: int = 1,
                 prev_hash: str = GENESIS) -> list[ChainProblem]:
    """Check events (ordered by seq) and return every break found; empty means intact.

    ``start_seq`` and ``prev_hash`` let a caller check a tail of the chain: the
    events after a trusted one (the anchor), linked to that event's hash.
    """
    problems: list[ChainProblem] = []
    prev = prev_hash
    expected_seq = start_seq
    for e in events:
        seq = int(e.seq)
        if seq != expected_seq:
            problems.append(ChainProblem(seq, f"sequence gap: expected {expected_seq}"))
        if e.prev_hash != prev:
            problems.append(ChainProblem(seq, "prev_hash does not match the previous event"))
        recomputed = event_hash(
            seq=seq,
            at=e.at,
            actor=e.actor,
            action=e.action,
            target=e.target,
            before=e.before,
            after=e.after,
            prev_hash=e.prev_hash,
        )
        if recomputed != e.hash:
            problems.append(ChainProblem(seq, "hash does not match the event's contents"))
        prev = e.hash
        expected_seq = seq + 1
    return problems


# -- what the audit log answers -------------------------------------------------------


class AuditEvent(BaseModel):
    """One hash-chained event of the audit log."""

    model_config = ConfigDict(frozen=True)

    seq: int
    at: str
    actor: str
    action: str
    target: str
    before: Any = Field(description="The target as it was (JSON), when it matters.")
    after: Any = Field(description="The target as it became (JSON).")
    prev_hash: str
    hash: str


class AuditVerification(BaseModel):
    """The whole chain recomputed, and its newest events held against the anchor."""

    model_config = ConfigDict(frozen=True)

    ok: bool
    events: int = Field(description="Events checked.")
    anchor: Anchor | None = Field(description="What audit.head vouches for; null when absent.")
    problems: list[ChainProblem]


class Reanchored(BaseModel):
    """The audit log accepted as it is after a finding: the event that records it."""

    model_config = ConfigDict(frozen=True)

    seq: int
    hash: str
    previous_anchor: Anchor | None
    problems: list[ChainProblem]
    anchor_ok_before: bool
