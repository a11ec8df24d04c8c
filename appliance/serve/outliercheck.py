"""Outlier scoring of logged predictions, off the request path.

A request to a version with an outlier detector leaves, on each of its log
entries, one shared :class:`PendingCheck` (the detector's session and the very
tensors the model was fed) and the row's index in them. The prediction log's
writer thread resolves them just before a batch is stored (:func:`resolve`):
one onnxruntime run per detector over every row of the batch, its tensors
concatenated, so a request pays only for attaching the check (under a
microsecond) and a logged row about a microsecond of the writer's time, where
scoring each request as it is answered cost 20-40 us a request (measured:
bench/outlier_latency.py). The flags reach the log and ``/metrics`` when the
batch is written (every 0.25 s; every reader of the log flushes it first).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# (model, version, rows checked, rows flagged) for each detector run
OnChecked = Callable[[str, int, int, int], None]


@dataclass(frozen=True, slots=True, eq=False)
class PendingCheck:
    """One request's rows waiting for its version's outlier detector."""

    model: str
    version: int
    detector: Any
    feeds: dict[str, Any]


def resolve(entries: list[Any], on_checked: OnChecked | None = None) -> list[Any]:
    """``entries`` with every ``(..., PendingCheck, row)`` tail replaced by ``(..., outlier,
    outlier_score)``; entries without one are returned as they are."""
    groups: dict[int, list[int]] = {}
    for i, e in enumerate(entries):
        if len(e) > 9 and isinstance(e[9], PendingCheck):
            groups.setdefault(id(e[9].detector), []).append(i)
    if not groups:
        return entries
    out = list(entries)
    for positions in groups.values():
        checks = list({id(entries[i][9]): entries[i][9] for i in positions}.values())
        results = _run(checks)
        flagged = 0
        for i in positions:
            e = entries[i]
            if results is None:
                out[i] = (*e[:9], None, None)
                continue
            flags, scores, offsets = results
            k = offsets[id(e[9])] + e[10]
            flagged += flags[k]
            out[i] = (*e[:9], flags[k], scores[k])
        if results is not None and on_checked is not None:
            first = checks[0]
            try:
                on_checked(first.model, first.version, len(positions), flagged)
            except Exception:  # metrics never lose a batch of the log
                log.exception("counting outliers failed")
    return out


def _run(checks: list[PendingCheck]
         ) -> tuple[list[bool], list[float], dict[int, int]] | None:
    """(flags, scores, row offset of each check) from one detector run over all of them."""
    import numpy as np

    offsets, n = {}, 0
    for c in checks:
        offsets[id(c)] = n
        n += len(next(iter(c.feeds.values())))
    feeds = checks[0].feeds if len(checks) == 1 else {
        name: np.concatenate([c.feeds[name] for c in checks]) for name in checks[0].feeds}
    try:
        score, flag = checks[0].detector.run(None, feeds)
    except Exception:  # onnxruntime raises its own types; the rows are logged unchecked
        log.exception("outlier scoring with %s v%s failed", checks[0].model, checks[0].version)
        return None
    return flag.reshape(-1).tolist(), score.reshape(-1).tolist(), offsets
