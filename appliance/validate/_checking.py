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

The contract's profile (``metadata.profile``, see :mod:`appliance.validate.profile`)
adds counts to the same select: nulls, expected ranges and categories of
each column present with the contract's dtype (:mod:`appliance.validate._tolerances`
judges them into failures and warnings). On the pure-pandera path they are
counted in a select of their own.

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
from appliance.validate._counting import _SAMPLE_SCAN_ROWS, SAMPLE_SIZE, Counted, count_all, of, shown
from appliance.validate._frames import Frame, failing_values, is_streamed
from appliance.validate._tolerances import column_items, duplicate_warning, judge
from appliance.validate._values import json_safe
from appliance.validate.profile import ContractProfile

if TYPE_CHECKING:
    import pandera.polars as pa

_CAPPED_FAILURE_CASES = 5


@dataclass(frozen=True)
class Outcome:
    """What a frame did against a contract: hard failures and soft warnings."""

    failures: list[CheckFailure] = field(default_factory=list)
    warnings: list[CheckFailure] = field(default_factory=list)


class _Capture:
    """Stands in for a LazyFrame: built-in polars checks end in ``lazyframe.select(expr)``."""

    def select(self, *exprs: Any) -> tuple[Any, ...]:
        return exprs


def check_frame(
    df: Frame,
    schema: pa.DataFrameSchema,
    *,
    reload: Callable[[], pa.DataFrameSchema],
    profile: ContractProfile | None = None,
    where: str = "the contract",
) -> Outcome:
    """All failures and warnings of ``df`` against ``schema`` and ``profile``; never raises on data.

    ``reload`` gives a fresh copy of the schema, so the capped cross-check can
    change check options without touching ``schema``. ``where`` names the
    contract in messages (``contract v3``).
    """
    profile = profile or ContractProfile()
    plan = _plan(schema)
    if plan is None or not isinstance(df, pl.DataFrame):
        if not isinstance(df, pl.DataFrame):
            if plan is None:
                return Outcome([_needs_whole_table(df.height, where)])
            # A streamed table has no pandera cross-check: the counts below are pandera's
            # own check expressions, and pandera would need the whole table in memory.
            try:
                failures, _, soft = _fast_failures(df, schema, plan, profile, where)
            except pl.exceptions.PolarsError as exc:
                return Outcome([_needs_whole_table(df.height, where, str(exc))])
            return Outcome(failures + soft.failures, soft.warnings)
        return _pandera_outcome(df, schema, profile, where)
    try:
        failures, keys, soft = _fast_failures(df, schema, plan, profile, where)
    except pl.exceptions.PolarsError:
        return _pandera_outcome(df, schema, profile, where)
    if failures:
        capped = reload()
        for column in capped.columns.values():
            for check in column.checks:
                check.n_failure_cases = _CAPPED_FAILURE_CASES
        errors = _pandera_errors(df, capped)
        if isinstance(errors, Exception):
            failures = check_with_pandera(df, schema, where=where)
        else:
            mistyped = {f.column for f in failures if f.check.startswith("dtype(")}
            unmodelled = [
                e for e in errors
                if _error_key(e) not in keys
                and (_error_column(e) not in mistyped or _reason(e) == "wrong_dtype")
            ]
            if unmodelled:
                failures = check_with_pandera(df, schema, where=where)
    return Outcome(failures + soft.failures, soft.warnings)


def check_with_pandera(
    df: pl.DataFrame, schema: pa.DataFrameSchema, *, where: str = "the contract"
) -> list[CheckFailure]:
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
        failures.append(_failure_from_error(df, error, where))
    return _drop_checks_of_mistyped(failures)


def _pandera_outcome(
    df: pl.DataFrame, schema: pa.DataFrameSchema, profile: ContractProfile, where: str
) -> Outcome:
    """Pandera for the contract's checks; the profile's counts in a select of their own."""
    failures = check_with_pandera(df, schema, where=where)
    items: list[Counted] = []
    nullable: dict[str, bool] = {}
    for name, column in schema.columns.items():
        name = str(name)
        if name in df.schema and _dtype_ok(df, name, column):
            nullable[name] = bool(column.nullable)
            items += column_items(name, df.schema[name], profile.columns.get(name),
                                  nullable=bool(column.nullable))
    try:
        count_all(df, items)
    except pl.exceptions.PolarsError as exc:
        return Outcome(failures, [CheckFailure(
            None, "profile_error", df.height, [], f"the profile checks could not run: {exc}"[:300])])
    soft = _judged(df, items, profile, where, nullable)
    return Outcome(failures + soft.failures, soft.warnings)


