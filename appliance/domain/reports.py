"""Validation reports and column summaries: plain data, JSON round-trippable."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class CheckFailure:
    """One failed check: which column, which check, how many rows, a few bad values."""

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


@dataclass(frozen=True)
class ValidationReport:
    passed: bool
    contract_version: int | None = None
    rows: int = 0
    failures: list[CheckFailure] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "contract_version": self.contract_version,
            "rows": self.rows,
            "failures": [f.to_dict() for f in self.failures],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ValidationReport:
        return cls(
            passed=bool(d["passed"]),
            contract_version=d.get("contract_version"),
            rows=int(d.get("rows", 0)),
            failures=[CheckFailure.from_dict(f) for f in d.get("failures", [])],
        )

    def headline(self) -> str:
        if self.passed:
            return "passed"
        parts = [f"{f.column or '<frame>'}: {f.check} ({f.failing_rows} rows)" for f in self.failures]
        return "; ".join(parts[:5]) + (" ..." if len(parts) > 5 else "")


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
