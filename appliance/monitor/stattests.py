"""Two-sample drift tests on numpy arrays, with Evidently's definitions.

Each test takes a :class:`Sample` (one column, reference and current side, nulls and
infinities already dropped, as Evidently drops them) and a threshold, and returns a
:class:`Outcome`: the statistic, the p-value (tests) or the distance (distances) and the
verdict, compared with the threshold the way Evidently 0.7 compares it
(``evidently/legacy/calculations/stattests/*.py``):

==================  =========  ==========  ===============================================
name                kinds      default     score and verdict
==================  =========  ==========  ===============================================
ks                  num        0.05        K-S p-value, drift when p <= threshold
chisquare           cat        0.05        goodness of fit of current counts to reference
                                           shares, drift when p < threshold
z                   cat        0.05        two-proportion Z-test on the first (sorted)
                                           value, drift when p < threshold
fisher_exact        cat        0.1         Fisher's exact test on the 2x2 table (binary
                                           columns only), drift when p < threshold
anderson            num        0.1         k-sample Anderson-Darling p-value (scipy caps it
                                           to [0.001, 0.25]), drift when p < threshold
cramer_von_mises    num        0.1         two-sample Cramér-von Mises p-value, drift when
                                           p <= threshold
jensenshannon       num, cat   0.1         Jensen-Shannon distance (natural log) of binned
                                           shares, drift when d >= threshold
wasserstein         num        0.1         Wasserstein distance / max(std(reference),
                                           0.001), drift when d >= threshold
psi                 num, cat   0.1         population stability index of binned shares
                                           (empty bins filled), drift when d >= threshold
abs_text_content    text       0.55        ROC AUC of a domain classifier (TF-IDF + SGD)
_drift                                     telling current from reference text, drift when
                                           AUC > threshold
perc_text_content   text       0.95        the same AUC against the given percentile of a
_drift                                     random classifier's AUC, drift when above
==================  =========  ==========  ===============================================

Binning (``jensenshannon``, ``psi``): a numeric column with more than 20 distinct reference
values is cut into Sturges bins over both sides together; anything else is compared by
value. Only numpy, scipy and (for text) scikit-learn are used; no pandas.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from appliance.domain.drift import canonical_test

Kind = Literal["numerical", "categorical", "text"]
Score = Literal["p_value", "distance", "auc"]
NUMERICAL: Kind = "numerical"
CATEGORICAL: Kind = "categorical"
TEXT: Kind = "text"


@dataclass(frozen=True)
class StatTest:
    """A registered test: its name (as Evidently names it), the column kinds it accepts,
    Evidently's default threshold and what its score is."""

    name: str
    title: str
    kinds: frozenset[str]
    default_threshold: float
    score: Score
    compare: Literal["<", "<=", ">", ">="]

    def decide(self, score: float | None, threshold: float) -> bool:
        """The verdict for ``score`` (a p-value or distance) against ``threshold``."""
        if score is None or score != score:  # NaN: no verdict, no drift
            return False
        return {"<": score < threshold, "<=": score <= threshold, ">": score > threshold,
                ">=": score >= threshold}[self.compare]


@dataclass(frozen=True)
class Outcome:
    statistic: float
    p_value: float | None
    distance: float | None
    drift: bool