def _judged(df: Frame, items: list[Counted], profile: ContractProfile, where: str,
            nullable: dict[str, bool]) -> Outcome:
    failures, warnings = judge(items, profile, rows=df.height, where=where, nullable=nullable)
    duplicates = duplicate_warning(df, profile, where=where)
    return Outcome(failures, warnings + ([duplicates] if duplicates else []))


def _dtype_ok(df: Frame, name: str, column: Any) -> bool:
    from pandera.api.polars.types import PolarsData

    if column.dtype is None:
        return False
    try:
        return bool(column.dtype.check(df.schema[name], PolarsData(df.lazy().select(name), name)))
    except Exception:  # a dtype pandera cannot compare: leave the column to pandera
        return False


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
    df: Frame, schema: pa.DataFrameSchema, plan: _Plan, profile: ContractProfile, where: str
) -> tuple[list[CheckFailure], set[tuple[Any, ...]], Outcome]:
    from pandera.api.polars.types import PolarsData

    present = df.schema
    rows = df.height
    ordered: list[CheckFailure | Counted] = []
    for name, column, _ in plan:
        if name not in present and column.required:
            ordered.append(_missing(name, rows, where))
    if schema.strict is True:
        ordered += [_extra(name, rows, where) for name in df.columns if name not in schema.columns]
    lazy = df.lazy()
    soft: list[Counted] = []
    nullable: dict[str, bool] = {}
    for name, column, checks in plan:
        if name not in present:
            continue
        actual = present[name]
        if not column.dtype.check(actual, PolarsData(lazy.select(name), name)):
            ordered.append(_dtype_failure(df, name, column.dtype, where))
            continue
        ordered += _column_counts(name, column, checks, actual)
        nullable[name] = bool(column.nullable)
        soft += column_items(name, actual, profile.columns.get(name), nullable=bool(column.nullable))

    count_all(df, [c for c in ordered if isinstance(c, Counted)] + soft)

    failures: list[CheckFailure] = []
    keys: set[tuple[Any, ...]] = set()
    for item in ordered:
        if isinstance(item, Counted):
            if not item.count:
                continue
            keys.add(item.key)
            failures.append(_counted_failure(item, rows, where))
        else:
            keys.add(_failure_key(item))
            failures.append(item)
    return failures, keys, _judged(df, soft, profile, where, nullable)


def _column_counts(name: str, column: Any, checks: list[tuple[int, Any, pl.Expr]],
                   actual: pl.DataType) -> list[Counted]:
    col = pl.col(name)
    out: list[Counted] = []
    if not column.nullable:
        nulls = col.is_null() | col.is_nan() if actual.is_float() else col.is_null()
        out.append(Counted(name, "not_nullable", nulls, ("not_nullable", name),
                           samples_wanted=False))
    for index, check, fails in checks:
        out.append(Counted(name, _check_label(check), fails, ("check", name, index)))
    return out


def counted_items(present: pl.Schema, schema: pa.DataFrameSchema,
                  profile: ContractProfile) -> list[Counted] | None:
    """The counts the fast path asks of a table of schema ``present`` (for its columns
    that have the contract's dtype), or None when the contract needs pandera itself:
    what a streamed read counts piece by piece (:mod:`appliance.validate._piececounts`)."""
    from pandera.api.polars.types import PolarsData

    plan = _plan(schema)
    if plan is None:
        return None
    lazy = pl.LazyFrame(schema=present)
    out: list[Counted] = []
    for name, column, checks in plan:
        if name in present and column.dtype.check(present[name],
                                                  PolarsData(lazy.select(name), name)):
            out += _column_counts(name, column, checks, present[name])
            out += column_items(name, present[name], profile.columns.get(name),
                                nullable=bool(column.nullable))
    return out


