"""Read models and contract edits for datasets (ingestion itself is ``appliance.ingest``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from appliance.audit import Auditor
from appliance.domain.datasets import (
    Column,
    Contract,
    Dataset,
    DatasetCounts,
    Version,
    VersionDetail,
    VersionRows,
    VersionState,
)
from appliance.domain.ingest import VersionStatus
from appliance.domain.lineage import dataset_node, version_node
from appliance.domain.names import check_dataset_name
from appliance.domain.principal import Principal
from appliance.domain.reports import ValidationReport
from appliance.errors import Conflict, InvalidInput, NotFound, TooLarge
from appliance.objects import LocalObjectStore, ObjectStore
from appliance.store import datasets as dq
from appliance.store import ingests as iq
from appliance.store import users as uq
from appliance.store.db import Store
from appliance.store.tables import ContractRow, DatasetRow, DatasetVersionRow

_MAX_CONTRACT_BYTES = 1_000_000
# revalidation holds the version about this many times over as 8-byte values: the frame
# read, the checks' masks and pandera's copies (docs/operations/memory.md)
_REVALIDATE_COPIES = 3
_NEEDS_WHOLE_TABLE = "needs_whole_table"   # appliance.validate._checking's refusal


def revalidate_estimate_mb(rows: int, columns: int) -> float:
    """The memory revalidating a version of ``rows x columns`` is estimated to take, in MB."""
    return rows * max(1, columns) * 8 * _REVALIDATE_COPIES / 2**20


class DatasetService:
    def __init__(self, store: Store, auditor: Auditor, *, home: Path,
                 read_memory_mb: int | None = None, objects: ObjectStore | None = None) -> None:
        self.store = store
        self.auditor = auditor
        self.home = home
        # Where the snapshots are (the home by default); read through the host's cache.
        self.objects = objects if objects is not None else LocalObjectStore(home)
        self.read_memory_mb = read_memory_mb

    # -- reads ----------------------------------------------------------------

    def list_datasets(self) -> list[Dataset]:
        with self.store.read() as s:
            stats = dq.version_stats(s)
            return [dataset_of(ds, stats.get(ds.id), dq.current_contract(s, ds.id))
                    for ds in dq.list_datasets(s)]

    def show(self, name: str) -> Dataset:
        with self.store.read() as s:
            ds = self._dataset(s, name)
            stats = dq.version_stats(s, ds.id).get(ds.id)
            return dataset_of(ds, stats, dq.current_contract(s, ds.id))

    def current_version(self, name: str) -> int | None:
        """The newest accepted version's number (None when there is none); NotFound for an
        unknown dataset."""
        return self.show(name).current_version

    def versions(self, name: str) -> list[Version]:
        with self.store.read() as s:
            ds = self._dataset(s, name)
            return [version_of(name, v) for v in dq.list_versions(s, ds.id)]

    def version(self, name: str, number: int) -> VersionDetail:
        with self.store.read() as s:
            ds = self._dataset(s, name)
            v = self._version(s, ds, number)
            return version_detail(name, v)

    def parquet_path(self, name: str, number: int) -> Path:
        """Where a version's immutable Parquet file lives (server-side use only)."""
        with self.store.read() as s:
            v = self._version(s, self._dataset(s, name), number)
        return self.objects.local_path(Path(v.parquet_path).as_posix())

    def parquet_key(self, name: str, number: int) -> str:
        """The object-store key of a version's Parquet file (a Dask worker reads it there)."""
        with self.store.read() as s:
            v = self._version(s, self._dataset(s, name), number)
        return Path(v.parquet_path).as_posix()

    def rows(self, name: str, number: int, *, limit: int = 20, sample: bool = False,
             seed: int = 0) -> VersionRows:
        """``limit`` rows of a version: its first rows, or a seeded sample over all of it;
        read a batch at a time, never the whole version (:mod:`appliance.datasets.preview`)."""
        from appliance.datasets import preview

        if not 1 <= limit <= preview.MAX_ROWS:
            raise InvalidInput(f"limit is between 1 and {preview.MAX_ROWS}",
                               detail={"field": "limit"})
        with self.store.read() as s:
            v = self._version(s, self._dataset(s, name), number)
        try:
            path = self.objects.local_path(Path(v.parquet_path).as_posix())
        except NotFound:
            raise NotFound(f"the Parquet file of version {number} of {name!r} is missing"
                           ) from None
        got = (preview.sample(path, limit, seed) if sample else preview.head(path, limit))
        return VersionRows(dataset=name, number=number, how="sample" if sample else "head",
                           seed=seed if sample else None, total_rows=v.rows,
                           columns=[c["name"] for c in v.columns or []], rows=got)

    def sample_frame(self, name: str, number: int, *, limit: int, seed: int,
                     columns: list[str]) -> Any:
        """``columns`` of a version as a ``pl.DataFrame``: whole when it has at most
        ``limit`` rows, else :func:`appliance.datasets.preview.sample_table`'s seeded
        ``limit`` rows, read a row group at a time (drift's reference)."""
        import polars as pl

        from appliance.datasets import preview

        path = self.parquet_path(name, number)
        if pl.scan_parquet(path, glob=False).select(pl.len()).collect().item() <= limit:
            return pl.read_parquet(path, columns=columns)
        table = preview.sample_table(path, limit, seed, columns)
        return pl.from_arrow(table)

    def contract(self, name: str, version: int | None = None) -> Contract:
        with self.store.read() as s:
            ds = self._dataset(s, name)
            row = (
                dq.get_contract(s, ds.id, version) if version is not None
                else dq.current_contract(s, ds.id)
            )
            if row is None:
                which = f"version {version}" if version is not None else "any version"
                raise NotFound(f"dataset {name!r} has no contract {which}")
            return contract_of(name, row)

    def contracts(self, name: str) -> list[Contract]:
        with self.store.read() as s:
            ds = self._dataset(s, name)
            return [contract_of(name, c) for c in dq.list_contracts(s, ds.id)]

    def counts(self) -> DatasetCounts:
        with self.store.read() as s:
            by_status = dq.count_versions_by_status(s)
            by_outcome = iq.count_by_outcome(s)
            return DatasetCounts(
                datasets=len(dq.list_datasets(s)),
                versions=sum(by_status.values()),
                accepted=by_status.get(VersionStatus.accepted.value, 0),
                rejected=by_status.get(VersionStatus.rejected.value, 0),
                quarantined=by_outcome.get("quarantined", 0),
                users=uq.count_users(s),
            )

    # -- writes ---------------------------------------------------------------

    def set_contract(self, name: str, yaml_text: str, *, by: Principal) -> Contract:
        from appliance.validate.contracts import load_contract

        check_dataset_name(name)
        if not isinstance(yaml_text, str) or len(yaml_text.encode()) > _MAX_CONTRACT_BYTES:
            raise InvalidInput("a contract is YAML text of at most 1 MB")
        load_contract(yaml_text)  # raises ContractInvalid with a readable message
        with self.store.write() as s:
            ds = self._dataset(s, name)
            before = dq.current_contract(s, ds.id)
            row = dq.add_contract(s, ds.id, yaml=yaml_text, inferred=False, created_by=by.actor)
            self.auditor.record(
                s, by, "contract.update", dataset_node(name),
                before={"version": before.version} if before else None,
                after={"version": row.version},
            )
        return contract_of(name, row)

    def revalidate(self, name: str, number: int, *, by: Principal) -> VersionDetail:
        """Check a stored version against the current contract; it may change status.

        A version whose estimate (:func:`revalidate_estimate_mb`) fits ``read_memory_mb``
        is read whole, as before. A bigger one is checked in a stream over its Parquet
        file (:class:`appliance.validate.ParquetTable`: every check an aggregate on
        polars' streaming engine, as the parser checks a streamed file), so its size is
        no limit. Only a contract with checks that pandera alone runs, on the whole
        table, cannot be streamed: such a version is refused (413), not re-judged."""
        import polars as pl

        from appliance.validate import ParquetTable
        from appliance.validate.contracts import validate_frame

        with self.store.read() as s:
            ds = self._dataset(s, name)
            v = self._version(s, ds, number)
            contract = dq.current_contract(s, ds.id)
        if v.status == VersionStatus.erased.value:
            raise Conflict(f"{name} version {number} was erased; its rows are "
                           f"{name} version {(v.report or {}).get('erased_into')}",
                           detail={"erased_into": (v.report or {}).get("erased_into")})
        if contract is None:
            raise NotFound(f"dataset {name!r} has no contract")
        estimate = revalidate_estimate_mb(v.rows or 0, len(v.columns or []))
        path = self.objects.local_path(Path(v.parquet_path).as_posix())
        streamed = self.read_memory_mb is not None and estimate > self.read_memory_mb
        frame = ParquetTable(path) if streamed else pl.read_parquet(path)
        report = validate_frame(frame, contract.yaml, contract_version=contract.version)
        if streamed and any(f.check == _NEEDS_WHOLE_TABLE for f in report.failures):
            raise TooLarge(
                f"version {number} of {name!r} ({v.rows:,} rows x {len(v.columns or [])} "
                f"columns) needs an estimated {estimate:,.0f} MB to revalidate in memory, "
                f"more than APPLIANCE_READ_MEMORY_MB ({self.read_memory_mb:,} MB), and "
                f"contract v{contract.version} has checks that only pandera runs, on the "
                "whole table (frame-level, unique, regex, element-wise or custom checks), "
                "so it cannot be checked in a stream: drop those checks or raise the limit "
                "where the server has that much memory to spare",
                detail={"estimated_mb": round(estimate, 1), "limit_mb": self.read_memory_mb,
                        "rows": v.rows, "columns": len(v.columns or []),
                        "streamed": True})
        status = VersionStatus.accepted if report.passed else VersionStatus.rejected
        with self.store.write() as s:
            row = s.get(DatasetVersionRow, v.id)
            assert row is not None
            before = {"status": row.status, "contract_version": row.contract_version}
            row.status = status.value
            row.report = report.to_dict()
            row.contract_version = contract.version
            s.add(row)
            self.auditor.record(
                s, by, "dataset.version.validate", version_node(name, number),
                before=before, after={"status": status.value, "contract_version": contract.version},
            )
        return version_detail(name, row)

    # -- helpers --------------------------------------------------------------

    def _dataset(self, s: Any, name: str) -> DatasetRow:
        check_dataset_name(name)
        ds = dq.get_dataset(s, name)
        if ds is None:
            raise NotFound(f"dataset {name!r} does not exist")
        return ds

    def _version(self, s: Any, ds: DatasetRow, number: int) -> DatasetVersionRow:
        v = dq.get_version(s, ds.id, number)
        if v is None:
            raise NotFound(f"dataset {ds.name!r} has no version {number}")
        return v