@dataclass
class Sample:
    """One column on both sides. Numeric columns carry their finite values as sorted float64
    arrays (every numeric test is blind to order); categorical columns carry aligned counts
    over the union of the values (``keys``, sorted); text columns the strings."""

    kind: Kind
    ref: Any = None  # np.ndarray of float64, sorted (numerical)
    cur: Any = None
    keys: Any = None  # categorical: the values, aligned with the counts
    ref_counts: Any = None
    cur_counts: Any = None
    ref_text: list[str] = field(default_factory=list)
    cur_text: list[str] = field(default_factory=list)

    @property
    def n_ref(self) -> int:
        if self.kind == NUMERICAL:
            return int(self.ref.size)
        if self.kind == TEXT:
            return len(self.ref_text)
        return int(self.ref_counts.sum())

    @property
    def n_cur(self) -> int:
        if self.kind == NUMERICAL:
            return int(self.cur.size)
        if self.kind == TEXT:
            return len(self.cur_text)
        return int(self.cur_counts.sum())

    @functools.cached_property
    def counts(self) -> tuple[Any, Any, Any]:
        """(keys, reference counts, current counts) over the union of the values."""
        import numpy as np

        if self.kind != NUMERICAL:
            return self.keys, self.ref_counts, self.cur_counts
        merged = self.merged
        keys = merged[np.r_[True, merged[1:] != merged[:-1]]] if merged.size else merged
        return (keys, _count_sorted(self.ref, keys), _count_sorted(self.cur, keys))

    @functools.cached_property
    def _merge(self) -> tuple[Any, Any]:
        import numpy as np

        both = np.concatenate([self.ref, self.cur])
        order = np.argsort(both, kind="stable")  # two sorted runs: timsort merges them
        return both[order], order < self.ref.size

    @property
    def merged(self) -> Any:
        """Both sides' values in one sorted array."""
        return self._merge[0]

    @property
    def from_reference(self) -> Any:
        """For each value of :attr:`merged`, whether it came from the reference."""
        return self._merge[1]

    @functools.cached_property
    def n_unique(self) -> int:
        """Distinct values over both sides (Evidently's ``n_values``)."""
        import numpy as np

        if self.kind == NUMERICAL:
            return int(np.count_nonzero(np.diff(self.merged))) + 1 if self.merged.size else 0
        return len(self.counts[0])

    @functools.cached_property
    def n_unique_reference(self) -> int:
        import numpy as np

        if self.kind == NUMERICAL:
            return int(np.count_nonzero(np.diff(self.ref))) + 1 if self.ref.size else 0
        return int((self.counts[1] > 0).sum())


def _count_sorted(values: Any, keys: Any) -> Any:
    import numpy as np

    return np.searchsorted(values, keys, side="right") - np.searchsorted(values, keys, side="left")


def _ks(s: Sample, threshold: float) -> Outcome:
    from scipy.stats import ks_2samp

    res = ks_2samp(s.ref, s.cur)
    p = float(res.pvalue)
    return Outcome(float(res.statistic), p, None, p <= threshold)


