"""A canary's verdict from delayed labels, and the job file's rule that acts on it.

``verdict`` tests the canary version against the champion on the labelled
requests each answered since the canary was routed (the mixture SPRT of
``appliance.monitor.sequential``): ``canary_better``, ``canary_worse`` or
``not_yet_conclusive``, with the always-valid p-value, the confidence sequence
for the difference, n and the metric per arm.

``act`` is the scheduled check of a job file with ``promote.canary``: once the
verdict is reached and the rule says ``auto: true``, a better canary becomes
champion through the registry's ordinary move (so the promotion gate and
approval status still apply) and leaves the routing; a worse one leaves the
routing (a rollback of the canary). When the job requires approval, or the
registry refuses the move, nothing moves: a ``canary`` alert asks an approver
to decide. Every action is audited with its evidence.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

from appliance.audit import Auditor
from appliance.domain.canary import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_TAU,
    ArmEvidence,
    CanaryAction,
    CanaryActionKind,
    CanaryVerdict,
    EvidencePoint,
    Verdict,
)
from appliance.domain.principal import Principal
from appliance.domain.registry import CHAMPION
from appliance.domain.roles import Role
from appliance.domain.serving import ModelRouting
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.store import canary as q
from appliance.store.db import Store

log = logging.getLogger(__name__)
SCHEDULER = Principal(username="scheduler", role=Role.operator)
MAX_OBSERVATIONS = 2_000_000
MAX_MIN_SAMPLES = 1_000_000
ALERT_KIND = "canary"


class RoutingControl(Protocol):
    """Canary and shadow routing (``appliance.serve.service.PredictionService``)."""

    def routing(self, model: str) -> ModelRouting: ...

    def set_routing(self, model: str, config: Any, *, by: Principal) -> ModelRouting: ...


class Alerter(Protocol):
    """``appliance.monitor.alerts.AlertService``."""

    def raise_alert(self, kind: str, key: str, message: str, detail: Any = None) -> Any: ...

    def resolve(self, kind: str, key: str) -> int: ...


class CanaryRule(Protocol):
    """What the job file's ``promote.canary`` block says (``appliance.train.spec``)."""

    auto: bool
    alpha: float
    tau: float
    min_samples: int


