"""The canary verdict and its rule over a real store: the test reads the right rows, and
the rule promotes, rolls back or asks an approver, audited.

Two tiny ONNX versions are registered (v1 champion, v2 the canary) and the
prediction log and labels are written straight into the store, so each arm's
outcomes are exactly what the test says they are.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from appliance.domain.canary import CanaryActionKind, Verdict
from appliance.domain.principal import SYSTEM
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.store.predictions import append_labels, append_predictions

from .test_traffic import tiny_onnx

GATE = {"metric": "accuracy", "value": 0.9, "champion_version": 1, "champion_value": 0.8,
        "min_delta": 0.0, "passed": True}


@dataclass(frozen=True)
class Rule:
    auto: bool = True
    alpha: float = 0.05
    tau: float = 0.1
    min_samples: int = 50


@pytest.fixture(scope="module")
def appliance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One in-process appliance for the module; each test has models of its own."""
    from appliance_test_support import make_settings

    from appliance.runtime import build

    built = build(make_settings(tmp_path_factory.mktemp("canary") / "home"))
    yield built
    built.close()


@dataclass
class Case:
    app: Any
    model: str


_count = itertools.count()


@pytest.fixture
def case(appliance: Any) -> Case:
    """A fresh model: v1 (champion) and v2 (its gate passed against v1), canary v2 at 40%,
    shadow v1 kept."""
    model = f"cn_churn{next(_count)}"
    for facts in ({}, {"gate": GATE}):
        appliance.registry.register(model=model, onnx_bytes=tiny_onnx(), flavor="onnx",
                                    by=SYSTEM, task="classification", facts=facts)
    appliance.registry.set_alias(model, "champion", 1, reason="t", by=SYSTEM)
    route(appliance, model, canary=2)
    return Case(appliance, model)


def alerts(c: Case) -> list[Any]:
    return [a for a in c.app.alerts.list_alerts() if a.key == c.model]


def audited(c: Case, prefix: str = "model.canary") -> list[Any]:
    return [e for e in c.app.auditor.recent(limit=50)
            if e.action.startswith(prefix) and e.target == f"model:{c.model}"]


def route(app: Any, model: str, *, canary: int | None, shadow: int | None = 1) -> None:
    app.serving.set_routing(model, {
        "canary": None if canary is None else {"version": canary, "percent": 40},
        "shadow": None if shadow is None else {"version": shadow}}, by=SYSTEM)


def traffic(app: Any, model: str, *, primary: float, canary: float, n: int = 400, seed: int = 0,
            regression: bool = False, start: dt.datetime | None = None,
            rid: str = "r") -> None:
    """``n`` labelled requests, 40% to the canary v2; each answer is right with its arm's
    accuracy (a classifier), or off by a normal error with the arm's sd (a regressor).
    Shadow scores of every request are logged too, always right: they must not count."""
    rng = np.random.default_rng(seed)
    at = start or dt.datetime.now(dt.UTC)
    entries, labels = [], []
    for i in range(n):
        is_canary = bool(rng.random() < 0.4)
        role, version, quality = ("canary", 2, canary) if is_canary else ("primary", 1, primary)
        when = at + dt.timedelta(microseconds=100 * i)  # 400 requests: 40 ms
        if regression:
            label = float(rng.normal(10.0, 1.0))
            pred: Any = label + float(rng.normal(0.0, quality))
        else:
            label = "yes" if rng.random() < 0.5 else "no"
            pred = label if rng.random() < quality else ("no" if label == "yes" else "yes")
        entries.append((f"{model}{rid}{i}", model, version, {"x": 1.0}, pred, None, 1.0, when, role))
        entries.append((f"{model}{rid}{i}", model, 3, {"x": 1.0}, label, None, 1.0, when, "shadow"))
        labels.append((f"{model}{rid}{i}", label))
    with app.store.write() as s:
        append_predictions(s, entries)
        append_labels(s, model, labels, "test", dt.datetime.now(dt.UTC))


def test_verdict_better_canary_with_evidence(case: Case) -> None:
    traffic(case.app, case.model, primary=0.7, canary=0.95)
    v = case.app.canary.verdict(case.model, min_samples=50)
    assert v.verdict is Verdict.canary_better and v.conclusive
    assert v.metric == "accuracy" and v.tested == "accuracy" and v.higher_is_better
    assert v.p_value <= 0.05 and v.lower is not None and v.lower > 0
    assert v.primary.version == 1 and v.canary.version == 2
    assert v.primary.n + v.canary.n == 400  # the shadow scores are left out
    assert v.canary.metric == pytest.approx(v.canary.mean)
    assert v.canary.metric > v.primary.metric
    assert v.decided_at is not None and v.decided_at <= 400
    assert v.history and v.history[-1].n == 400
    assert "better" in v.reason