def _chisquare(s: Sample, threshold: float) -> Outcome:
    import numpy as np
    from scipy.stats import chisquare

    _, ref, cur = s.counts
    expected = ref * (cur.sum() / ref.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        stat, p = chisquare(cur, expected)
    return Outcome(float(stat), float(p), None, bool(p < threshold))


def _z(s: Sample, threshold: float) -> Outcome:
    import numpy as np
    from scipy.stats import norm

    _, ref, cur = s.counts
    present = (ref > 0) | (cur > 0)
    if (ref > 0).sum() == 1 and (cur > 0).sum() == 1 and present.sum() == 1:
        return Outcome(0.0, 1.0, None, False)  # one and the same value on both sides
    first = int(np.argmax(present))  # keys are sorted: the first present value
    n1, n2 = ref.sum(), cur.sum()
    p1, p2 = 1 - ref[first] / n1, 1 - cur[first] / n2  # share of "not the first value"
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    p = float(2 * (1 - norm.cdf(abs(z))))
    return Outcome(float(z), p, None, p < threshold)


def _fisher(s: Sample, threshold: float) -> Outcome:
    import numpy as np
    from scipy.stats import fisher_exact

    keys, ref, cur = s.counts
    if len(keys) > 2:
        raise ValueError("fisher_exact needs a binary column (at most 2 distinct values)")
    ref2 = np.zeros(2, dtype=np.int64)
    cur2 = np.zeros(2, dtype=np.int64)
    ref2[: len(keys)], cur2[: len(keys)] = ref, cur
    stat, p = fisher_exact(np.array([cur2, ref2]))
    return Outcome(float(stat), float(p), None, bool(p < threshold))


def _anderson(s: Sample, threshold: float) -> Outcome:
    import warnings

    from scipy.stats import anderson_ksamp

    with warnings.catch_warnings():  # "p-value capped/floored": the cap is the definition
        warnings.simplefilter("ignore")
        res = anderson_ksamp([s.ref, s.cur])
    p = float(res.pvalue)
    return Outcome(float(res.statistic), p, None, p < threshold)


def _cramer_von_mises(s: Sample, threshold: float) -> Outcome:
    from scipy.stats import cramervonmises_2samp

    res = cramervonmises_2samp(s.ref, s.cur)
    p = float(res.pvalue)
    return Outcome(float(res.statistic), p, None, p <= threshold)


def binned(s: Sample, *, fill_zeroes: bool, n_bins: int = 30) -> tuple[Any, Any]:
    """Reference and current shares per bin (Evidently's ``get_binned_data``)."""
    import numpy as np

    if s.kind == NUMERICAL and s.n_unique_reference > 20:
        edges = np.histogram_bin_edges(np.concatenate([s.ref, s.cur]), bins="sturges")
        ref = np.histogram(s.ref, edges)[0] / s.ref.size
        cur = np.histogram(s.cur, edges)[0] / s.cur.size
    else:
        _, rc, cc = s.counts
        ref, cur = rc / rc.sum(), cc / cc.sum()
    if fill_zeroes:
        ref, cur = _fill(ref.astype(float)), _fill(cur.astype(float))
    return ref, cur


def _fill(shares: Any) -> Any:
    low = shares[shares != 0].min()
    shares[shares == 0] = low / 10**6 if low <= 0.0001 else 0.0001
    return shares


def _jensenshannon(s: Sample, threshold: float) -> Outcome:
    from scipy.spatial.distance import jensenshannon

    ref, cur = binned(s, fill_zeroes=False)
    d = float(jensenshannon(ref, cur))
    return Outcome(d, None, d, d >= threshold)


def _wasserstein(s: Sample, threshold: float) -> Outcome:
    import numpy as np

    norm = max(float(np.std(s.ref)), 0.001)
    d = wasserstein_merged(s.merged, s.from_reference) / norm
    return Outcome(d, None, d, d >= threshold)


def wasserstein_merged(merged: Any, from_u: Any) -> float:
    """scipy.stats.wasserstein_distance(u, v) given both samples merged in sorted order and
    which values came from ``u``: the area between the two empirical CDFs, read off running
    counts instead of scipy's argsorts and binary searches. Within a run of equal values the
    running count is short of the CDF, but there the step to the next value is zero."""
    import numpy as np

    if merged.size < 2:
        return 0.0
    n_u = int(np.count_nonzero(from_u))
    n_v = from_u.size - n_u
    u_cdf = np.cumsum(from_u)[:-1] / n_u
    v_cdf = np.cumsum(~from_u)[:-1] / n_v
    return float(np.sum(np.abs(u_cdf - v_cdf) * np.diff(merged)))


def _psi(s: Sample, threshold: float) -> Outcome:
    import numpy as np

    ref, cur = binned(s, fill_zeroes=True)
    d = float(np.sum((ref - cur) * np.log(ref / cur)))
    return Outcome(d, None, d, d >= threshold)


def text_auc(ref: list[str], cur: list[str]) -> tuple[float, int, int]:
    """ROC AUC of Evidently's domain classifier telling current text from reference text,
    with the sizes of the held-out halves (reference, current)."""
    import warnings

    import numpy as np
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline

    texts = list(ref) + list(cur)
    labels = np.r_[np.zeros(len(ref), dtype=int), np.ones(len(cur), dtype=int)]
    x_train, x_test, y_train, y_test = train_test_split(
        texts, labels, test_size=0.5, random_state=42, shuffle=True)
    pipe = Pipeline([
        ("vectorization", TfidfVectorizer(sublinear_tf=True, max_df=0.5, stop_words="english")),
        ("classification", SGDClassifier(alpha=0.0001, max_iter=50, penalty="l1",
                                         loss="modified_huber", random_state=42)),
    ])
    try:
        with warnings.catch_warnings():  # Evidently's max_iter=50 may stop short: its model
            warnings.simplefilter("ignore", ConvergenceWarning)
            pipe.fit(x_train, y_train)
    except ValueError:  # no words left (every token a stop word, or one class): no signal
        return 0.5, int((y_test == 0).sum()), int((y_test == 1).sum())
    auc = float(roc_auc_score(y_test, pipe.predict_proba(x_test)[:, 1]))
    return auc, int((y_test == 0).sum()), int((y_test == 1).sum())


def _abs_text(s: Sample, threshold: float) -> Outcome:
    auc, _, _ = text_auc(s.ref_text, s.cur_text)
    return Outcome(auc, None, auc, auc > threshold)


def _perc_text(s: Sample, threshold: float) -> Outcome:
    """AUC above the ``threshold`` quantile of a random classifier's AUC. Evidently draws
    1,000 random classifiers; the null distribution of the AUC (Mann-Whitney U / n1 n2) is
    used here instead, with its normal approximation (mean 1/2, variance (n1+n2+1)/(12 n1 n2))."""
    import math

    from scipy.stats import norm

    auc, n0, n1 = text_auc(s.ref_text, s.cur_text)
    if n0 == 0 or n1 == 0:
        return Outcome(auc, None, auc, False)
    bound = 0.5 + float(norm.ppf(threshold)) * math.sqrt((n0 + n1 + 1) / (12 * n0 * n1))
    return Outcome(auc, None, auc, auc > bound)


_NUM, _CAT, _TXT = frozenset({NUMERICAL}), frozenset({CATEGORICAL}), frozenset({TEXT})
_BOTH = frozenset({NUMERICAL, CATEGORICAL})

TESTS: dict[str, tuple[StatTest, Callable[[Sample, float], Outcome]]] = {
    t.name: (t, fn) for t, fn in (
        (StatTest("ks", "K-S p-value", _NUM, 0.05, "p_value", "<="), _ks),
        (StatTest("chisquare", "chi-square p-value", _CAT, 0.05, "p_value", "<"), _chisquare),
        (StatTest("z", "Z-test p-value", _CAT, 0.05, "p_value", "<"), _z),
        (StatTest("fisher_exact", "Fisher's exact test", _CAT, 0.1, "p_value", "<"), _fisher),
        (StatTest("anderson", "Anderson-Darling p-value", _NUM, 0.1, "p_value", "<"), _anderson),
        (StatTest("cramer_von_mises", "Cramér-von Mises p-value", _NUM, 0.1, "p_value", "<="),
         _cramer_von_mises),
        (StatTest("jensenshannon", "Jensen-Shannon distance", _BOTH, 0.1, "distance", ">="),
         _jensenshannon),
        (StatTest("wasserstein", "Wasserstein distance (normed)", _NUM, 0.1, "distance", ">="),
         _wasserstein),
        (StatTest("psi", "PSI", _BOTH, 0.1, "distance", ">="), _psi),
        (StatTest("abs_text_content_drift", "absolute text content drift (domain classifier "
                  "ROC AUC)", _TXT, 0.55, "auc", ">"), _abs_text),
        (StatTest("perc_text_content_drift", "text content drift (domain classifier ROC AUC "
                  "above a random classifier's percentile)", _TXT, 0.95, "auc", ">"), _perc_text),
    )
}
# z is applied to binary numeric columns by the automatic choice, as Evidently does
_AUTO_KINDS = {"z": _BOTH, "chisquare": _BOTH}


def resolve(name: str) -> StatTest:
    """The registered test for ``name`` (or an alias); ValueError names the choices."""
    return TESTS[canonical_test(name)][0]


def run(name: str, sample: Sample, threshold: float | None = None, *,
        auto: bool = False) -> tuple[StatTest, Outcome]:
    """Run test ``name`` on ``sample``; ValueError when the test does not take the column's
    kind (an automatic choice may put ``z``/``chisquare`` on a numeric column, as
    Evidently's does)."""
    test = resolve(name)
    kinds = _AUTO_KINDS.get(test.name, test.kinds) if auto else test.kinds
    if sample.kind not in kinds:
        raise ValueError(f"drift test {test.name} is for {' or '.join(sorted(test.kinds))} "
                         f"columns, not {sample.kind}")
    fn = TESTS[test.name][1]
    return test, fn(sample, test.default_threshold if threshold is None else threshold)