def _counted_failure(c: Counted, rows: int, where: str) -> CheckFailure:
    if c.check == "not_nullable":
        return _null_failure(c.column, c.count, rows, where)
    return _check_failure(c.column, c.check, c.count, c.samples, rows)


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


def _failure_from_error(df: pl.DataFrame, error: Any, where: str) -> CheckFailure:
    reason, column = _reason(error), _error_column(error)
    cases = error.failure_cases
    if reason == "column_not_in_dataframe":
        return _missing(str(cases), df.height, where)
    if reason == "column_not_in_schema":
        return _extra(str(cases), df.height, where)
    if reason == "wrong_dtype" and column is not None:
        return _dtype_failure(df, column, error.schema.dtype, where)
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
        return _null_failure(column, count, df.height, where)
    samples: list[Any] = []
    if isinstance(cases, pl.DataFrame) and cases.width == 1:
        samples = [json_safe(v) for v in cases.to_series().unique(maintain_order=True).head(SAMPLE_SIZE)]
    elif isinstance(cases, pl.DataFrame):
        samples = [json_safe(r) for r in cases.head(SAMPLE_SIZE).to_dicts()]
    elif cases is not None:
        samples = [json_safe(cases)]
    if column is not None and isinstance(cases, pl.DataFrame):
        return _check_failure(column, label, count, samples, df.height)
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


def _needs_whole_table(rows: int, where: str, detail: str = "") -> CheckFailure:
    why = f" ({detail[:200]})" if detail else ""
    return CheckFailure(
        None, "needs_whole_table", rows, [],
        f"{where} has checks that only pandera can run, on the whole table in memory (frame-"
        f"level, unique, regex, element-wise or custom checks){why}; this file was read in a "
        "stream because it is too big for the parser's memory cap (APPLIANCE_PARSE_MEMORY_MB): "
        "drop those checks from the contract or raise the cap",
    )


def _missing(name: str, rows: int, where: str) -> CheckFailure:
    return CheckFailure(
        None, "column_in_dataframe", rows, [name], f"column {name!r} is missing (required by {where})"
    )


def _extra(name: str, rows: int, where: str) -> CheckFailure:
    return CheckFailure(
        None, "column_in_schema", rows, [name],
        f"column {name!r} is not in {where} (the contract is strict); "
        "add it to the contract to accept it",
    )


def _dtype_failure(df: Frame, name: str, expected: Any, where: str) -> CheckFailure:
    target = getattr(expected, "type", expected)
    actual = df.schema[name]
    col = pl.col(name)
    unreadable = 0
    try:
        bad = col.is_not_null() & col.cast(target, strict=False).is_null()
        if is_streamed(df):
            unreadable = df.select(bad.sum()).item()
            samples = failing_values(df, name, bad, _SAMPLE_SCAN_ROWS).unique(
                maintain_order=True).head(SAMPLE_SIZE)
        else:
            unreadable, samples = df.select(
                bad.sum().alias("n"),
                col.filter(bad).unique(maintain_order=True).head(SAMPLE_SIZE).implode().alias("s"),
            ).row(0)
    except Exception:  # no cast between the two types: show what is there instead
        samples = df.get_column(name).drop_nulls().unique(maintain_order=True).head(SAMPLE_SIZE)
    values = [json_safe(v) for v in samples]
    message = f"{name}: type {actual}, but {where} says {target}"
    if unreadable:
        message += f"; {of(unreadable, df.height)} cannot be read as {target}{shown(values)}"
    return CheckFailure(name, f"dtype('{expected}')", df.height, values, message)


def _null_failure(name: str, count: int, rows: int, where: str) -> CheckFailure:
    return CheckFailure(
        name, "not_nullable", count, [None],
        f"{name}: {of(count, rows)} null, but {where} allows no nulls (nullable: false)",
    )


def _check_failure(name: str, check: str, count: int, samples: list[Any], rows: int) -> CheckFailure:
    return CheckFailure(
        name, check, count, samples, f"{name}: {of(count, rows)} fail {check}{shown(samples)}"
    )
