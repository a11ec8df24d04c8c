"""Running a contract over a frame and turning the outcome into CheckFailure rows.

Pandera stays the contract format and the validator of record, but a plain
``schema.validate(df, lazy=True)`` is not used as the hot path: on a frame with
many bad rows it materialises every failure case as a string row (1M bad rows
x 17 checks took 2.5 s on the benchmark frame), and its failure cases are the
only way to get counts. So, when a contract uses only what we can mirror
exactly (built-in column checks, dtype, nullability, required/strict columns):

1. one polars ``select`` computes, for every column check, the number of
   failing rows. The check expressions are pandera's own: each built-in check
   function is called with a stand-in frame whose ``select`` hands back the
   expression it was given, so the semantics (null handling via
   ``ignore_na``, NaN counting as null in float columns) are pandera's;
2. if nothing failed, the frame passed: pandera is not called;
3. otherwise pandera validates the frame lazily, with failure cases capped
   per check, and its errors are cross-checked against ours; any error we did
   not model sends the whole frame down the pure-pandera path below. True
   counts and up to 5 distinct bad values come from polars.

Contracts with anything else (frame-level checks, ``unique``, regex columns,
coercion, element-wise or custom checks), and data on which a check expression
cannot run, go through pandera alone, uncapped, and counts come from its
failure cases (which, in the polars backend, list every failing row).

Report conventions: a missing or extra column is a frame-level failure
(``column=None``) naming the column in ``sample_values``; a frame-level or
dtype failure counts every row; a column with the wrong dtype reports only
the dtype failure (its checks are meaningless against another type), with the
values that cannot be read as the contract's dtype as samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from appliance.domain.reports import CheckFailure
from appliance.validate._values import json_safe

if TYPE_CHECKING:
    import pandera.polars as pa

SAMPLE_SIZE = 5
_SAMPLE_SCAN_ROWS = 100_000  # distinct samples are drawn from the first failing rows only
_CAPPED_FAILURE_CASES = 5


@dataclass
class _Counted:
    """One failure candidate whose row count comes out of the shared select."""

    column: str
    check: str
    fails: pl.Expr             # true where a row fails
    key: tuple[Any, ...]
    count: int = 0
    samples: list[Any] = field(default_factory=list)


class _Capture:
    """Stands in for a LazyFrame: built-in polars checks end in ``lazyframe.select(expr)``."""

    def select(self, *exprs: Any) -> tuple[Any, ...]:
        return exprs


def check_frame(
    df: pl.DataFrame, schema: pa.DataFrameSchema, *, reload: Callable[[], pa.DataFrameSchema]
) -> list[CheckFailure]:
    """All failures of ``df`` against ``schema`` (empty when it passes); never raises on data.

    ``reload`` gives a fresh copy of the schema, so the capped cross-check can
    change check options without touching ``schema``.
    """
    plan = _plan(schema)
    if plan is None:
        return check_with_pandera(df, schema)
    try:
        failures, keys = _fast_failures(df, schema, plan)
    except pl.exceptions.PolarsError:
        return check_with_pandera(df, schema)
    if not failures:
        return []
    capped = reload()
    for column in capped.columns.values():
        for check in column.checks:
            check.n_failure_cases = _CAPPED_FAILURE_CASES
    errors = _pandera_errors(df, capped)
    if isinstance(errors, Exception):
        return check_with_pandera(df, schema)
    mistyped = {f.column for f in failures if f.check.startswith("dtype(")}
    unmodelled = [
        e for e in errors
        if _error_key(e) not in keys and (_error_column(e) not in mistyped or _reason(e) == "wrong_dtype")
    ]
    return check_with_pandera(df, schema) if unmodelled else failures


def check_with_pandera(df: pl.DataFrame, schema: pa.DataFrameSchema) -> list[CheckFailure]:
    """The pure-pandera path: uncapped lazy validation, counts from its failure cases."""
    errors = _pandera_errors(df, schema)
    if isinstance(errors, Exception):
        # e.g. pandera 0.35 cannot assemble its report when a bool-valued check
        # (unique_values_eq) fails next to a row-valued one.
        reason = " ".join(str(errors).split())[:300]
        return [CheckFailure(
            None, "pandera_error", df.height, [],
            f"pandera could not run the contract: {type(errors).__name__}: {reason}",
        )]
    failures: list[CheckFailure] = []
    seen: set[tuple[Any, ...]] = set()
    for error in errors:
        key = _error_key(error)
        if key in seen:
            continue
        seen.add(key)
        failures.append(_failure_from_error(df, error))
    return _drop_checks_of_mistyped(failures)


# --------------------------------------------------------------------------- fast path


_Plan = list[tuple[str, Any, list[tuple[int, Any, pl.Expr]]]]


def _plan(schema: pa.DataFrameSchema) -> _Plan | None:
    """Per column, pandera's own check expressions; None if the schema needs pandera itself."""
    if (
        schema.checks or schema.unique or schema.ordered or schema.coerce or schema.dtype is not None
        or schema.add_missing_columns or getattr(schema, "parsers", None)
        or schema.strict not in (True, False, "filter")
    ):
        return None
    plan: _Plan = []
    for name, column in schema.columns.items():
        if (
            column.dtype is None or column.regex or column.unique or column.coerce
            or column.default is not None or column.drop_invalid_rows
            or getattr(column, "parsers", None)
        ):
            return None
        exprs: list[tuple[int, Any, pl.Expr]] = []
        for index, check in enumerate(column.checks):
            expr = _capture(check, str(name))
            if expr is None:
                return None
            exprs.append((index, check, ~expr.fill_null(bool(check.ignore_na))))
        plan.append((str(name), column, exprs))
    return plan


