"""Outlier checks resolved by the prediction log's writer: one detector run per batch, the
same flags and scores as scoring each request alone, and a failing detector loses no row."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
from outlier_model import churn_with_detector, customers, out_of_range

from appliance.serve.outliercheck import PendingCheck, resolve
from appliance.train.child.parity import onnx_session

AT = dt.datetime(2026, 12, 3, tzinfo=dt.UTC)


def feeds(records: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in records[0]:
        values = [r[name] for r in records]
        out[name] = (np.asarray(values, dtype=object) if isinstance(values[0], str)
                     else np.asarray(values, dtype=np.float32)).reshape(-1, 1)
    return out


def entries(check: PendingCheck, n: int, prefix: str) -> list[Any]:
    return [(f"{prefix}{i}", "churny", 1, {}, 0, None, 0.1, AT, "primary", check, i)
            for i in range(n)]


class Counting:
    def __init__(self, session: Any) -> None:
        self.session, self.runs = session, 0

    def run(self, names: Any, feeds: dict[str, Any]) -> Any:
        self.runs += 1
        return self.session.run(names, feeds)


def test_resolve_scores_a_batch_of_requests_in_one_run_as_each_alone() -> None:
    detector = Counting(onnx_session(churn_with_detector()[1]))
    first, second = customers(3), [out_of_range(r) for r in customers(2, 5)]
    a = PendingCheck("churny", 1, detector, feeds(first))
    b = PendingCheck("churny", 1, detector, feeds(second))
    plain = ("p0", "churny", 1, {}, 0, None, 0.1, AT, "primary")
    counted: list[tuple[str, int, int, int]] = []

    out = resolve([*entries(a, 3, "a"), plain, *entries(b, 2, "b")],
                  lambda *c: counted.append(c))

    assert detector.runs == 1
    assert out[3] == plain
    alone = [detector.session.run(None, f.feeds) for f in (a, b)]
    expected = [(bool(flag[i, 0]), float(score[i, 0]))
                for score, flag in alone for i in range(len(flag))]
    assert [e[9:] for e in out if len(e) > 9] == expected
    assert [e[9] for e in out[4:]] == [True, True]
    assert counted == [("churny", 1, 5, sum(flag for flag, _ in expected))]


def test_resolve_logs_rows_unchecked_when_the_detector_fails() -> None:
    class Broken:
        def run(self, names: Any, feeds: dict[str, Any]) -> Any:
            raise RuntimeError("onnxruntime says no")

    check = PendingCheck("churny", 1, Broken(), feeds(customers(2)))
    counted: list[Any] = []
    out = resolve(entries(check, 2, "r"), lambda *c: counted.append(c))
    assert [e[0] for e in out] == ["r0", "r1"] and [e[9:] for e in out] == [(None, None)] * 2
    assert counted == []
