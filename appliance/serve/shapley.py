"""Model-agnostic Shapley values by permutation sampling over ONNX feeds.

The value of a set ``S`` of features is the model's mean score over a background
sample when the row's own values are put in for the features of ``S`` and the
background's values are kept for the rest (interventional Shapley values, as
KernelSHAP estimates them). Each sampled permutation of the features adds them
one at a time and credits each with the change it makes; the contributions of
one permutation add up to ``f(x) - E[f(background)]`` exactly, so their mean
does too. Permutations are drawn in antithetic pairs (a permutation and its
reverse), which cancels much of the sampling noise (Mitchell et al., "Sampling
Permutations for Shapley Value Estimation", JMLR 2022), from a seeded generator:
the same row, model and seed give the same answer.

All coalitions of all permutations are scored in one ONNX run of
``(1 + permutations * (features - 1) + 1) * background`` rows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

PERMUTATIONS = 16
BACKGROUND = 50


@dataclass(frozen=True)
class ShapleyResult:
    contributions: Any  # float64 [features]
    base_value: float   # mean score over the background
    score: float        # the row's own score (base_value + contributions.sum())


def sampling_shapley(score: Callable[[dict[str, Any]], Any], row: dict[str, Any],
                     background: dict[str, Any], inputs: list[str], *,
                     permutations: int = PERMUTATIONS, seed: int = 0) -> ShapleyResult:
    """Shapley values of ``inputs`` for one row.

    ``row`` and ``background`` map each ONNX input name to an ``[n, 1]`` array (``n`` = 1
    for the row); ``score(feeds)`` answers one float per fed row.
    """
    import numpy as np

    m = len(inputs)
    b = len(next(iter(background.values())))
    rng = np.random.default_rng(seed)
    pairs = max(1, permutations // 2)
    orders = []
    for _ in range(pairs):
        p = rng.permutation(m)
        orders += [p, p[::-1]]
    # masks[k] says which features take the row's value in coalition k: the empty set, the
    # full set, then for each permutation its m - 1 proper non-empty prefixes
    masks = [np.zeros(m, dtype=bool), np.ones(m, dtype=bool)]
    for order in orders:
        current = np.zeros(m, dtype=bool)
        for j in order[:-1]:
            current = current.copy()
            current[j] = True
            masks.append(current)
    mask = np.repeat(np.array(masks), b, axis=0)       # [coalitions * b, m]
    feeds = {}
    for j, name in enumerate(inputs):
        ours = np.asarray(row[name]).reshape(1, 1)
        theirs = np.tile(np.asarray(background[name]).reshape(b, 1), (len(masks), 1))
        feeds[name] = np.where(mask[:, j:j + 1], ours, theirs).astype(theirs.dtype)
    values = np.asarray(score(feeds), dtype=np.float64).reshape(len(masks), b).mean(axis=1)
    empty, full = float(values[0]), float(values[1])
    phi = np.zeros(m)
    k = 2
    for order in orders:
        previous = empty
        for j in order[:-1]:
            phi[j] += values[k] - previous
            previous = float(values[k])
            k += 1
        phi[order[-1]] += full - previous
    return ShapleyResult(phi / len(orders), empty, full)
