"""A dataset's profile: what its first file looked like, and how far later files may stray.

It lives in the contract under pandera's ``metadata`` key, as ``metadata:
{profile: ...}`` on each column and on the schema. pandera's polars YAML
reader ignores ``metadata`` (and its writer does not write it), so a contract
stays a pandera polars schema that ``pandera.polars`` loads and uses; the
profile's checks are the appliance's own (:mod:`appliance.validate._tolerances`).

Column profile keys (all optional; a missing key means no such check):

==================  ====================================================  ==========
key                 meaning                                               effect
==================  ====================================================  ==========
kind                what inference took the column for (informational)    none
null_fraction       share of nulls seen (NaN counts for floats)           warning
max_null_fraction   above this share of nulls the file is rejected        rejection
observed_range      ``{min, max}`` seen (informational)                   none
expected_range      ``{min_value, max_value}``; values outside it         warning
domain              the categories of a String column                     see below
min_domain_mass     share of non-null values that must be in ``domain``   rejection
==================  ====================================================  ==========

A file with more nulls than ``null_fraction + NULL_WARN_MARGIN``, or with any
null where ``null_fraction`` is 0, gets a warning. Unseen categories are a
warning while at least ``min_domain_mass`` of the values are in the domain
and a rejection below that. Schema profile keys: ``rows`` (informational),
``duplicate_fraction`` and ``max_duplicate_fraction`` (a file with a larger
share of exact duplicate rows gets a warning).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from appliance.errors import ContractInvalid

PROFILE_KEY = "profile"
NULL_WARN_MARGIN = 0.02      # a rise in nulls above this is a warning
NULL_REJECT_MARGIN = 0.25    # a rise in nulls above this is a rejection
MIN_DOMAIN_MASS = 0.99       # TFDV's min_domain_mass: below it, unseen categories reject
DUPLICATE_WARN_MARGIN = 0.05
KINDS = frozenset({
    "numeric", "sequence", "categorical", "text", "identifier", "string", "date", "boolean", "other",
})

_COLUMN_KEYS = frozenset({
    "kind", "null_fraction", "max_null_fraction", "observed_range", "expected_range", "domain",
    "min_domain_mass",
})
_FRAME_KEYS = frozenset({"rows", "duplicate_fraction", "max_duplicate_fraction"})


@dataclass(frozen=True)
class ColumnProfile:
    kind: str | None = None
    null_fraction: float | None = None
    max_null_fraction: float | None = None
    observed_range: tuple[float, float] | None = None
    expected_range: tuple[float | None, float | None] | None = None   # (min_value, max_value)
    domain: tuple[str, ...] | None = None
    min_domain_mass: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.kind is not None:
            out["kind"] = self.kind
        if self.null_fraction is not None:
            out["null_fraction"] = self.null_fraction
        if self.max_null_fraction is not None:
            out["max_null_fraction"] = self.max_null_fraction
        if self.observed_range is not None:
            out["observed_range"] = {"min": self.observed_range[0], "max": self.observed_range[1]}
        if self.expected_range is not None:
            lo, hi = self.expected_range
            out["expected_range"] = {
                k: v for k, v in (("min_value", lo), ("max_value", hi)) if v is not None
            }
        if self.domain is not None:
            out["domain"] = list(self.domain)
        if self.min_domain_mass is not None:
            out["min_domain_mass"] = self.min_domain_mass
        return out


@dataclass(frozen=True)
class FrameProfile:
    rows: int | None = None
    duplicate_fraction: float | None = None
    max_duplicate_fraction: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            k: v for k, v in (
                ("rows", self.rows), ("duplicate_fraction", self.duplicate_fraction),
                ("max_duplicate_fraction", self.max_duplicate_fraction),
            ) if v is not None
        }


@dataclass(frozen=True)
class ContractProfile:
    frame: FrameProfile = field(default_factory=FrameProfile)
    columns: dict[str, ColumnProfile] = field(default_factory=dict)


# --------------------------------------------------------------------------- parsing


def parse_profile(document: Mapping[str, Any]) -> ContractProfile:
    """Read the profile out of a contract document; refuse unknown keys and wrong types."""
    frame = _frame_profile(_profile_of(document.get("metadata"), None))
    columns: dict[str, ColumnProfile] = {}
    for name, spec in document["columns"].items():
        raw = _profile_of(spec.get("metadata"), name)
        if raw is not None:
            columns[str(name)] = _column_profile(raw, str(name))
    return ContractProfile(frame=frame, columns=columns)


def _profile_of(metadata: Any, column: str | None) -> Mapping[str, Any] | None:
    if metadata is None:
        return None
    if not isinstance(metadata, Mapping):
        raise _invalid(column, "'metadata' must be a mapping")
    raw = metadata.get(PROFILE_KEY)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise _invalid(column, "'metadata.profile' must be a mapping")
    allowed = _FRAME_KEYS if column is None else _COLUMN_KEYS
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise _invalid(column, f"unknown profile keys: {', '.join(unknown)}")
    return raw


def _frame_profile(raw: Mapping[str, Any] | None) -> FrameProfile:
    if raw is None:
        return FrameProfile()
    rows = raw.get("rows")
    if rows is not None and (not isinstance(rows, int) or isinstance(rows, bool) or rows < 0):
        raise _invalid(None, "profile 'rows' must be a whole number >= 0")
    return FrameProfile(
        rows=rows,
        duplicate_fraction=_fraction(raw, "duplicate_fraction", None),
        max_duplicate_fraction=_fraction(raw, "max_duplicate_fraction", None),
    )


def _column_profile(raw: Mapping[str, Any], column: str) -> ColumnProfile:
    kind = raw.get("kind")
    if kind is not None and kind not in KINDS:
        raise _invalid(column, f"profile 'kind' must be one of {', '.join(sorted(KINDS))}")
    observed = raw.get("observed_range")
    if observed is not None:
        if not isinstance(observed, Mapping) or set(observed) - {"min", "max"}:
            raise _invalid(column, "profile 'observed_range' must be {min: ..., max: ...}")
        lo, hi = _number(observed.get("min"), column), _number(observed.get("max"), column)
        if lo is None or hi is None:
            raise _invalid(column, "profile 'observed_range' needs both min and max")
        observed = (lo, hi)
    expected = raw.get("expected_range")
    if expected is not None:
        if not isinstance(expected, Mapping) or set(expected) - {"min_value", "max_value"}:
            raise _invalid(column, "profile 'expected_range' must be {min_value: ..., max_value: ...}")
        expected = (_number(expected.get("min_value"), column),
                    _number(expected.get("max_value"), column))
        if expected[0] is not None and expected[1] is not None and expected[0] > expected[1]:
            raise _invalid(column, "profile 'expected_range' has min_value above max_value")
    domain = raw.get("domain")
    if domain is not None:
        if not isinstance(domain, list) or not all(isinstance(v, str) for v in domain):
            raise _invalid(column, "profile 'domain' must be a list of strings")
        domain = tuple(domain)
    return ColumnProfile(
        kind=kind,
        null_fraction=_fraction(raw, "null_fraction", column),
        max_null_fraction=_fraction(raw, "max_null_fraction", column),
        observed_range=observed,
        expected_range=expected,
        domain=domain,
        min_domain_mass=_fraction(raw, "min_domain_mass", column),
    )


def _fraction(raw: Mapping[str, Any], key: str, column: str | None) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _invalid(column, f"profile {key!r} must be a number from 0 to 1")
    return float(value)


def _number(value: Any, column: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(column, f"profile bounds must be finite numbers, got {value!r}")
    return value


def _invalid(column: str | None, problem: str) -> ContractInvalid:
    where = f"column {column!r}" if column is not None else "the schema"
    return ContractInvalid(f"{where}: {problem}", detail={"column": column, "problem": problem})


# --------------------------------------------------------------------------- writing


def profile_metadata(profile: ColumnProfile | FrameProfile) -> dict[str, Any]:
    """The ``metadata`` mapping a profile is stored as."""
    return {PROFILE_KEY: profile.to_dict()}


def ceil_fraction(count: int, total: int) -> float:
    """``count / total`` rounded up to 4 decimals, so a file never exceeds its own profile."""
    if total <= 0 or count <= 0:
        return 0.0
    return min(1.0, math.ceil(count / total * 10_000) / 10_000)


def tolerance(fraction: float, margin: float) -> float:
    return min(1.0, round(fraction + margin, 4))
