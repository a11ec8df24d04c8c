"""The prediction log's queue: bounded, oldest first, and shedding when full."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from appliance.errors import Overloaded
from appliance.serve.log import PredictionLog


def entries(n: int, start: int = 0) -> list[Any]:
    at = dt.datetime.now(dt.UTC)
    return [(f"r{i}", "m", 1, {"x": i}, 0, None, 0.1, at, "primary")
            for i in range(start, start + n)]


def test_the_log_takes_whole_requests_oldest_first_and_splits_the_last() -> None:
    log = PredictionLog(store=None, batch=5)  # type: ignore[arg-type]  # never written here
    log.offer(entries(3))
    log.offer(entries(4, start=3))
    first = log._take(5)
    assert [e[0] for e in first] == ["r0", "r1", "r2", "r3", "r4"]
    assert log.stats()["queued"] == 2
    assert [e[0] for e in log._take(5)] == ["r5", "r6"]
    assert log.stats()["queued"] == 0


def test_a_full_log_refuses_with_overloaded_and_a_racing_offer_counts_what_it_drops() -> None:
    log = PredictionLog(store=None, capacity=10)  # type: ignore[arg-type]
    log.offer(entries(8))
    log.room_for(2)
    with pytest.raises(Overloaded):
        log.room_for(3)
    log.offer(entries(5, start=8))  # room_for() was skipped: only 2 fit
    assert log.stats()["queued"] == 10 and log.dropped == 3
