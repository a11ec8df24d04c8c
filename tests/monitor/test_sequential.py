"""The mixture SPRT on simulated canary traffic: the right verdict, the error rate held.

Every simulation is vectorised over seeds (one array row per seed), so the
200-seed checks take a fraction of a second each (timed in bench/canary_verdict.py,
not here: a unit test is no benchmark).
"""

from __future__ import annotations

import numpy as np
import pytest

from appliance.monitor.sequential import history, msprt

SEEDS, STEPS, SHARE, ALPHA, TAU, MIN = 200, 4000, 0.3, 0.05, 0.1, 100


def classification(seed: int, primary: float, canary: float, *, share: float = SHARE,
                   seeds: int = SEEDS, steps: int = STEPS) -> tuple[np.ndarray, np.ndarray]:
    """Per seed, ``steps`` labelled requests: a ``share`` goes to the canary; each answer is
    correct with its arm's accuracy."""
    rng = np.random.default_rng(seed)
    arm = rng.random((seeds, steps)) < share
    correct = rng.random((seeds, steps)) < np.where(arm, canary, primary)
    return arm, correct.astype(float)


def regression(seed: int, primary_sd: float, canary_sd: float, *,
               seeds: int = SEEDS, steps: int = STEPS) -> tuple[np.ndarray, np.ndarray]:
    """Squared errors of normal residuals with each arm's standard deviation."""
    rng = np.random.default_rng(seed)
    arm = rng.random((seeds, steps)) < SHARE
    errors = rng.normal(0.0, np.where(arm, canary_sd, primary_sd))
    return arm, errors ** 2


def test_msprt_equal_arms_declares_no_winner_at_the_error_rate_over_200_seeds() -> None:
    arm, y = classification(1, 0.8, 0.8)
    out = msprt(arm, y, alpha=ALPHA, tau=TAU, min_samples=MIN, binary=True)
    arm_r, y_r = regression(2, 1.0, 1.0)
    out_r = msprt(arm_r, y_r, alpha=ALPHA, tau=TAU, min_samples=MIN, binary=False)
    assert (out.decided_at > 0).mean() <= ALPHA
    assert (out_r.decided_at > 0).mean() <= ALPHA
    # the always-valid p-value is a running minimum: undecided paths stay above alpha
    assert np.all(out.p_value[out.decided_at < 0] > ALPHA)


def test_msprt_better_canary_is_declared_better() -> None:
    arm, y = classification(3, 0.80, 0.88)
    out = msprt(arm, y, alpha=ALPHA, tau=TAU, min_samples=MIN, binary=True)
    assert (out.sign > 0).mean() >= 0.9
    assert (out.sign < 0).sum() == 0


def test_msprt_worse_canary_is_declared_worse() -> None:
    arm, y = classification(4, 0.85, 0.77)
    out = msprt(arm, y, alpha=ALPHA, tau=TAU, min_samples=MIN, binary=True)
    assert (out.sign < 0).mean() >= 0.9
    assert (out.sign > 0).sum() == 0


@pytest.mark.parametrize(("canary_sd", "sign"), [(0.8, -1), (1.25, 1)])
def test_msprt_squared_errors_find_the_arm_with_smaller_errors(canary_sd: float,
                                                               sign: int) -> None:
    arm, y = regression(5, 1.0, canary_sd)
    out = msprt(arm, y, alpha=ALPHA, tau=TAU, min_samples=MIN, binary=False)
    assert (out.sign == sign).mean() >= 0.9
    assert (out.sign == -sign).sum() == 0


def test_msprt_confidence_sequence_covers_the_true_difference() -> None:
    arm, y = classification(6, 0.80, 0.85)
    out = msprt(arm, y, alpha=ALPHA, tau=TAU, min_samples=MIN, binary=True)
    covered = (out.lower <= 0.05) & (0.05 <= out.upper)
    assert covered.mean() >= 1 - ALPHA
    assert np.all(out.lower <= out.upper)


def test_msprt_gives_no_verdict_before_min_samples_per_arm() -> None:
    # a huge effect, but the canary has fewer than min_samples observations
    arm = np.zeros(1000, dtype=bool)
    arm[:50] = True
    y = np.where(arm, 1.0, 0.0)
    out = msprt(arm, y, alpha=ALPHA, tau=TAU, min_samples=51, binary=True)
    assert out.decided_at[0] == -1 and out.p_value[0] == 1.0
    assert out.n_canary[0] == 50 and out.n_primary[0] == 950
    assert np.isneginf(out.lower[0]) and np.isposinf(out.upper[0])
    decided = msprt(arm, y, alpha=ALPHA, tau=TAU, min_samples=50, binary=True)
    assert decided.sign[0] == 1 and decided.decided_canary[0] >= 50
    assert decided.decided_primary[0] >= 50


def test_msprt_decisions_in_simulation_respect_min_samples() -> None:
    arm, y = classification(7, 0.6, 0.95, seeds=50)
    out = msprt(arm, y, alpha=ALPHA, tau=TAU, min_samples=MIN, binary=True)
    decided = out.decided_at > 0
    assert decided.all()
    assert out.decided_canary.min() >= MIN and out.decided_primary.min() >= MIN


def test_msprt_all_correct_arms_keep_a_finite_variance() -> None:
    arm = np.arange(600) % 2 == 0
    y = np.ones(600)
    out = msprt(arm, y, alpha=ALPHA, tau=TAU, min_samples=MIN, binary=True)
    assert out.decided_at[0] == -1 and np.isfinite(out.lower[0]) and out.difference[0] == 0.0


def test_msprt_empty_sequence_is_not_yet_conclusive() -> None:
    out = msprt([], [], alpha=ALPHA, tau=TAU, min_samples=MIN, binary=True)
    assert out.p_value[0] == 1.0 and out.decided_at[0] == -1 and out.sign[0] == 0
    assert history([], [], alpha=ALPHA, tau=TAU, min_samples=MIN, binary=True) == []


@pytest.mark.parametrize(("alpha", "tau", "min_samples"),
                         [(0.0, 0.1, 10), (1.0, 0.1, 10), (0.05, 0.0, 10), (0.05, 0.1, 1)])
def test_msprt_refuses_bad_settings(alpha: float, tau: float, min_samples: int) -> None:
    with pytest.raises(ValueError):
        msprt([True, False], [1.0, 0.0], alpha=alpha, tau=tau, min_samples=min_samples,
              binary=True)


def test_msprt_refuses_arrays_of_different_shapes() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        msprt([True, False], [1.0], alpha=ALPHA, tau=TAU, min_samples=MIN, binary=True)


def test_history_is_evenly_spaced_and_p_value_never_rises() -> None:
    arm, y = classification(8, 0.8, 0.9, seeds=1, steps=3000)
    points = history(arm[0], y[0], alpha=ALPHA, tau=TAU, min_samples=MIN, binary=True,
                     points=20)
    assert 2 <= len(points) <= 20
    assert min(p["n_primary"] for p in points) >= MIN
    assert min(p["n_canary"] for p in points) >= MIN
    assert points[-1]["n"] == 3000
    p_values = [p["p_value"] for p in points]
    assert p_values == sorted(p_values, reverse=True)
    single = msprt(arm[0], y[0], alpha=ALPHA, tau=TAU, min_samples=MIN, binary=True)
    assert points[-1]["p_value"] == pytest.approx(single.p_value[0])
    assert points[-1]["lower"] == pytest.approx(single.lower[0])
