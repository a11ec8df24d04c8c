"""What the datasets service answers: datasets, their versions and contracts.

Pure result types (frozen pydantic models): the store's rows are separate
types, and the service converts a row to one of these in one place. Times are
ISO 8601 strings, exactly as the REST API has always written them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# a version's status (domain.ingest.VersionStatus's values), spelled out so the API's
# schema lists them without a second enum named VersionStatus (the registry has one)
VersionState = Literal["accepted", "rejected", "erased"]


class Dataset(BaseModel):
    """A dataset: its versions counted, the newest and the current (newest accepted) one."""

    model_config = ConfigDict(frozen=True)

    name: str
    created_at: str
    versions: int = Field(description="How many versions were recorded, accepted or not.")
    latest_version: int | None = Field(description="The newest version's number.")
    current_version: int | None = Field(
        description="The newest accepted version's number: what training uses.")
    contract_version: int | None = Field(description="The current contract's version.")
    rows: int | None = Field(description="Rows of the current version.")


class Column(BaseModel):
    """One column of a version's Parquet file."""

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: str


class Version(BaseModel):
    """One immutable version of a dataset: a checked file, stored as Parquet."""

    model_config = ConfigDict(frozen=True)

    id: str
    dataset: str
    number: int
    status: VersionState
    sha256: str
    size_bytes: int
    rows: int
    columns: list[Column]
    source_file: str
    contract_version: int | None
    created_at: str
    report_headline: str | None = Field(
        description="The validation report in one line (`passed with 2 warnings: ...`).")
    warnings: int = Field(description="How many soft-check warnings the report holds.")

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


class VersionDetail(Version):
    """A version with its validation report and its column summary."""

    report: dict[str, Any] | None = Field(
        description="The validation report: passed, contract_version, rows, failures, warnings.")
    summary: list[dict[str, Any]] = Field(
        description="Per column: dtype, count, nulls, n_unique, min, max, mean, std, histogram, "
                    "top_values. Empty while summary_status is pending.")
    summary_status: Literal["pending", "ready"]
    lineage_node: str

    def column_summary(self, name: str) -> dict[str, Any] | None:
        """The summary of column ``name``; None while pending or for an unknown column."""
        return next((c for c in self.summary if c.get("name") == name), None)


class Contract(BaseModel):
    """One version of a dataset's contract (pandera YAML)."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    version: int
    yaml: str
    created_at: str
    created_by: str
    inferred: bool = Field(description="Inferred from the dataset's first file, not written.")


class DatasetCounts(BaseModel):
    """The console's home page numbers."""

    model_config = ConfigDict(frozen=True)

    datasets: int
    versions: int
    accepted: int
    rejected: int
    quarantined: int = Field(description="Files quarantined at ingest (no version made).")
    users: int


class VersionRows(BaseModel):
    """A few rows of a version, read without holding the version (docs/operations/memory.md)."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    number: int
    how: Literal["head", "sample"] = Field(
        description="head: the first rows in file order; sample: rows chosen by a seeded hash "
                    "of their position over the whole version, in file order.")
    seed: int | None = Field(description="The sample's seed (null for head).")
    total_rows: int = Field(description="Rows in the version.")
    columns: list[str]
    rows: list[dict[str, Any]] = Field(
        description="JSON-safe values: NaN/inf null, temporal values ISO strings, text cut to "
                    "200 characters.")
