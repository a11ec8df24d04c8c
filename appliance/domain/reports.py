"""Validation reports and column summaries: plain data, JSON round-trippable.

A report has two lists of :class:`CheckFailure` rows: ``failures`` (hard: the
version is rejected) and ``warnings`` (soft: the version is accepted and the
warnings are kept with it). Reports stored before warnings existed have no
``warnings`` key and read back with an empty list.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

HEADLINE_ITEMS = 3  # rows spelled out in a headline; the rest are counted


@dataclass(frozen=True)
class CheckFailure:
    """One failed check: which column, which check, how many rows, a few bad values.

    ``message`` is one readable line naming the column, the check, the counts
    and sample values; headlines are made of these lines.
    """

    column: str | None       # None for frame-level checks (e.g. a column set mismatch)
    check: str               # e.g. "in_range(0, 120)", "dtype('Float64')", "column_in_schema"
    failing_rows: int
    sample_values: list[Any] = field(default_factory=list)
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CheckFailure:
        return cls(
            column=d.get("column"),
            check=str(d["check"]),
            failing_rows=int(d.get("failing_rows", 0)),
            sample_values=list(d.get("sample_values", [])),
            message=str(d.get("message", "")),
        )

    def line(self) -> str:
        """The readable line for headlines (older reports may lack a message)."""
        if self.message:
            return self.message
        return f"{self.column or 'the file'}: {self.check} ({_count(self.failing_rows, 'row')})"


@dataclass(frozen=True)
class ValidationReport:
    passed: bool
    contract_version: int | None = None
    rows: int = 0
    failures: list[CheckFailure] = field(default_factory=list)
    warnings: list[CheckFailure] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "contract_version": self.contract_version,
            "rows": self.rows,
            "failures": [f.to_dict() for f in self.failures],
            "warnings": [w.to_dict() for w in self.warnings],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValidationReport:
        return cls(
            passed=bool(d["passed"]),
            contract_version=d.get("contract_version"),
            rows=int(d.get("rows", 0)),
            failures=[CheckFailure.from_dict(f) for f in d.get("failures", [])],
            warnings=[CheckFailure.from_dict(w) for w in d.get("warnings") or []],
        )

    def headline(self) -> str:
        """One line: ``passed``, ``passed with 1 warning: ...`` or the failures (and a warning count)."""
        if self.passed and not self.warnings:
            return "passed"
        if self.passed:
            return f"passed with {_count(len(self.warnings), 'warning')}: {_lines(self.warnings)}"
        text = _lines(self.failures)
        if self.warnings:
            text += f" (and {_count(len(self.warnings), 'warning')})"
        return text


def _lines(items: list[CheckFailure]) -> str:
    text = "; ".join(item.line() for item in items[:HEADLINE_ITEMS])
    if len(items) > HEADLINE_ITEMS:
        text += f"; and {len(items) - HEADLINE_ITEMS} more"
    return text


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass(frozen=True)
class ColumnSummary:
    """Per-column statistics for the console; numeric columns carry a histogram."""

    name: str
    dtype: str
    count: int
    nulls: int
    n_unique: int | None = None
    min: float | str | None = None
    max: float | str | None = None
    mean: float | None = None
    std: float | None = None
    histogram: dict[str, list[float]] | None = None   # {"edges": [...], "counts": [...]}
    top_values: list[dict[str, Any]] | None = None    # [{"value": v, "count": n}, ...]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
