"""Data contracts: pandera polars schemas, inferred from a dataset's first file, stored as YAML.

The stored format is what ``pandera.polars.DataFrameSchema.to_yaml()`` writes
(``schema_type: polars_dataframe``, one entry per column with its ``dtype``,
``nullable``, and its checks as ``check_name: arguments``) plus the dataset's
*profile* under pandera's ``metadata`` key (:mod:`appliance.validate.profile`).
It is read back with pandera's own polars deserialiser, which ignores
``metadata``, so a contract can be edited by hand and used directly with
``pandera.polars``.

Inference (:func:`infer_contract`), after TensorFlow Data Validation's schema
inference: type, presence and nullability, and categorical domains; never
a hard bound that the next file could trip over by being a little different.

* ``strict: true``: a column that is not in the contract fails validation;
  every observed column is required; no coercion (``coerce`` stays false).
* ``dtype`` is the polars dtype as read (``Float64``, ``String``, ``Date``, ...).
* ``nullable: true`` for every column: nulls are governed by the profile's
  ``null_fraction`` (seen, rounded up; a rise of more than 2 points warns, and
  any null where none was seen warns) and ``max_null_fraction`` (seen + 0.25:
  above it the file is rejected).
* integer and float columns: ``observed_range`` and a soft ``expected_range``,
  the observed range widened by its span (``lower = 0`` if ``min >= 0``).
  Values outside it make a warning, not a rejection. An integer column that
  never decreases in the first file (a year, a season, a running id) is a
  ``sequence``: its expected range has no upper bound. Float columns where an
  infinity was seen get no expected range.
* ``String`` columns: *categorical* (at least 50 non-null values, at most 50
  distinct, each seen twice on average) get a ``domain`` with
  ``min_domain_mass: 0.99``; values that look like dates (90% of a sample),
  long values (over 40 characters on average: free text) and identifiers
  (all distinct) stay free-form.
* ``Date``/``Datetime``, booleans and other dtypes: dtype and nulls only.
* the schema's profile: ``duplicate_fraction`` seen and
  ``max_duplicate_fraction`` (seen + 0.05: above it a warning).

Hard checks are everything pandera itself checks (dtype, required and
strict columns, ``nullable: false``, every check written under a column) plus
``max_null_fraction`` and ``min_domain_mass``; the rest of the profile is soft.
To harden an expected range, write ``in_range: {min_value: .., max_value: ..}``
on the column.

:func:`load_contract` parses with ``yaml.safe_load`` only (no python tags),
refuses unknown keys (a typo such as ``nulable`` would otherwise be ignored),
allows only pandera's built-in column checks, and checks the profile's keys
and types.

:func:`validate_frame` is documented in :mod:`appliance.validate._checking`,
which holds the fast path and the translation of pandera errors into
:class:`~appliance.domain.reports.CheckFailure` rows.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import polars as pl
import yaml

from appliance.domain.reports import ValidationReport
from appliance.errors import ContractInvalid
from appliance.validate._frames import Frame
from appliance.validate.profile import (
    ContractProfile,
    parse_profile,
    profile_metadata,
)

if TYPE_CHECKING:
    import pandera.polars as pa

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

_HEADER = """\
# Contract inferred from the first file of {dataset!r} ({rows} rows): a pandera polars schema.
# Hard (a failing file is rejected): dtype, required and strict columns, nullable: false,
#   every check written under a column (e.g. in_range, isin), and in metadata.profile:
#   max_null_fraction, and min_domain_mass (the share of values that must be in the domain).
# Soft (the file is accepted with a warning): expected_range, a small rise in nulls, a few
#   unseen categories, duplicate rows above max_duplicate_fraction.
# To make a range hard, add to the column: in_range: {{min_value: 0, max_value: 120}}
"""


# --------------------------------------------------------------------------- inference


def infer_contract(df: Frame, *, dataset: str) -> str:
    """Infer a strict pandera polars schema and a profile from ``df``; return the contract YAML."""
    import pandera.polars as pa

    from appliance.validate._inference import observe

    frame, profiles = observe(df)
    columns = {
        name: pa.Column(dtype, nullable=True, required=True) for name, dtype in df.schema.items()
    }
    schema = pa.DataFrameSchema(
        columns,
        strict=True,
        coerce=False,
        name=dataset,
        description=f"inferred from the first file of dataset {dataset!r} ({df.height} rows)",
    )
    document = yaml.safe_load(schema.to_yaml() or "")
    for name, spec in document["columns"].items():
        spec["metadata"] = profile_metadata(profiles[name])
    document["metadata"] = profile_metadata(frame)
    text = _HEADER.format(dataset=dataset, rows=df.height) + yaml.safe_dump(
        document, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100
    )
    if load_contract(text) != schema or _profile(text) != ContractProfile(frame, profiles):
        raise ContractInvalid(
            f"the contract inferred for {dataset!r} does not round-trip through pandera YAML",
            detail={"dataset": dataset, "yaml": text},
        )
    return text


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
        schema = deserialize_schema(copy.deepcopy(document))
    except Exception as exc:  # pandera raises TypeError/ValueError/SchemaDefinitionError/...
        failing = _failing_column(document)
        column, reason = failing if failing else (None, _first_line(exc))
        where = f"column {column!r}: " if column is not None else ""
        raise ContractInvalid(
            f"the contract is not a valid pandera schema: {where}{reason}",
            detail={"column": column, "error": f"{type(exc).__name__}: {exc}"},
        ) from exc
    _check_profile_types(schema, _profile(yaml_text))
    return schema


def load_profile(yaml_text: str) -> ContractProfile:
    """The contract's profile (empty for a contract without ``metadata.profile``)."""
    load_contract(yaml_text)
    return _profile(yaml_text)


def _check_profile_types(schema: pa.DataFrameSchema, profile: ContractProfile) -> None:
    for name, p in profile.columns.items():
        dtype = getattr(schema.columns[name].dtype, "type", None)
        if p.domain is not None and not (
            dtype == pl.String or dtype == pl.Categorical or isinstance(dtype, pl.Enum)
        ):
            raise ContractInvalid(
                f"column {name!r}: a profile 'domain' is for String columns; "
                f"use an isin check for {dtype}", detail={"column": name},
            )
        numeric = bool(getattr(dtype, "is_numeric", lambda: False)())
        if (p.expected_range is not None or p.observed_range is not None) and not numeric:
            raise ContractInvalid(
                f"column {name!r}: a profile range is for numeric columns, not {dtype}",
                detail={"column": name},
            )


@functools.lru_cache(maxsize=32)
def _profile(yaml_text: str) -> ContractProfile:
    return parse_profile(_parse_yaml(yaml_text))


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
    df: Frame, contract_yaml: str, *, contract_version: int | None = None
) -> ValidationReport:
    """Validate ``df`` against the contract; never raises on bad data (see ``_checking``).

    Hard failures reject (``passed`` is false); soft ones are ``warnings``.
    """
    from appliance.validate._checking import check_frame

    schema = load_contract(contract_yaml)
    outcome = check_frame(
        df, schema, reload=lambda: load_contract(contract_yaml), profile=_profile(contract_yaml),
        where=f"contract v{contract_version}" if contract_version is not None else "the contract",
    )
    return ValidationReport(
        passed=not outcome.failures, contract_version=contract_version, rows=df.height,
        failures=outcome.failures, warnings=outcome.warnings,
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