class CanaryService:
    def __init__(self, store: Store, registry: Any, routing: RoutingControl, *,
                 auditor: Auditor, alerts: Alerter | None = None,
                 flush: Callable[[], object] | None = None,
                 rules: Callable[[str], CanaryRule | None] | None = None,
                 max_observations: int = MAX_OBSERVATIONS) -> None:
        self.store = store
        self.registry = registry
        self.routing = routing
        self.auditor = auditor
        self.alerts = alerts
        self.flush = flush  # drains the prediction log's queue before the test reads it
        self.rules = rules  # the job file's promote.canary per model: the default settings
        self.max_observations = max_observations

    def verdict(self, model: str, *, alpha: float | None = None, tau: float | None = None,
                min_samples: int | None = None) -> CanaryVerdict:
        """The test of the model's current canary against its champion. A setting not given
        is the job file's (``promote.canary``), else the default."""
        from appliance.monitor import sequential

        rule = self.rules(model) if self.rules is not None else None
        alpha = alpha if alpha is not None else rule.alpha if rule else DEFAULT_ALPHA
        tau = tau if tau is not None else rule.tau if rule else DEFAULT_TAU
        min_samples = min_samples if min_samples is not None \
            else rule.min_samples if rule else DEFAULT_MIN_SAMPLES
        check_settings(alpha, tau, min_samples)
        route = self.routing.routing(model).routing.canary  # NotFound for an unknown model
        if route is None or route.percent <= 0:
            raise NotFound(f"{model} has no canary: route a share of its traffic to a version "
                           "first (PUT /api/v1/models/{name}/routing)",
                           detail={"model": model})
        champion = self.registry.aliases(model).get(CHAMPION)
        if champion is None:
            raise Conflict(f"{model} has no champion to compare its canary with",
                           detail={"model": model})
        if champion == route.version:
            raise Conflict(f"{model}'s canary v{route.version} is its champion already",
                           detail={"model": model, "version": route.version})
        task = self.registry.version(model, route.version).task
        if self.flush is not None:
            self.flush()
        with self.store.read() as s:  # the routing history is metadata
            since = q.canary_since(s, model, route.version) or dt.datetime.fromtimestamp(
                0, dt.UTC)
        with self.store.analytics() as s:  # the log and labels: the parts in scale-out
            classification = task == "classification" if task in ("classification",
                                                                   "regression") \
                else q.is_classifier(s, model, route.version)
            arm, values = q.outcomes(s, model, primary=champion, canary=route.version,
                                     since=since, classification=classification,
                                     limit=self.max_observations + 1)
        truncated = len(arm) > self.max_observations
        arm, values = arm[:self.max_observations], values[:self.max_observations]
        paths = sequential.msprt(arm, values, alpha=alpha, tau=tau, min_samples=min_samples,
                                 binary=classification)
        points = sequential.history(arm, values, alpha=alpha, tau=tau,
                                    min_samples=min_samples, binary=classification)
        higher = classification
        sign = int(paths.sign[0])
        if sign == 0:
            verdict = Verdict.not_yet_conclusive
        else:
            verdict = Verdict.canary_better if (sign > 0) == higher else Verdict.canary_worse
        metric = "accuracy" if classification else "rmse"
        primary = _arm("primary", champion, int(paths.n_primary[0]),
                       float(paths.mean_primary[0]), classification)
        canary = _arm("canary", route.version, int(paths.n_canary[0]),
                      float(paths.mean_canary[0]), classification)
        p_value = float(paths.p_value[0])
        decided = int(paths.decided_at[0])
        return CanaryVerdict(
            model=model, primary_version=champion, canary_version=route.version, since=since,
            metric=metric, tested="accuracy" if classification else "mean_squared_error",
            higher_is_better=higher, verdict=verdict,
            reason=_reason(verdict, primary, canary, metric, p_value, alpha, min_samples,
                           decided),
            alpha=alpha, tau=tau, min_samples=min_samples, p_value=p_value,
            difference=_finite(float(paths.difference[0])),
            lower=_finite(float(paths.lower[0])), upper=_finite(float(paths.upper[0])),
            decided_at=decided if decided > 0 else None, primary=primary, canary=canary,
            history=[EvidencePoint.model_validate(p) for p in points], truncated=truncated,
            rule_auto=None if rule is None else rule.auto)

    def act(self, model: str, rule: CanaryRule, *, require_approval: bool = False,
            by: Principal = SCHEDULER) -> CanaryAction:
        """The scheduled check: the verdict, then what the rule does about it."""
        try:
            v = self.verdict(model, alpha=rule.alpha, tau=rule.tau,
                             min_samples=rule.min_samples)
        except (NotFound, Conflict) as exc:
            return CanaryAction(model=model, verdict=None, action=CanaryActionKind.none,
                                message=exc.message)
        if not v.conclusive:
            if self.alerts is not None:  # a new canary: an earlier one's alert is history
                self.alerts.resolve(ALERT_KIND, model)
            return CanaryAction(model=model, verdict=v, action=CanaryActionKind.none,
                                message=v.reason)
        if not rule.auto:
            self._alert(model, v, f"{v.reason}; the job's rule does not act (auto: false)")
            return CanaryAction(model=model, verdict=v, action=CanaryActionKind.none,
                                message=v.reason + "; auto is off: nothing moved")
        if v.verdict is Verdict.canary_worse:
            self._drop_canary(model, by)
            self._audit(model, v, "model.canary.rollback", by)
            message = f"{v.reason}; the canary is out of the routing"
            self._alert(model, v, message)
            return CanaryAction(model=model, verdict=v, action=CanaryActionKind.rolled_back,
                                message=message)
        if require_approval:
            return self._ask(model, v, "the job requires approval")
        try:
            self.registry.set_alias(model, CHAMPION, v.canary_version, by=by,
                                    reason=f"canary verdict: {v.reason}")
        except Conflict as exc:  # the gate or the version's approval status refuses it
            return self._ask(model, v, exc.message)
        self._drop_canary(model, by)
        self._audit(model, v, "model.canary.promote", by)
        if self.alerts is not None:
            self.alerts.resolve(ALERT_KIND, model)
        return CanaryAction(model=model, verdict=v, action=CanaryActionKind.promoted,
                            message=f"{v.reason}; v{v.canary_version} is champion")

    # -- helpers --------------------------------------------------------------------------

    def _ask(self, model: str, v: CanaryVerdict, why: str) -> CanaryAction:
        message = (f"{v.reason}; not promoted ({why}): an approver decides, e.g. "
                   f"`appliance models promote {model} {v.canary_version}`")
        self._alert(model, v, message)
        return CanaryAction(model=model, verdict=v,
                            action=CanaryActionKind.approval_requested, message=message)

    def _drop_canary(self, model: str, by: Principal) -> None:
        shadow = self.routing.routing(model).routing.shadow
        self.routing.set_routing(model, {"canary": None, "shadow": None if shadow is None
                                         else {"version": shadow.version}}, by=by)

    def _audit(self, model: str, v: CanaryVerdict, action: str, by: Principal) -> None:
        with self.store.write() as s:
            self.auditor.record(s, by, action, f"model:{model}",
                                before={"champion": v.primary_version,
                                        "canary": v.canary_version},
                                after=_evidence(v))

    def _alert(self, model: str, v: CanaryVerdict, message: str) -> None:
        if self.alerts is None:
            return
        try:
            self.alerts.raise_alert(ALERT_KIND, model, message, _evidence(v))
        except Exception:  # an alert never undoes the check
            log.exception("canary alert for %s failed", model)