def test_verdict_worse_regressor_on_squared_error(appliance: Any) -> None:
    model = f"cn_price{next(_count)}"
    for _ in range(2):
        appliance.registry.register(model=model, onnx_bytes=tiny_onnx(), flavor="onnx",
                                    by=SYSTEM, task="regression")
    appliance.registry.set_alias(model, "champion", 1, reason="t", by=SYSTEM)
    route(appliance, model, canary=2, shadow=None)
    traffic(appliance, model, primary=1.0, canary=2.0, regression=True)
    v = appliance.canary.verdict(model, min_samples=50)
    assert v.verdict is Verdict.canary_worse
    assert v.metric == "rmse" and v.tested == "mean_squared_error" and not v.higher_is_better
    assert v.canary.metric == pytest.approx(math.sqrt(v.canary.mean or 0.0))
    assert v.difference is not None and v.difference > 0


def test_verdict_waits_for_min_samples_per_arm(case: Case) -> None:
    traffic(case.app, case.model, primary=0.5, canary=1.0, n=100)
    v = case.app.canary.verdict(case.model, min_samples=80)
    assert v.verdict is Verdict.not_yet_conclusive
    assert v.p_value == 1.0 and v.lower is None and v.upper is None and v.history == []
    assert "waiting for 80 labelled requests per arm" in v.reason


def test_verdict_counts_only_requests_since_the_canary_was_routed(case: Case) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    traffic(case.app, case.model, primary=0.5, canary=1.0, n=300, start=before, rid="old")
    v = case.app.canary.verdict(case.model, min_samples=50)
    assert v.primary.n == 0 and v.canary.n == 0
    traffic(case.app, case.model, primary=0.8, canary=0.8, n=200, seed=3)
    v = case.app.canary.verdict(case.model, min_samples=50)
    assert v.primary.n + v.canary.n == 200


def test_verdict_without_a_canary_or_with_the_champion_as_canary_is_refused(case: Case) -> None:
    route(case.app, case.model, canary=1)
    with pytest.raises(Conflict, match="is its champion already"):
        case.app.canary.verdict(case.model)
    route(case.app, case.model, canary=None)
    with pytest.raises(NotFound, match="has no canary"):
        case.app.canary.verdict(case.model)
    with pytest.raises(NotFound):
        case.app.canary.verdict("cn_nobody")


@pytest.mark.parametrize(("field", "kwargs"), [("alpha", {"alpha": 0.0}),
                                               ("alpha", {"alpha": 0.7}),
                                               ("tau", {"tau": -1.0}),
                                               ("tau", {"tau": float("nan")}),
                                               ("min_samples", {"min_samples": 1})])