def _capture(check: Any, name: str) -> pl.Expr | None:
    if check.element_wise or check.groupby is not None or check.groups is not None:
        return None
    try:
        import pandera.backends.polars.builtin_checks  # noqa: F401  (registers the polars check fns)
        from pandera.api.polars.types import PolarsData

        out = check._check_fn(PolarsData(_Capture(), name), **check._check_kwargs)  # type: ignore[arg-type]
    except Exception:  # not a select-shaped check: pandera must run it
        return None
    if isinstance(out, tuple) and len(out) == 1 and isinstance(out[0], pl.Expr):
        return out[0]
    return None


def _fast_failures(
    df: pl.DataFrame, schema: pa.DataFrameSchema, plan: _Plan
) -> tuple[list[CheckFailure], set[tuple[Any, ...]]]:
    from pandera.api.polars.types import PolarsData

    present = df.schema
    rows = df.height
    ordered: list[CheckFailure | _Counted] = []
    for name, column, _ in plan:
        if name not in present and column.required:
            ordered.append(_missing(name, rows))
    if schema.strict is True:
        ordered += [_extra(name, rows) for name in df.columns if name not in schema.columns]
    lazy = df.lazy()
    for name, column, checks in plan:
        if name not in present:
            continue
        actual = present[name]
        if not column.dtype.check(actual, PolarsData(lazy.select(name), name)):
            ordered.append(_dtype_failure(df, name, column.dtype))
            continue
        col = pl.col(name)
        if not column.nullable:
            nulls = col.is_null() | col.is_nan() if actual.is_float() else col.is_null()
            ordered.append(_Counted(name, "not_nullable", nulls, ("not_nullable", name)))
        for index, check, fails in checks:
            ordered.append(_Counted(name, _check_label(check), fails, ("check", name, index)))

    counted = [c for c in ordered if isinstance(c, _Counted)]
    if counted:
        sums = df.select(c.fails.sum().alias(str(i)) for i, c in enumerate(counted)).row(0)
        for c, n in zip(counted, sums, strict=True):
            c.count = int(n or 0)
        _fill_samples(df, [c for c in counted if c.count])

    failures: list[CheckFailure] = []
    keys: set[tuple[Any, ...]] = set()
    for item in ordered:
        if isinstance(item, _Counted):
            if not item.count:
                continue
            keys.add(item.key)
            failures.append(_counted_failure(item))
        else:
            keys.add(_failure_key(item))
            failures.append(item)
    return failures, keys


def _fill_samples(df: pl.DataFrame, failing: list[_Counted]) -> None:
    if not failing:
        return
    exprs = []
    for i, c in enumerate(failing):
        bad = pl.col(c.column).filter(c.fails).head(_SAMPLE_SCAN_ROWS)
        exprs.append(bad.unique(maintain_order=True).head(SAMPLE_SIZE).implode().alias(str(i)))
    for c, values in zip(failing, df.select(exprs).row(0), strict=True):
        c.samples = [json_safe(v) for v in values]


def _counted_failure(c: _Counted) -> CheckFailure:
    if c.check == "not_nullable":
        return _null_failure(c.column, c.count)
    return _check_failure(c.column, c.check, c.count, c.samples)


# --------------------------------------------------------------------------- pandera path


def _pandera_errors(df: pl.DataFrame, schema: pa.DataFrameSchema) -> list[Any] | Exception:
    """Pandera's errors for ``df`` ([] when it passes), or the exception when pandera itself broke."""
    from pandera.errors import SchemaError, SchemaErrors

    try:
        schema.validate(df, lazy=True)
    except SchemaErrors as exc:
        return list(exc.schema_errors)
    except SchemaError as exc:
        return [exc]
    except Exception as exc:  # a pandera/polars bug must not turn into "bad data raises"
        return exc
    return []


def _reason(error: Any) -> str:
    reason = getattr(error, "reason_code", None)
    return str(getattr(reason, "value", reason))


def _error_column(error: Any) -> str | None:
    from pandera.api.polars.components import Column

    return str(error.schema.name) if isinstance(error.schema, Column) else None


