"""A two-sample mixture SPRT with always-valid p-values and confidence sequences. Pure numpy.

Johari, Koomen, Pekelis and Walsh, "Always valid inference: continuous monitoring
of A/B tests" (Operations Research, 2022). The estimate after n observations is
the difference of the arms' means, ``theta = mean(canary) - mean(primary)``,
taken as normal with the plug-in variance ``V = s_p^2/n_p + s_c^2/n_c``. The
mixture likelihood ratio of ``theta`` against 0, with a ``N(0, tau^2)`` mixing
distribution over the true difference, is

    Lambda = sqrt(V / (V + tau^2)) * exp(theta^2 tau^2 / (2 V (V + tau^2)))

(with ``V = 2 sigma^2 / n`` this is the paper's equal-allocation formula; the
general ``V`` lets the canary take any share of the traffic). The always-valid
p-value is the running minimum of ``min(1, 1/Lambda)`` over every step, and the
confidence sequence the running intersection of ``{d : Lambda(d) < 1/alpha}``:
however often anyone looks, the chance that equal arms ever reach
``p <= alpha`` is at most ``alpha`` (Ville's inequality; asymptotically, with
the plug-in variance). ``tau`` is in units of the outcome's pooled standard
deviation, so one default fits accuracy (0/1 outcomes) and squared errors.

Every step of the sequence is evaluated (cumulative sums, vectorised over a
leading axis of independent sequences), so the verdict does not depend on when
the check ran: a scheduled check every hour decides at the observation a
continuous monitor would have. No verdict is given before each arm has
``min_samples`` observations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

HISTORY_POINTS = 60  # evidence points kept for a chart of the sequence
_VAR_FLOOR = 1e-12


@dataclass(frozen=True)
class Paths:
    """The test over ``S`` independent sequences of ``T`` observations (arrays of shape S)."""

    p_value: Any          # always-valid p-value after the last observation
    lower: Any            # confidence sequence for canary - primary (running intersection)
    upper: Any
    difference: Any       # canary mean - primary mean after the last observation
    n_primary: Any
    n_canary: Any
    mean_primary: Any     # nan for an empty arm
    mean_canary: Any
    decided_at: Any       # observations (both arms) when p first reached alpha; -1: not yet
    decided_primary: Any  # n per arm at that step; -1: not yet
    decided_canary: Any
    sign: Any             # sign of the difference at the decision: +1, -1, 0 (undecided)


def msprt(canary: Any, values: Any, *, alpha: float, tau: float, min_samples: int,
          binary: bool) -> Paths:
    """The mixture SPRT over sequences in arrival order.

    ``canary``: bool array (S, T) or (T,), true where the observation came from the canary;
    ``values``: the per-request outcome in the same shape (1.0/0.0 correct, or a squared
    error). ``binary`` outcomes get a smoothed Bernoulli variance, so a run of all-correct
    answers does not make the variance zero.
    """
    _check(alpha, tau, min_samples)
    arm = np.atleast_2d(np.asarray(canary, dtype=bool))
    y = np.atleast_2d(np.asarray(values, dtype=np.float64))
    if arm.shape != y.shape:
        raise ValueError(f"canary {arm.shape} and values {y.shape} differ in shape")
    s_count, t_count = arm.shape
    if t_count == 0:
        empty = np.zeros(s_count)
        nan = np.full(s_count, np.nan)
        minus = np.full(s_count, -1, dtype=np.int64)
        return Paths(np.ones(s_count), np.full(s_count, -np.inf), np.full(s_count, np.inf),
                     nan, empty.astype(np.int64), empty.astype(np.int64), nan, nan, minus,
                     minus, minus, np.zeros(s_count, dtype=np.int64))
    steps = _steps(arm, y, alpha=alpha, tau=tau, min_samples=min_samples, binary=binary)
    p_run = np.minimum.accumulate(steps["p"], axis=1)
    lower = np.maximum.accumulate(steps["lower"], axis=1)
    upper = np.minimum.accumulate(steps["upper"], axis=1)
    hit = p_run <= alpha
    decided = hit.any(axis=1)
    first = np.where(decided, hit.argmax(axis=1), -1)
    rows = np.arange(s_count)
    at = np.maximum(first, 0)
    sign = np.where(decided, np.sign(steps["theta"][rows, at]), 0).astype(np.int64)
    last = t_count - 1
    return Paths(
        p_value=p_run[:, last], lower=lower[:, last], upper=upper[:, last],
        difference=steps["theta"][:, last],
        n_primary=steps["n_p"][:, last].astype(np.int64),
        n_canary=steps["n_c"][:, last].astype(np.int64),
        mean_primary=steps["mean_p"][:, last], mean_canary=steps["mean_c"][:, last],
        decided_at=np.where(decided, first + 1, -1),
        decided_primary=np.where(decided, steps["n_p"][rows, at], -1).astype(np.int64),
        decided_canary=np.where(decided, steps["n_c"][rows, at], -1).astype(np.int64),
        sign=sign,
    )


def history(canary: Any, values: Any, *, alpha: float, tau: float, min_samples: int,
            binary: bool, points: int = HISTORY_POINTS) -> list[dict[str, float | int | None]]:
    """The evidence of one sequence at up to ``points`` evenly spaced steps from the first
    step where both arms have ``min_samples``: n per arm, the difference, the running
    confidence sequence and the always-valid p-value (for a chart of the test over time)."""
    _check(alpha, tau, min_samples)
    arm = np.asarray(canary, dtype=bool)[None, :]
    y = np.asarray(values, dtype=np.float64)[None, :]
    if arm.shape[1] == 0:
        return []
    steps = _steps(arm, y, alpha=alpha, tau=tau, min_samples=min_samples, binary=binary)
    valid = steps["valid"][0]
    if not valid.any():
        return []
    p_run = np.minimum.accumulate(steps["p"][0])
    lower = np.maximum.accumulate(steps["lower"][0])
    upper = np.minimum.accumulate(steps["upper"][0])
    start = int(valid.argmax())
    idx = np.unique(np.linspace(start, arm.shape[1] - 1, num=points).round().astype(int))
    return [{"n": int(i) + 1, "n_primary": int(steps["n_p"][0, i]),
             "n_canary": int(steps["n_c"][0, i]), "difference": float(steps["theta"][0, i]),
             "lower": _finite(lower[i]), "upper": _finite(upper[i]),
             "p_value": float(p_run[i])} for i in idx]


def _steps(arm: Any, y: Any, *, alpha: float, tau: float, min_samples: int,
           binary: bool) -> dict[str, Any]:
    """Per step: counts, means, the estimate, 1/Lambda and the step's confidence interval."""
    a = arm.astype(np.float64)
    n_c = np.cumsum(a, axis=1)
    n_p = np.arange(1, arm.shape[1] + 1, dtype=np.float64)[None, :] - n_c
    s_c = np.cumsum(y * a, axis=1)
    s_p = np.cumsum(y, axis=1) - s_c
    q_c = np.cumsum(y * y * a, axis=1)
    q_p = np.cumsum(y * y, axis=1) - q_c
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_c, mean_p = s_c / n_c, s_p / n_p
        if binary:
            var_c = _bernoulli(s_c, n_c)
            var_p = _bernoulli(s_p, n_p)
        else:
            var_c = np.maximum((q_c - n_c * mean_c ** 2) / (n_c - 1), _VAR_FLOOR)
            var_p = np.maximum((q_p - n_p * mean_p ** 2) / (n_p - 1), _VAR_FLOOR)
        pooled = ((n_c - 1) * var_c + (n_p - 1) * var_p) / (n_c + n_p - 2)
        tau2 = tau ** 2 * pooled
        v = var_c / n_c + var_p / n_p
        theta = mean_c - mean_p
        log_lambda = 0.5 * np.log(v / (v + tau2)) + theta ** 2 * tau2 / (2 * v * (v + tau2))
        half = np.sqrt(2 * v * (v + tau2) / tau2
                       * (np.log(1 / alpha) + 0.5 * np.log((v + tau2) / v)))
    valid = (n_c >= min_samples) & (n_p >= min_samples)
    p = np.where(valid, np.minimum(1.0, np.exp(-np.where(valid, log_lambda, 0.0))), 1.0)
    return {"n_c": n_c, "n_p": n_p, "mean_c": mean_c, "mean_p": mean_p, "theta": theta,
            "p": p, "valid": valid,
            "lower": np.where(valid, theta - half, -np.inf),
            "upper": np.where(valid, theta + half, np.inf)}


def _bernoulli(successes: Any, n: Any) -> Any:
    smoothed = (successes + 0.5) / (n + 1.0)
    return smoothed * (1.0 - smoothed) * n / np.maximum(n - 1.0, 1.0)


def _check(alpha: float, tau: float, min_samples: int) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha}")
    if not tau > 0.0:
        raise ValueError(f"tau must be positive, not {tau}")
    if min_samples < 2:
        raise ValueError(f"min_samples must be at least 2, not {min_samples}")


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None
