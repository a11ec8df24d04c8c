"""Which drift test each column gets, and the per-feature pass over two frames.

The automatic choice is Evidently 0.7's, read from its source:

- the column's kind, from the reference column (``evidently/core/datasets.py``,
  ``infer_column_type``): floats are numerical; integers are categorical with at most 10
  distinct values, else numerical; booleans are categorical; strings are text when more
  than half of the non-null values are distinct, else categorical;
- the test (``evidently/legacy/calculations/stattests/registry.py``,
  ``_get_default_stattest``), where *n* is the number of distinct values over both sides
  and the size is the reference's non-null row count:

  ===========  ======================================  ======================================
  kind         reference <= 1000 rows                  reference > 1000 rows
  ===========  ======================================  ======================================
  numerical    n <= 2: z; n 3-5: chisquare; else ks    n <= 5: jensenshannon; else wasserstein
  categorical  n <= 2: z; else chisquare               jensenshannon
  text         perc_text_content_drift                 abs_text_content_drift
  ===========  ======================================  ======================================

Nulls and infinities are dropped from both sides first, as Evidently drops them. A job file
(or a request) may name another test or a threshold per column (:class:`DriftOptions`).
Thresholds: a distance's default is Evidently's (0.1; 0.55 for text); a p-value test's is the
check's ``p_val``, corrected across the p-value tests (Bonferroni, or Benjamini-Hochberg as
alibi-detect's ``fdr`` computes it); a threshold named in the options is used as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.domain.drift import DriftOptions, FeatureDrift
from appliance.monitor.stattests import (
    CATEGORICAL,
    NUMERICAL,
    TEXT,
    Kind,
    Outcome,
    Sample,
    StatTest,
    resolve,
    run,
)

CORRECTIONS = ("bonferroni", "fdr", "none")
SMALL = 1000  # reference rows: Evidently's boundary between the small- and large-sample tests
INTEGER_CARDINALITY_LIMIT = 10


def column_kind(series: Any) -> Kind:
    """Evidently's ``infer_column_type`` on a polars column."""
    import polars as pl

    dtype = series.dtype
    if dtype.is_float():
        return NUMERICAL
    if dtype.is_integer():
        limit = INTEGER_CARDINALITY_LIMIT
        return CATEGORICAL if series.drop_nulls().n_unique() <= limit else NUMERICAL
    if dtype == pl.Boolean:
        return CATEGORICAL
    values = series.drop_nulls()
    if values.len() and values.cast(pl.Utf8).n_unique() > values.len() * 0.5:
        return TEXT
    return CATEGORICAL


def sample(ref: Any, cur: Any, kind: Kind) -> Sample:
    """Both sides of one column, nulls and infinities dropped, in the form its tests use."""
    import numpy as np
    import polars as pl

    if kind == TEXT:
        return Sample(kind, ref_text=ref.drop_nulls().cast(pl.Utf8).to_list(),
                      cur_text=cur.drop_nulls().cast(pl.Utf8).to_list())
    numeric_dtype = ref.dtype.is_numeric() or ref.dtype == pl.Boolean
    if kind == NUMERICAL or numeric_dtype:
        r, c = _finite(ref), _finite(cur)
        out = Sample(NUMERICAL, ref=r, cur=c)
        if kind == NUMERICAL:
            return out
        keys, rc, cc = out.counts  # a numeric column taken as categorical: count its values
        return Sample(CATEGORICAL, keys=keys, ref_counts=rc, cur_counts=cc)
    name = "v"
    r = ref.cast(pl.Utf8).drop_nulls().alias(name).value_counts(name="r")
    c = cur.cast(pl.Utf8).drop_nulls().alias(name).value_counts(name="c")
    joined = r.join(c, on=name, how="full", coalesce=True).fill_null(0).sort(name)
    return Sample(CATEGORICAL, keys=joined[name].to_numpy(),
                  ref_counts=joined["r"].to_numpy().astype(np.int64),
                  cur_counts=joined["c"].to_numpy().astype(np.int64))


def _finite(series: Any) -> Any:
    """The finite values, sorted (polars' sort: about 1.7x numpy's here)."""
    import numpy as np
    import polars as pl

    values = series.cast(pl.Float64, strict=False).drop_nulls()
    values = values.filter(values.is_finite()).sort()
    return np.ascontiguousarray(values.to_numpy(), dtype=np.float64)