def _error_key(error: Any) -> tuple[Any, ...]:
    reason, column = _reason(error), _error_column(error)
    if reason == "column_not_in_dataframe":
        return ("column_in_dataframe", str(error.failure_cases))
    if reason == "column_not_in_schema":
        return ("column_in_schema", str(error.failure_cases))
    if reason == "wrong_dtype":
        return ("dtype", column)
    if reason == "series_contains_nulls":
        return ("not_nullable", column)
    if reason in ("dataframe_check", "check_error") and column is not None:
        return ("check", column, error.check_index)
    return ("other", reason, column, str(error.check))


def _failure_key(failure: CheckFailure) -> tuple[Any, ...]:
    if failure.check in ("column_in_dataframe", "column_in_schema"):
        return (failure.check, failure.sample_values[0])
    return ("dtype", failure.column)


def _failure_from_error(df: pl.DataFrame, error: Any) -> CheckFailure:
    reason, column = _reason(error), _error_column(error)
    cases = error.failure_cases
    if reason == "column_not_in_dataframe":
        return _missing(str(cases), df.height)
    if reason == "column_not_in_schema":
        return _extra(str(cases), df.height)
    if reason == "wrong_dtype" and column is not None:
        return _dtype_failure(df, column, error.schema.dtype)
    label = _check_label(error.check) if error.check is not None else reason
    if reason == "check_error":
        where = f"column {column!r}" if column is not None else "the frame"
        cause = getattr(error, "original_exc", None) or getattr(error, "failure_cases", None)
        text = str(getattr(cause, "args", [cause])[0] if cause is not None else reason)
        return CheckFailure(
            column, label, df.height, [],
            f"check {label} could not run on {where}: {text.strip().splitlines()[0]}",
        )
    count = cases.height if isinstance(cases, pl.DataFrame) else df.height
    if reason == "series_contains_nulls" and column is not None:
        return _null_failure(column, count)
    samples: list[Any] = []
    if isinstance(cases, pl.DataFrame) and cases.width == 1:
        samples = [json_safe(v) for v in cases.to_series().unique(maintain_order=True).head(SAMPLE_SIZE)]
    elif isinstance(cases, pl.DataFrame):
        samples = [json_safe(r) for r in cases.head(SAMPLE_SIZE).to_dicts()]
    elif cases is not None:
        samples = [json_safe(cases)]
    if column is not None and isinstance(cases, pl.DataFrame):
        return _check_failure(column, label, count, samples)
    message = " ".join(str(error).strip().splitlines()[:1]) or reason
    return CheckFailure(column, label, count, samples[:SAMPLE_SIZE], message)


def _drop_checks_of_mistyped(failures: list[CheckFailure]) -> list[CheckFailure]:
    mistyped = {f.column for f in failures if f.check.startswith("dtype(")}
    return [f for f in failures if f.column not in mistyped or f.check.startswith("dtype(")]


# --------------------------------------------------------------------------- report rows


def _check_label(check: Any) -> str:
    if isinstance(check, str):
        return check
    error = getattr(check, "error", None)
    return error if isinstance(error, str) and error else str(getattr(check, "name", check))


def _missing(name: str, rows: int) -> CheckFailure:
    return CheckFailure(
        None, "column_in_dataframe", rows, [name],
        f"column {name!r} is required by the contract but missing from the data",
    )


def _extra(name: str, rows: int) -> CheckFailure:
    return CheckFailure(
        None, "column_in_schema", rows, [name],
        f"column {name!r} is not in the contract (the contract is strict); "
        "add it to the contract to accept it",
    )


def _dtype_failure(df: pl.DataFrame, name: str, expected: Any) -> CheckFailure:
    target = getattr(expected, "type", expected)
    actual = df.schema[name]
    col = pl.col(name)
    unreadable = 0
    try:
        bad = col.is_not_null() & col.cast(target, strict=False).is_null()
        unreadable, samples = df.select(
            bad.sum().alias("n"),
            col.filter(bad).unique(maintain_order=True).head(SAMPLE_SIZE).implode().alias("s"),
        ).row(0)
    except Exception:  # no cast between the two types: show what is there instead
        samples = df.get_column(name).drop_nulls().unique(maintain_order=True).head(SAMPLE_SIZE)
    message = f"column {name!r} should be {target} but is {actual}"
    if unreadable:
        message += f"; {_rows(unreadable, 'value')} cannot be read as {target}"
    return CheckFailure(
        name, f"dtype('{expected}')", df.height, [json_safe(v) for v in samples], message
    )


def _null_failure(name: str, count: int) -> CheckFailure:
    return CheckFailure(
        name, "not_nullable", count, [None],
        f"column {name!r} has {_rows(count, 'null value')} but the contract does not allow nulls",
    )


def _check_failure(name: str, check: str, count: int, samples: list[Any]) -> CheckFailure:
    shown = ", ".join(repr(v) for v in samples)
    return CheckFailure(
        name, check, count, samples,
        f"{_rows(count)} of column {name!r} {'fails' if count == 1 else 'fail'} {check}"
        + (f", e.g. {shown}" if shown else ""),
    )


def _rows(n: int, noun: str = "row") -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