def check_settings(alpha: float, tau: float, min_samples: int) -> None:
    """The test's settings, refused with the field named."""
    if isinstance(alpha, bool) or not 0.0 < alpha < 0.5:
        raise InvalidInput("alpha is a number between 0 and 0.5", detail={"field": "alpha"})
    if isinstance(tau, bool) or not 0.0 < tau <= 10.0 or not math.isfinite(tau):
        raise InvalidInput("tau is a number above 0, at most 10", detail={"field": "tau"})
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) \
            or not 2 <= min_samples <= MAX_MIN_SAMPLES:
        raise InvalidInput(f"min_samples is a whole number from 2 to {MAX_MIN_SAMPLES}",
                           detail={"field": "min_samples"})


def _arm(role: str, version: int, n: int, mean: float, classification: bool) -> ArmEvidence:
    value = _finite(mean)
    metric = value if classification or value is None else math.sqrt(max(value, 0.0))
    return ArmEvidence(role=role, version=version, n=n, mean=value, metric=metric)


def _reason(verdict: Verdict, primary: ArmEvidence, canary: ArmEvidence, metric: str,
            p_value: float, alpha: float, min_samples: int, decided: int) -> str:
    if min(primary.n, canary.n) < min_samples:
        return (f"waiting for {min_samples} labelled requests per arm: primary "
                f"v{primary.version} has {primary.n}, canary v{canary.version} {canary.n}")
    arms = (f"{metric} {_fmt(canary.metric)} (canary v{canary.version}, n={canary.n}) vs "
            f"{_fmt(primary.metric)} (primary v{primary.version}, n={primary.n})")
    if verdict is Verdict.not_yet_conclusive:
        return f"not yet conclusive at alpha {alpha:g}: p = {p_value:.3g}; {arms}"
    word = "better" if verdict is Verdict.canary_better else "worse"
    return (f"canary v{canary.version} is {word}: p = {p_value:.3g} <= {alpha:g} after "
            f"{decided} labelled requests; {arms}")


def _evidence(v: CanaryVerdict) -> dict[str, Any]:
    return {"verdict": v.verdict.value, "p_value": v.p_value, "alpha": v.alpha,
            "difference": v.difference, "lower": v.lower, "upper": v.upper,
            "tested": v.tested, "n_primary": v.primary.n, "n_canary": v.canary.n,
            "primary_version": v.primary_version, "canary_version": v.canary_version}


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