def default_test(s: Sample) -> tuple[str, str]:
    """Evidently's automatic test for the column, and why (kind, distinct values, size)."""
    rows = s.n_ref
    size = f"{rows} reference rows {'<=' if rows <= SMALL else '>'} {SMALL}"
    if s.kind == TEXT:
        return ("perc_text_content_drift" if rows <= SMALL else "abs_text_content_drift",
                f"text, {size}")
    n = s.n_unique
    why = f"{s.kind}, {n} distinct values, {size}"
    if rows <= SMALL:
        if s.kind == NUMERICAL and n > 5:
            return "ks", why
        return ("chisquare" if n > 2 else "z"), why
    if s.kind == NUMERICAL and n > 5:
        return "wasserstein", why
    return "jensenshannon", why


@dataclass
class _Column:
    """One column's test, run; the sample itself is dropped once scored (one column's
    arrays in memory at a time)."""

    name: str
    kind: Kind
    test: StatTest
    outcome: Outcome
    reason: str
    chosen: str
    threshold: float | None  # from the options; None: the test's default
    n_unique: int | None
    rows: tuple[int, int]


def feature_tests(reference: Any, current: Any, kinds: dict[str, Kind], *, p_val: float,
                  correction: str, options: DriftOptions | None = None) -> list[FeatureDrift]:
    """One test per column of ``kinds`` on two polars frames, thresholds corrected."""
    import numpy as np

    if correction not in CORRECTIONS:
        raise ValueError(f"correction is one of {CORRECTIONS}")
    options = options or DriftOptions()
    out: dict[str, FeatureDrift] = {}
    columns: list[_Column] = []
    for col, kind in kinds.items():
        s = sample(reference[col], current[col], kind)
        if not (s.n_ref and s.n_cur):
            out[col] = FeatureDrift(column=col, test=options.tests.get(col, "none"),
                                    statistic=None, p_value=None, note="no values on one side",
                                    threshold=options.thresholds.get(col, p_val), drift=False,
                                    kind=kind)
            continue
        columns.append(_scored(col, s, options))
        del s
    corrected = [c for c in columns if c.threshold is None and c.test.score == "p_value"]
    p_threshold = p_val
    if correction == "bonferroni":
        p_threshold = p_val / max(len(corrected), 1)
    elif correction == "fdr" and corrected:
        p_threshold = _bh_threshold(
            np.array([c.outcome.p_value for c in corrected], dtype=float), p_val)
    for c in columns:
        res, drift = c.outcome, c.outcome.drift
        threshold = c.threshold if c.threshold is not None else c.test.default_threshold
        if c in corrected:  # the score does not depend on the threshold: decide again
            threshold = p_threshold
            drift = c.test.decide(res.p_value, threshold)
        out[c.name] = FeatureDrift(
            column=c.name, test=c.test.name, statistic=_num(res.statistic),
            p_value=_num(res.p_value), distance=_num(res.distance), threshold=threshold,
            drift=drift, kind=c.kind, reason=c.reason,
            chosen="auto" if c.chosen == "auto" else "override", n_unique=c.n_unique,
            rows_reference=c.rows[0], rows_current=c.rows[1])
    return [out[col] for col in kinds]


def _scored(col: str, s: Sample, options: DriftOptions) -> _Column:
    from appliance.errors import InvalidInput

    name, reason = default_test(s)
    chosen = "auto"
    if col in options.tests:
        reason = f"set for this column (automatic: {name}, {reason})"
        name, chosen = options.tests[col], "override"
    threshold = options.thresholds.get(col)
    try:
        test = resolve(name)
        _, outcome = run(name, s, test.default_threshold if threshold is None else threshold,
                         auto=chosen == "auto")
    except ValueError as exc:
        raise InvalidInput(f"column {col!r}: {exc}",
                           detail={"field": f"drift.tests.{col}"}) from None
    return _Column(col, s.kind, test, outcome, reason, chosen, threshold,
                   s.n_unique if s.kind != TEXT else None, (s.n_ref, s.n_cur))


def _bh_threshold(p_values: Any, q: float) -> float:
    """Benjamini-Hochberg's threshold, as alibi-detect's ``fdr`` returns it (0 when nothing
    is significant)."""
    import numpy as np

    n = p_values.size
    q_thr = q * np.arange(1, n + 1) / n
    below = np.sort(p_values) < q_thr
    return float(q_thr[np.where(below)[0].max()]) if below.any() else 0.0


def _num(x: float | None) -> float | None:
    """JSON has no NaN or infinity: a degenerate statistic is reported as null."""
    import math

    return x if x is None or math.isfinite(x) else None
