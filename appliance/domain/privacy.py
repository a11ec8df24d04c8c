"""Erasure by key and retention windows, as typed results. Pure.

An erasure names rows by ``column = value`` conditions (ANDed). What is kept of
it anywhere (the ``erasures`` table, the audit event, these results) is the
column names and counts, never the values: the values are what was erased.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.errors import InvalidInput

MAX_CONDITIONS = 8
MAX_VALUE_CHARS = 1000
# a column name as data files name them: printable, bounded, no quote or backslash (it is
# also a JSON path into the prediction log's inputs)
_COLUMN = re.compile(r'[^\x00-\x1f\x7f"\\]{1,200}')


class Condition(BaseModel):
    """``column = value``; the value is text as typed and is converted to the column's
    type (integer, float, boolean, date, timestamp, text) before it is compared."""

    model_config = ConfigDict(frozen=True)

    column: str = Field(min_length=1, max_length=200)
    value: str | int | float | bool = Field(
        description="compared after conversion to the column's type; never stored")


def parse_condition(text: str) -> Condition:
    """``customer_id=123`` as a :class:`Condition` (the first ``=`` splits)."""
    column, sep, value = text.partition("=")
    if not sep or not column.strip():
        raise InvalidInput(f"a condition is COLUMN=VALUE, e.g. customer_id=123 (got {text[:60]!r})",
                           detail={"field": "where"})
    return check_conditions([Condition(column=column.strip(), value=value)])[0]


def check_conditions(where: list[Condition]) -> list[Condition]:
    """At least one and at most MAX_CONDITIONS conditions on distinct, sane column names."""
    if not where:
        raise InvalidInput("name at least one condition COLUMN=VALUE", detail={"field": "where"})
    if len(where) > MAX_CONDITIONS:
        raise InvalidInput(f"at most {MAX_CONDITIONS} conditions", detail={"field": "where"})
    columns = [c.column for c in where]
    if len(set(columns)) != len(columns):
        raise InvalidInput("each column may appear in one condition only",
                           detail={"field": "where"})
    for c in where:
        if not _COLUMN.fullmatch(c.column):
            raise InvalidInput("a column name is 1-200 printable characters, without quotes "
                               "or backslashes",
                               detail={"field": "where"})
        if isinstance(c.value, str) and len(c.value) > MAX_VALUE_CHARS:
            raise InvalidInput(f"a value is at most {MAX_VALUE_CHARS} characters",
                               detail={"field": "where", "column": c.column})
    return where


class ErasureRequest(BaseModel):
    """The body of ``POST /api/v1/erasures``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    where: list[Condition] = Field(description="ANDed conditions, at least one")
    dataset: str | None = Field(default=None,
                                description="only this dataset's versions (predictions and "
                                            "labels are searched in any case)")
    dry_run: bool = Field(default=False, description="count what would be erased; change nothing")


class ErasedVersion(BaseModel):
    """One dataset version that held matching rows, and the version written without them."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    version: int
    rows: int = Field(description="the version's rows before the erasure")
    rows_removed: int
    new_version: int | None = Field(description="None in a dry run")
    new_sha256: str | None = None


class ErasedFile(BaseModel):
    """A file under the home, outside the dataset versions, that held matching rows."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="relative to the home")
    rows_removed: int
    action: Literal["rewritten", "deleted", "would rewrite", "would delete"]


class ErasureReport(BaseModel):
    """What an erasure rewrote and removed (or, in a dry run, would have)."""

    model_config = ConfigDict(frozen=True)

    id: str | None = Field(description="the erasure id; None in a dry run")
    dry_run: bool
    columns: list[str] = Field(description="the columns matched on (values are never kept)")
    dataset: str | None
    versions: list[ErasedVersion]
    files: list[ErasedFile] = Field(
        description="archived source files, holdouts and other Parquet files under the home")
    predictions_removed: int
    labels_removed: int
    models_flagged: list[str] = Field(
        description="model versions trained on a rewritten version, as name@n")
    backups_holding_data: list[str] = Field(
        description="backups in the home taken before the erasure: they still hold the rows")
    seconds: float
    at: str
    next_steps: list[str] = Field(
        default_factory=list,
        description="what the admin must still do, e.g. `appliance compact` to purge the "
                    "store file's freed pages (empty in a dry run)")

    @property
    def rows_removed(self) -> int:
        return sum(v.rows_removed for v in self.versions)


class ErasureEntry(BaseModel):
    """One past erasure, as listed by ``GET /api/v1/erasures``."""

    model_config = ConfigDict(frozen=True)

    id: str
    actor: str
    columns: list[str]
    dataset: str | None
    status: Literal["cleaning", "done"]
    versions: int
    rows_removed: int
    predictions_removed: int
    labels_removed: int
    at: str


class ErasureNote(BaseModel):
    """On a model card: the erasure that rewrote the version the model was trained on."""

    model_config = ConfigDict(frozen=True)

    erasure_id: str
    at: str
    dataset: str
    version: int
    new_version: int
    rows_removed: int

    def sentence(self) -> str:
        return (f"trained on data since erased: erasure {self.erasure_id}, {self.at[:10]} "
                f"({self.rows_removed} rows of {self.dataset} v{self.version}; "
                f"v{self.new_version} is the version without them)")


class RetentionPass(BaseModel):
    """One pass of the retention housekeeping: what it deleted and the cut-offs it used
    (None: that window is off, kept forever)."""

    model_config = ConfigDict(frozen=True)

    predictions_deleted: int
    labels_deleted: int
    job_runs_deleted: int
    predictions_before: str | None
    labels_before: str | None
    job_runs_before: str | None
    checkpointed: bool
    at: str