def test_verdict_refuses_bad_settings(appliance: Any, field: str,
                                      kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as err:
        appliance.canary.verdict("cn_any", **kwargs)
    assert err.value.detail == {"field": field}


def test_act_promotes_a_better_canary_and_leaves_the_shadow(case: Case) -> None:
    app = case.app
    traffic(app, case.model, primary=0.7, canary=0.95)
    out = app.canary.act(case.model, Rule())
    assert out.action is CanaryActionKind.promoted
    assert app.registry.aliases(case.model)["champion"] == 2
    routing = app.serving.routing(case.model).routing
    assert routing.canary is None and routing.shadow is not None
    events = audited(case)
    assert [e.action for e in events] == ["model.canary.promote"]
    assert events[0].after["verdict"] == "canary_better"
    assert events[0].after["n_canary"] == out.verdict.canary.n
    assert app.auditor.verify().ok
    assert app.registry.history(case.model, "champion")[0].reason.startswith("canary verdict:")


def test_act_rolls_back_a_worse_canary(case: Case) -> None:
    app = case.app
    traffic(app, case.model, primary=0.95, canary=0.7)
    out = app.canary.act(case.model, Rule())
    assert out.action is CanaryActionKind.rolled_back
    assert app.registry.aliases(case.model)["champion"] == 1
    assert app.serving.routing(case.model).routing.canary is None
    assert [e.action for e in audited(case)] == ["model.canary.rollback"]
    assert [(a.kind, a.status) for a in alerts(case)] == [("canary", "open")]


def test_act_asks_an_approver_when_the_job_requires_approval(case: Case) -> None:
    app = case.app
    traffic(app, case.model, primary=0.7, canary=0.95)
    out = app.canary.act(case.model, Rule(), require_approval=True)
    assert out.action is CanaryActionKind.approval_requested
    assert "the job requires approval" in out.message
    assert app.registry.aliases(case.model)["champion"] == 1
    assert app.serving.routing(case.model).routing.canary is not None
    (alert,) = alerts(case)
    assert alert.kind == "canary" and alert.detail["verdict"] == "canary_better"
    assert audited(case) == []


def test_act_asks_an_approver_when_the_gate_refuses_the_move(case: Case) -> None:
    app, model = case.app, case.model
    app.registry.register(model=model, onnx_bytes=tiny_onnx(), flavor="onnx", by=SYSTEM,
                          task="classification")  # v3: no comparison with the champion
    route(app, model, canary=3)
    rng = np.random.default_rng(9)
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
    entries = [(f"{model}g{i}", model, 3 if i % 2 else 1, {"x": 1.0},
                "yes" if (i % 2 or rng.random() < 0.6) else "no", None, 1.0,
                at + dt.timedelta(milliseconds=i), "canary" if i % 2 else "primary")
               for i in range(400)]
    with app.store.write() as s:
        append_predictions(s, entries)
        append_labels(s, model, [(f"{model}g{i}", "yes") for i in range(400)], "test",
                      dt.datetime.now(dt.UTC))
    out = app.canary.act(model, Rule())
    assert out.action is CanaryActionKind.approval_requested
    assert "has no comparison with champion" in out.message
    assert app.registry.aliases(model)["champion"] == 1


def test_act_reports_without_moving_when_auto_is_off(case: Case) -> None:
    traffic(case.app, case.model, primary=0.7, canary=0.95)
    out = case.app.canary.act(case.model, Rule(auto=False))
    assert out.action is CanaryActionKind.none and "auto is off" in out.message
    assert out.verdict is not None and out.verdict.verdict is Verdict.canary_better
    assert case.app.registry.aliases(case.model)["champion"] == 1
    assert [a.kind for a in alerts(case)] == ["canary"]


def test_act_does_nothing_before_a_verdict_or_without_a_canary(case: Case) -> None:
    traffic(case.app, case.model, primary=0.8, canary=0.8, n=60)
    out = case.app.canary.act(case.model, Rule())
    assert out.action is CanaryActionKind.none and out.verdict is not None
    assert not out.verdict.conclusive
    route(case.app, case.model, canary=None)
    out = case.app.canary.act(case.model, Rule())
    assert out.action is CanaryActionKind.none and out.verdict is None
    assert "has no canary" in out.message
    assert case.app.registry.aliases(case.model)["champion"] == 1 and alerts(case) == []


def test_act_resolves_the_last_canary_alert_once_a_new_canary_is_under_test(case: Case) -> None:
    traffic(case.app, case.model, primary=0.95, canary=0.7)
    assert case.app.canary.act(case.model, Rule()).action is CanaryActionKind.rolled_back
    assert [a.status for a in alerts(case)] == ["open"]
    time.sleep(0.05)  # after the last logged request
    route(case.app, case.model, canary=2)  # a new test: the earlier requests do not count
    out = case.app.canary.act(case.model, Rule())
    assert out.action is CanaryActionKind.none and out.verdict is not None
    assert out.verdict.primary.n == 0
    assert [a.status for a in alerts(case)] == ["resolved"]


def test_verdict_settings_default_to_the_job_files_rule(case: Case) -> None:
    service = case.app.canary
    traffic(case.app, case.model, primary=0.8, canary=0.8, n=200)
    before = service.rules
    service.rules = lambda model: Rule(auto=False, alpha=0.01, min_samples=300) \
        if model == case.model else None
    try:
        v = service.verdict(case.model)
        assert (v.alpha, v.min_samples, v.rule_auto) == (0.01, 300, False)
        v = service.verdict(case.model, alpha=0.1)
        assert (v.alpha, v.min_samples) == (0.1, 300)
    finally:
        service.rules = before
    v = service.verdict(case.model)
    assert (v.alpha, v.tau, v.min_samples, v.rule_auto) == (0.05, 0.1, 200, None)