def dataset_of(ds: DatasetRow, stats: dq.VersionStats | None,
               contract: ContractRow | None) -> Dataset:
    stats = stats or dq.VersionStats()
    return Dataset(
        name=ds.name,
        created_at=ds.created_at.isoformat(),
        versions=stats.versions,
        latest_version=stats.latest,
        current_version=stats.current,
        contract_version=contract.version if contract else None,
        rows=stats.rows,
    )


def version_of(dataset: str, v: DatasetVersionRow) -> Version:
    report = v.report or {}
    return Version(
        id=str(v.id),
        dataset=dataset,
        number=v.number,
        status=cast(VersionState, v.status),
        sha256=v.sha256,
        size_bytes=v.size_bytes,
        rows=v.rows,
        columns=[Column(**c) for c in v.columns or []],
        source_file=v.source_file,
        contract_version=v.contract_version,
        created_at=v.created_at.isoformat(),
        report_headline=ValidationReport.from_dict(report).headline() if report else None,
        warnings=len(report.get("warnings") or []),
    )


def version_detail(dataset: str, v: DatasetVersionRow) -> VersionDetail:
    return VersionDetail(
        **dict(version_of(dataset, v)),
        report=v.report,
        summary=v.summary or [],
        summary_status="pending" if v.summary is None else "ready",
        lineage_node=version_node(dataset, v.number),
    )


def contract_of(dataset: str, c: ContractRow) -> Contract:
    return Contract(dataset=dataset, version=c.version, yaml=c.yaml,
                    created_at=c.created_at.isoformat(), created_by=c.created_by,
                    inferred=c.inferred)
