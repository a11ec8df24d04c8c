"""What an erasure would touch: found and counted without changing anything.

The dry run answers from a plan; the erasure itself applies one. A plan holds
the typed values (it lives in memory for the length of one call and is never
stored or logged).
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from appliance.domain.names import check_dataset_name
from appliance.domain.privacy import Condition
from appliance.errors import InvalidInput, NotFound
from appliance.objects import LocalObjectStore, ObjectStore
from appliance.privacy import files
from appliance.store import datasets as dq
from appliance.store import erasures as eq
from appliance.store.db import Store

# Folders under the home whose Parquet files the sweep leaves alone: dataset versions
# (rewritten as versions), backups (documented: they keep what they were given), and
# files in flight (an inbox claim or a staging file becomes a version or is discarded).
_NOT_SWEPT = ("datasets", "backups", "claimed", "staging", "inbox")


@dataclass(frozen=True)
class VersionHit:
    dataset: str
    dataset_id: uuid.UUID
    version_id: uuid.UUID
    number: int
    path: str  # relative to the home
    sha256: str  # of the ingested source file, as is its size
    size_bytes: int
    source_file: str
    claim_id: str
    status: str
    contract_version: int | None
    rows: int
    matches: int
    match: list[tuple[str, Any]]  # (column, value typed as this file's column)


@dataclass(frozen=True)
class FileHit:
    path: str  # relative to the home
    matches: int
    match: list[tuple[str, Any]]


@dataclass(frozen=True)
class ArtifactHit:
    sha256: str
    path: str  # relative to the home
    matches: int
    match: list[tuple[str, Any]]


@dataclass
class Plan:
    columns: list[str]
    versions: list[VersionHit] = field(default_factory=list)
    files: list[FileHit] = field(default_factory=list)
    artifacts: list[ArtifactHit] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)  # archived/quarantined source files
    inputs: eq.InputMatch = field(default_factory=list)
    predictions: int = 0
    labels: int = 0
    models: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)


def make_plan(store: Store, home: Path, where: list[Condition], dataset: str | None,
              objects: ObjectStore | None = None) -> Plan:
    """``objects``: where version snapshots and artifacts live (default: the home; in
    scale-out the bucket, read through this host's cache)."""
    plan = Plan(columns=[c.column for c in where])
    objects = objects if objects is not None else LocalObjectStore(home)
    if dataset is not None:
        check_dataset_name(dataset)
    with store.read() as s:
        targets = dq.list_datasets(s)
        if dataset is not None:
            targets = [d for d in targets if d.name == dataset]
            if not targets:
                raise NotFound(f"dataset {dataset!r} does not exist")
        candidates = [(d, v) for d in targets for v in sorted(dq.list_versions(s, d.id),
                                                               key=lambda v: v.number)
                      # an erased version points at the file of the version that replaced it
                      if v.status != "erased"]
    seen: dict[str, str] = {}  # column -> a dtype it has somewhere in scope
    typed_once: list[tuple[str, Any]] | None = None
    mistyped: InvalidInput | None = None  # raised only when no version takes the value
    with files.reader() as con:
        for d, v in candidates:
            path = object_file(objects, v.parquet_path)
            if path is None:
                continue
            sch = files.schema(path, con)
            for column in plan.columns:
                if column in sch:
                    seen.setdefault(column, sch[column])
            if not all(c in sch for c in plan.columns):
                continue
            try:
                match = [(c.column, files.typed(c, sch[c.column])) for c in where]
            except InvalidInput as exc:
                mistyped = mistyped or exc
                continue
            typed_once = typed_once or match
            rows, matches = files.count(path, match, con)
            if matches:
                plan.versions.append(VersionHit(
                    dataset=d.name, dataset_id=d.id, version_id=v.id, number=v.number,
                    path=v.parquet_path, sha256=v.sha256, size_bytes=v.size_bytes,
                    source_file=v.source_file, claim_id=v.claim_id, status=v.status,
                    contract_version=v.contract_version, rows=rows, matches=matches,
                    match=match))
    if typed_once is None and mistyped is not None:
        raise mistyped
    if typed_once is None:
        missing = [c for c in plan.columns if c not in seen]
        names = ", ".join(repr(c) for c in missing or plan.columns)
        plural = "s" if len(missing) != 1 else ""
        if not missing:
            message = f"no dataset version has all of the columns {names} together"
        elif dataset:
            message = f"dataset {dataset!r} has no column{plural} {names}"
        else:
            message = f"no dataset has a column{plural} {names}" if len(missing) == 1 else \
                f"no dataset has the columns {names}"
        raise InvalidInput(message, detail={"field": "where", "missing": missing})
    plan.inputs = [files.input_match(column, value) for column, value in typed_once]
    with store.analytics() as s:  # the log's tables, or its parts (scale-out)
        plan.predictions, plan.labels = eq.count_matching_predictions(s, plan.inputs)
    with store.read() as s:
        plan.models = sorted({f"{name}@{n}" for h in plan.versions
                              for name, n in eq.models_trained_on(s, h.dataset, h.number)})
    plan.sources = _source_files(home, plan.versions)
    with store.read() as s:
        shas = eq.parquet_artifacts(s)
    with files.reader() as con:
        plan.files = _sweep(home, where, set(plan.sources), con)
        plan.artifacts = _artifacts(objects, where, shas, con)
    backups = home / "backups"
    plan.backups = sorted(p.name for p in backups.iterdir() if p.is_dir()) \
        if backups.is_dir() else []
    return plan


def _source_files(home: Path, hits: list[VersionHit]) -> list[str]:
    """The archived (or quarantined) source file of each hit version: a file of the same
    size in the dataset's folder, proved by its sha256 (a version's sha256 is its source's)."""
    out: list[str] = []
    for h in hits:
        for folder in ("archive", "quarantine"):
            base = home / folder / h.dataset
            if not base.is_dir():
                continue
            for p in sorted(base.iterdir()):
                if (p.is_file() and not p.is_symlink() and p.stat().st_size == h.size_bytes
                        and files.sha256_of(p) == h.sha256):
                    out.append(os.path.relpath(p, home))
    return sorted(set(out))


def object_file(objects: ObjectStore, key: str) -> Path | None:
    """A local file holding the object ``key`` (the home's file, or this host's cached copy
    of the bucket's); None when there is no such object."""
    try:
        path = objects.local_path(Path(key).as_posix())
    except NotFound:
        return None
    return path if path.is_file() else None


def _artifacts(objects: ObjectStore, where: list[Condition], shas: list[str],
               con: Any) -> list[ArtifactHit]:
    """Run artifacts named ``*.parquet`` (content-addressed under ``artifacts/``) holding
    matching rows."""
    out: list[ArtifactHit] = []
    for sha in shas:
        rel = os.path.join("artifacts", sha[:2], sha[2:4], sha)
        path = object_file(objects, rel)
        hit = _matches(path, where, con) if path is not None else None
        if hit is not None:
            out.append(ArtifactHit(sha256=sha, path=rel, matches=hit[0], match=hit[1]))
    return out


def _matches(path: Path, where: list[Condition],
             con: Any) -> tuple[int, list[tuple[str, Any]]] | None:
    """(matching rows, typed match) of a Parquet file that holds any; None otherwise (or when
    it is not a readable Parquet file, or the values cannot be of its columns' types)."""
    import duckdb

    if not path.is_file() or path.is_symlink():
        return None
    try:
        sch = files.schema(path, con)
        if not all(c.column in sch for c in where):
            return None
        match = [(c.column, files.typed(c, sch[c.column])) for c in where]
        _, matches = files.count(path, match, con)
    except (InvalidInput, duckdb.Error):
        return None
    return (matches, match) if matches else None


def _sweep(home: Path, where: list[Condition], skip: set[str], con: Any) -> list[FileHit]:
    """Every other Parquet file under the home (a training holdout, an archived Parquet
    source) that holds matching rows."""
    out: list[FileHit] = []
    for path in sorted(home.rglob("*.parquet")):
        rel = os.path.relpath(path, home)
        if rel.split(os.sep, 1)[0] in _NOT_SWEPT or rel in skip:
            continue
        hit = _matches(path, where, con)
        if hit is not None:
            out.append(FileHit(path=rel, matches=hit[0], match=hit[1]))
    return out
