"""The profile's checks: nulls, expected ranges, categories and duplicate rows.

Each column check is a row-wise boolean expression counted in the same
polars ``select`` as the contract's pandera checks (see ``_checking``); this
module builds them and turns the counts into report rows, either
``failures`` (the version is rejected) or ``warnings`` (it is accepted and
the warning is kept with it):

* nulls: more than ``max_null_fraction`` rejects; more than ``null_fraction +
  NULL_WARN_MARGIN``, or any null where ``null_fraction`` is 0, warns. Not
  checked when the column says ``nullable: false`` (pandera rejects any null).
* ``expected_range``: finite values outside it warn (NaN is a null, not out of range).
* ``domain``: when less than ``min_domain_mass`` of the non-null values are
  in it, the column is flooded by unseen values and the file is rejected;
  fewer unseen values warn, naming them.
* duplicates: a larger share of exact duplicate rows than
  ``max_duplicate_fraction`` warns (one row hash over the whole frame).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from appliance.domain.reports import CheckFailure
from appliance.validate._counting import Counted, duplicates_above, of, percent, shown
from appliance.validate._frames import Frame
from appliance.validate.profile import (
    MIN_DOMAIN_MASS,
    NULL_WARN_MARGIN,
    ColumnProfile,
    ContractProfile,
)


def column_items(
    name: str, dtype: pl.DataType, profile: ColumnProfile | None, *, nullable: bool
) -> list[Counted]:
    """The counts a column's profile needs, for a column present with the contract's dtype."""
    if profile is None:
        return []
    col = pl.col(name)
    items: list[Counted] = []
    nulls = col.is_null() | col.is_nan() if dtype.is_float() else col.is_null()
    wants_nulls = nullable and (profile.null_fraction is not None or profile.max_null_fraction is not None)
    if wants_nulls or profile.domain is not None:
        items.append(Counted(name, "nulls", nulls, ("profile", name, "nulls"), samples_wanted=False))
    if profile.expected_range is not None and dtype.is_numeric():
        lo, hi = profile.expected_range
        outside = pl.lit(False)
        if lo is not None:
            outside = outside | (col < lo)
        if hi is not None:
            outside = outside | (col > hi)
        if dtype.is_float():
            outside = outside & col.is_not_nan()
        items.append(Counted(name, _range_label(lo, hi), outside, ("profile", name, "range")))
    if profile.domain is not None and _is_stringlike(dtype):
        text = col if dtype == pl.String else col.cast(pl.String)
        unseen = text.is_not_null() & ~text.is_in(list(profile.domain))
        items.append(Counted(name, "domain", unseen, ("profile", name, "domain")))
    return items


def judge(
    items: list[Counted], profile: ContractProfile, *, rows: int, where: str, nullable: dict[str, bool]
) -> tuple[list[CheckFailure], list[CheckFailure]]:
    """Counted profile items -> (failures, warnings), in column order."""
    failures: list[CheckFailure] = []
    warnings: list[CheckFailure] = []
    null_counts = {c.column: c.count for c in items if c.key[2] == "nulls"}
    for c in items:
        p = profile.columns[c.column]
        kind = c.key[2]
        if kind == "nulls" and nullable.get(c.column, True) and rows:
            _judge_nulls(c, p, rows, where, failures, warnings)
        elif kind == "range" and c.count:
            lo, hi = p.expected_range or (None, None)
            warnings.append(CheckFailure(
                c.column, c.check, c.count, c.samples,
                f"{c.column}: {of(c.count, rows)} outside the expected range "
                f"{_bounds(lo, hi)}{shown(c.samples)}",
            ))
        elif kind == "domain" and c.count:
            non_null = rows - null_counts.get(c.column, 0)
            mass = p.min_domain_mass if p.min_domain_mass is not None else MIN_DOMAIN_MASS
            flooded = non_null > 0 and (1 - c.count / non_null) < mass
            head = f"{c.column}: {of(c.count, non_null)} not in {where}'s categories{shown(c.samples)}"
            allowed = percent(round(1 - mass, 6))
            if flooded:
                failures.append(CheckFailure(
                    c.column, f"min_domain_mass({mass:g})", c.count, c.samples,
                    f"{head}; flooded by unseen values (at most {allowed} may be unseen)",
                ))
            else:
                warnings.append(CheckFailure(
                    c.column, "domain", c.count, c.samples,
                    f"{head}; tolerated (up to {allowed} may be unseen)",
                ))
    return failures, warnings


def _judge_nulls(c: Counted, p: ColumnProfile, rows: int, where: str,
                 failures: list[CheckFailure], warnings: list[CheckFailure]) -> None:
    if not c.count:
        return
    fraction = c.count / rows
    head = f"{c.column}: {of(c.count, rows)} null ({percent(fraction)})"
    if p.max_null_fraction is not None and fraction > p.max_null_fraction:
        failures.append(CheckFailure(
            c.column, f"max_null_fraction({p.max_null_fraction:g})", c.count, [None],
            f"{head}; {where} allows at most {percent(p.max_null_fraction)}",
        ))
        return
    if p.null_fraction is None:
        return
    if fraction > p.null_fraction + NULL_WARN_MARGIN or p.null_fraction == 0:
        seen = "none" if p.null_fraction == 0 else f"up to {percent(p.null_fraction)}"
        warnings.append(CheckFailure(
            c.column, f"null_fraction({p.null_fraction:g})", c.count, [None],
            f"{head}; {where} saw {seen}",
        ))


def duplicate_warning(df: Frame, profile: ContractProfile, *, where: str) -> CheckFailure | None:
    """A warning when the share of exact duplicate rows is above the profile's tolerance."""
    limit = profile.frame.max_duplicate_fraction
    rows = df.height
    if limit is None:
        return None
    duplicates = duplicates_above(df, limit)
    if duplicates is None:
        return None
    seen = profile.frame.duplicate_fraction
    return CheckFailure(
        None, f"max_duplicate_fraction({limit:g})", duplicates, [],
        f"the file: {of(duplicates, rows, 'row')} repeat an earlier row exactly "
        f"({percent(duplicates / rows)}); {where} saw "
        f"{percent(seen) if seen is not None else 'fewer'} and tolerates up to {percent(limit)}",
    )


def _range_label(lo: Any, hi: Any) -> str:
    return f"expected_range({_g(lo)}, {_g(hi)})"


def _bounds(lo: Any, hi: Any) -> str:
    return f"[{_g(lo)}, {_g(hi)}]"


def _g(value: Any) -> str:
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _is_stringlike(dtype: pl.DataType) -> bool:
    return dtype == pl.String or dtype == pl.Categorical or isinstance(dtype, pl.Enum)
