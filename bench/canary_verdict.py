"""Canary verdict benchmark: the error rate held under continuous monitoring, and how many
labelled requests a verdict takes, against a peeking z-test on the same simulated traffic.

Per seed, ``--steps`` labelled requests arrive in order; ``--share`` of them go to the
canary. Each is correct with its arm's accuracy (the primary's ``--accuracy``; the
canary's that plus an effect). Ours: the mixture SPRT of
``appliance.monitor.sequential`` (alpha 0.05, tau 0.1, ``--min-samples`` per arm),
evaluated at every request. Reference: what people do without it, a two-proportion
z-test at level alpha looked at every ``--look`` labels (after the same minimum),
stopping at the first "significant" look; and the same z-test once, at the end (a
fixed horizon: valid, but it gives no early verdict). Same arrays for all three.

Prints, per effect size: the share of seeds with a verdict (the false-positive rate
for effect 0), the share with the right sign, the mean labelled requests to the
verdict, the wall time of our 200-seed run, and the peak memory.

    python bench/canary_verdict.py [--seeds 200] [--steps 20000] [--share 0.2]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
from scipy.stats import norm

from appliance.monitor.sequential import msprt

ALPHA, TAU = 0.05, 0.1


def simulate(seed: int, seeds: int, steps: int, share: float, base: float,
             effect: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    arm = rng.random((seeds, steps)) < share
    correct = rng.random((seeds, steps)) < np.where(arm, base + effect, base)
    return arm, correct.astype(float)


def peeking_z(arm: np.ndarray, y: np.ndarray, *, look: int, min_samples: int,
              only_last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(verdict step or -1, sign) of a two-proportion z-test looked at every ``look``."""
    n_c = np.cumsum(arm, axis=1)
    n_p = np.arange(1, arm.shape[1] + 1)[None, :] - n_c
    s_c = np.cumsum(y * arm, axis=1)
    s_p = np.cumsum(y, axis=1) - s_c
    looks = np.arange(look - 1, arm.shape[1], look)
    if only_last:
        looks = looks[-1:]
    n_c, n_p, s_c, s_p = n_c[:, looks], n_p[:, looks], s_c[:, looks], s_p[:, looks]
    with np.errstate(divide="ignore", invalid="ignore"):
        pooled = (s_c + s_p) / (n_c + n_p)
        se = np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_p))
        z = (s_c / n_c - s_p / n_p) / se
    hit = (np.abs(z) > norm.ppf(1 - ALPHA / 2)) & (n_c >= min_samples) & (n_p >= min_samples)
    decided = hit.any(axis=1)
    first = hit.argmax(axis=1)
    rows = np.arange(arm.shape[0])
    step = np.where(decided, looks[first] + 1, -1)
    sign = np.where(decided, np.sign(z[rows, first]), 0)
    return step, sign


def summary(step: np.ndarray, sign: np.ndarray, effect: float) -> str:
    decided = step > 0
    right = (sign == np.sign(effect)).mean() if effect else float("nan")
    mean = f"{step[decided].mean():8.0f}" if decided.any() else "       -"
    return f"verdict {decided.mean():6.1%}  right sign {right:6.1%}  mean n {mean}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--share", type=float, default=0.2)
    ap.add_argument("--accuracy", type=float, default=0.80)
    ap.add_argument("--min-samples", type=int, default=200)
    ap.add_argument("--look", type=int, default=100)
    ap.add_argument("--effects", default="0,0.01,0.02,0.03,0.05,-0.03")
    args = ap.parse_args()
    print(f"{args.seeds} seeds x {args.steps} labelled requests, canary share "
          f"{args.share:.0%}, primary accuracy {args.accuracy}, alpha {ALPHA}, tau {TAU}, "
          f"min {args.min_samples} per arm; z-test looked at every {args.look} labels")
    total = 0.0
    for i, effect in enumerate(float(e) for e in args.effects.split(",")):
        arm, y = simulate(i, args.seeds, args.steps, args.share, args.accuracy, effect)
        started = time.perf_counter()
        ours = msprt(arm, y, alpha=ALPHA, tau=TAU, min_samples=args.min_samples, binary=True)
        took = time.perf_counter() - started
        total += took
        peek = peeking_z(arm, y, look=args.look, min_samples=args.min_samples)
        fixed = peeking_z(arm, y, look=args.look, min_samples=args.min_samples, only_last=True)
        print(f"\neffect {effect:+.3f} (canary accuracy {args.accuracy + effect:.3f}); "
              f"our {args.seeds}-seed run took {took:.2f} s")
        print(f"  mSPRT (ours)         {summary(ours.decided_at, ours.sign, effect)}")
        print(f"  z-test, peeking      {summary(*peek, effect)}")
        print(f"  z-test, fixed end    {summary(*fixed, effect)}")
        if effect == 0:
            ratio = (peek[0] > 0).mean() / max((ours.decided_at > 0).mean(), 1 / args.seeds)
            print(f"  false positives: peeking z-test / mSPRT = {ratio:.1f}x "
                  f"(target for ours: <= {ALPHA:.0%})")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nour runs: {total:.2f} s in all; peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
