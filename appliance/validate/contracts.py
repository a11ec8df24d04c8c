"""Data contracts: pandera polars schemas, inferred from a dataset's first file, stored as YAML.

The stored format is exactly what ``pandera.polars.DataFrameSchema.to_yaml()``
writes (``schema_type: polars_dataframe``, one entry per column with its
``dtype``, ``nullable`` when true, and its checks as ``check_name: arguments``)
and it is read back with pandera's own polars deserialiser, so a contract can
be edited by hand and used directly with ``pandera.polars``.

Inference rules (:func:`infer_contract`):

* ``strict: true``: a column that is not in the contract fails validation;
  every observed column is required; no coercion (``coerce`` stays false).
* ``dtype`` is the polars dtype as read (``Float64``, ``String``,
  ``Datetime(time_unit='us', time_zone=None)``, ...).
* ``nullable: true`` only if the first file had nulls in that column (for
  float columns NaN counts as null, as it does in pandera's null check).
* Integer and float columns get ``in_range(lower, upper)`` from the observed
  finite min and max, with ``span = max - min`` (or ``abs(max)``, or 1, when
  that is zero): ``lower = 0`` if ``min >= 0`` else ``min - span``, and
  ``upper = max + span``. Bounds are rounded outward to three significant
  digits of the span so the YAML stays readable, and clamped to the integer
  dtype's limits. Ordinary new data passes; values far outside what was seen
  fail. Float columns where NaN or +/-inf was seen get no range check
  (pandera's ``in_range`` fails NaN even in a nullable column).
* ``String`` columns with at most 20 distinct values in at least 50 rows get
  ``isin`` with the sorted observed values.
* Other dtypes (booleans, dates, decimals, nested types) get dtype and
  nullability only.

:func:`load_contract` parses with ``yaml.safe_load`` only (no python tags),
refuses unknown keys (a typo such as ``nulable`` would otherwise be ignored)
and allows only pandera's built-in column checks.

:func:`validate_frame` is documented in :mod:`appliance.validate._checking`,
which holds the fast path and the translation of pandera errors into
:class:`~appliance.domain.reports.CheckFailure` rows.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import polars as pl
import yaml

from appliance.domain.reports import ValidationReport
from appliance.errors import ContractInvalid

if TYPE_CHECKING:
    import pandera.polars as pa

ISIN_MAX_DISTINCT = 20
ISIN_MIN_ROWS = 50
_MAX_YAML_NODES = 200_000  # stops alias bombs ("billion laughs") before pandera walks them

_TOP_KEYS = frozenset({
    "schema_type", "version", "api", "columns", "checks", "index", "dtype", "coerce",
    "strict", "name", "ordered", "unique", "report_duplicates", "unique_column_names",
    "add_missing_columns", "title", "description", "metadata",
})
_COLUMN_KEYS = frozenset({
    "title", "description", "dtype", "nullable", "checks", "name", "unique", "coerce",
    "required", "regex", "default", "report_duplicates", "drop_invalid_rows", "metadata",
})
# pandera's built-in polars checks and their aliases; nothing else may be named in a contract.
ALLOWED_CHECKS = frozenset({
    "equal_to", "eq", "not_equal_to", "ne", "greater_than", "gt",
    "greater_than_or_equal_to", "ge", "less_than", "lt", "less_than_or_equal_to", "le",
    "in_range", "between", "isin", "notin", "str_matches", "str_contains",
    "str_startswith", "str_endswith", "str_length", "unique_values_eq",
})


# --------------------------------------------------------------------------- inference


def infer_contract(df: pl.DataFrame, *, dataset: str) -> str:
    """Infer a strict pandera polars schema from ``df`` and return it as contract YAML."""
    import pandera.polars as pa

    observed = _observe(df)
    columns: dict[str, pa.Column] = {}
    for name, dtype in df.schema.items():
        obs = observed[name]
        checks: list[pa.Check] = []
        if obs.get("lo") is not None and not obs.get("non_finite"):
            lower, upper = _range_bounds(obs["lo"], obs["hi"], dtype)
            checks.append(pa.Check.in_range(lower, upper))
        if obs.get("categories") is not None:
            checks.append(pa.Check.isin(obs["categories"]))
        columns[name] = pa.Column(
            dtype, checks=checks or None, nullable=bool(obs["nulls"]), required=True
        )
    schema = pa.DataFrameSchema(
        columns,
        strict=True,
        coerce=False,
        name=dataset,
        description=f"inferred from the first file of dataset {dataset!r} ({df.height} rows)",
    )
    text = schema.to_yaml()
    if not isinstance(text, str) or load_contract(text) != schema:
        raise ContractInvalid(
            f"the contract inferred for {dataset!r} does not round-trip through pandera YAML",
            detail={"dataset": dataset, "yaml": text},
        )
    return text


def _observe(df: pl.DataFrame) -> dict[str, dict[str, Any]]:
    """Null counts, finite ranges and small category sets, in one select (plus one for categories)."""
    exprs: list[pl.Expr] = []
    for i, (name, dtype) in enumerate(df.schema.items()):
        col, key = pl.col(name), f"{i}:"
        nulls = col.null_count()
        if dtype.is_float():
            nulls = nulls + col.is_nan().sum()
            finite = col.filter(col.is_finite())
            exprs += [
                finite.min().alias(key + "lo"),
                finite.max().alias(key + "hi"),
                (col.is_nan() | col.is_infinite()).sum().alias(key + "non_finite"),
            ]
        elif dtype.is_integer():
            exprs += [col.min().alias(key + "lo"), col.max().alias(key + "hi")]
        elif dtype == pl.String and df.height >= ISIN_MIN_ROWS:
            exprs.append(col.drop_nulls().n_unique().alias(key + "distinct"))
        exprs.append(nulls.alias(key + "nulls"))
    row = df.select(exprs).row(0, named=True) if exprs else {}
    by_index: dict[int, dict[str, Any]] = {i: {} for i in range(df.width)}
    for key, value in row.items():
        index, _, stat = key.partition(":")
        by_index[int(index)][stat] = value
    out = {name: by_index[i] for i, name in enumerate(df.columns)}
    small = [n for n, o in out.items() if 0 < (o.get("distinct") or 0) <= ISIN_MAX_DISTINCT]
    if small:
        uniques = df.select(pl.col(n).drop_nulls().unique().implode() for n in small).row(0)
        for name, values in zip(small, uniques, strict=True):
            out[name]["categories"] = sorted(values)
    return out


def _range_bounds(lo: float, hi: float, dtype: pl.DataType) -> tuple[float, float]:
    span = (hi - lo) or abs(hi) or 1
    lower = 0 if lo >= 0 else lo - span
    upper = hi + span
    # Round outward to three significant digits of the span: -52.637361 -> -53.
    exponent = math.floor(math.log10(span)) - 2
    if dtype.is_integer():
        if exponent > 0:
            step = 10**exponent
            lower, upper = (int(lower) // step) * step, -(-int(upper) // step) * step
        dmin, dmax = _integer_limits(dtype)
        return max(int(lower), dmin), min(int(upper), dmax)
    step = 10.0**exponent
    digits = max(-exponent, 0)
    flo = round(math.floor(lower / step) * step, digits) if lower else 0.0
    fhi = round(math.ceil(upper / step) * step, digits)
    return float(flo), float(fhi)


def _integer_limits(dtype: pl.DataType) -> tuple[int, int]:
    name = str(dtype)
    if name.startswith("UInt"):
        return 0, 2 ** int(name[4:]) - 1
    bits = int(name[3:])
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


# --------------------------------------------------------------------------- loading


def load_contract(yaml_text: str) -> pa.DataFrameSchema:
    """Parse contract YAML into a ``pandera.polars.DataFrameSchema`` or raise ContractInvalid."""
    if not isinstance(yaml_text, str):
        raise ContractInvalid(
            "a contract must be YAML text", detail={"type": type(yaml_text).__name__}
        )
    document = _parse_yaml(yaml_text)
    from pandera.io.polars_io import deserialize_schema

    try:
        # pandera pops keys out of list-form checks: give it a copy.
        return deserialize_schema(copy.deepcopy(document))
    except Exception as exc:  # pandera raises TypeError/ValueError/SchemaDefinitionError/...
        failing = _failing_column(document)
        column, reason = failing if failing else (None, _first_line(exc))
        where = f"column {column!r}: " if column is not None else ""
        raise ContractInvalid(
            f"the contract is not a valid pandera schema: {where}{reason}",
            detail={"column": column, "error": f"{type(exc).__name__}: {exc}"},
        ) from exc


@functools.lru_cache(maxsize=32)
def _parse_yaml(yaml_text: str) -> Any:
    """Safe-load and shape-check once per contract text: every file of a dataset reuses it.

    The cached document is never handed out: ``load_contract`` deep-copies it.
    """
    try:
        document = yaml.safe_load(yaml_text)
    except yaml.YAMLError as exc:
        raise ContractInvalid(
            f"the contract is not valid YAML: {_yaml_problem(exc)}", detail=str(exc)
        ) from exc
    _check_shape(document)
    return document


def contract_columns(contract_yaml: str) -> dict[str, str]:
    """Column name -> polars dtype string (``str(dtype)``), in contract order."""
    schema = load_contract(contract_yaml)
    out: dict[str, str] = {}
    for name, column in schema.columns.items():
        out[str(name)] = str(getattr(column.dtype, "type", column.dtype))
    return out


def validate_frame(
    df: pl.DataFrame, contract_yaml: str, *, contract_version: int | None = None
) -> ValidationReport:
    """Validate ``df`` against the contract; never raises on bad data (see ``_checking``)."""
    from appliance.validate._checking import check_frame

    schema = load_contract(contract_yaml)
    failures = check_frame(df, schema, reload=lambda: load_contract(contract_yaml))
    return ValidationReport(
        passed=not failures, contract_version=contract_version, rows=df.height, failures=failures
    )


def _check_shape(document: Any) -> None:
    if not isinstance(document, Mapping) or not isinstance(document.get("columns"), Mapping):
        raise ContractInvalid(
            "the contract is not a schema: expected a mapping with a 'columns' section",
            detail={"type": type(document).__name__},
        )
    _count_nodes(document, [0])
    if document.get("schema_type", "polars_dataframe") != "polars_dataframe":
        raise ContractInvalid(
            f"the contract is for {document.get('schema_type')!r}, not polars_dataframe",
            detail={"schema_type": document.get("schema_type")},
        )
    unknown = sorted(str(k) for k in document if k not in _TOP_KEYS)
    if unknown:
        raise ContractInvalid(f"unknown contract keys: {', '.join(unknown)}", detail={"keys": unknown})
    _check_check_names(document.get("checks"), None)
    for name, spec in document["columns"].items():
        if not isinstance(name, str):
            raise ContractInvalid(
                f"column names must be strings, got {name!r}", detail={"column": repr(name)}
            )
        if not isinstance(spec, Mapping) or not isinstance(spec.get("dtype"), str):
            raise ContractInvalid(f"column {name!r} needs a 'dtype'", detail={"column": name})
        bad = sorted(str(k) for k in spec if k not in _COLUMN_KEYS and k not in ALLOWED_CHECKS)
        if bad:
            raise ContractInvalid(
                f"column {name!r}: unknown keys or checks: {', '.join(bad)}",
                detail={"column": name, "keys": bad},
            )
        _check_check_names(spec.get("checks"), name)


def _check_check_names(checks: Any, column: str | None) -> None:
    """The list form ``checks: [{options: {check_name: ...}}]`` must name allowed checks too."""
    if checks is None:
        return
    if isinstance(checks, Mapping):
        entries: list[tuple[Any, Any]] = list(checks.items())
    elif isinstance(checks, list):
        entries = list(enumerate(checks))
    else:
        raise ContractInvalid(
            f"'checks' of {column or 'the frame'} must be a list or mapping", detail={"column": column}
        )
    for key, entry in entries:
        name = key if isinstance(key, str) else None
        if isinstance(entry, Mapping) and isinstance(entry.get("options"), Mapping):
            name = entry["options"].get("check_name", name)
        if name not in ALLOWED_CHECKS:
            raise ContractInvalid(
                f"{'column ' + repr(column) if column else 'the frame'}: unknown check {name!r}",
                detail={"column": column, "check": name if isinstance(name, str) else repr(name)},
            )


def _count_nodes(node: Any, seen: list[int]) -> None:
    seen[0] += 1
    if seen[0] > _MAX_YAML_NODES:
        raise ContractInvalid("the contract is too large", detail={"max_nodes": _MAX_YAML_NODES})
    if isinstance(node, Mapping):
        for key, value in node.items():
            _count_nodes(key, seen)
            _count_nodes(value, seen)
    elif isinstance(node, list):
        for value in node:
            _count_nodes(value, seen)


def _failing_column(document: Mapping[str, Any]) -> tuple[str, str] | None:
    """Deserialise column by column to name the first one pandera refuses, and why."""
    from pandera.io.polars_io import deserialize_schema

    for name, spec in document["columns"].items():
        try:
            deserialize_schema({"columns": {name: {"dtype": spec["dtype"]}}})
        except Exception:  # the dtype alone is refused
            return str(name), f"unknown dtype {spec['dtype']!r}"
        try:
            deserialize_schema({"columns": {name: copy.deepcopy(spec)}})
        except Exception as exc:  # a check or option is refused
            return str(name), _first_line(exc)
    return None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if isinstance(problem, str) and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(line.strip() for line in text.splitlines()[:3] if line.strip())
