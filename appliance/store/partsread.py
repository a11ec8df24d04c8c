"""Reading, compacting and rewriting the prediction-log and label parts (scale-out).

A reader lists the parts, fetches them into the host's object cache, hard-links
them into a folder of its own (so a part deleted by a compaction while a query
runs stays readable) and opens an in-memory DuckDB with two views,
``predictions`` and ``labels``, over those files and this host's rows not yet
rolled. The existing queries of ``appliance.store`` run on it unchanged (it is
DuckDB: ``dialect.of`` answers ``Duck``).

A *merged* part (``m-<hash>.parquet``) replaces others: a compaction of a
day's small parts, or a rewrite of one part without erased rows. It is written
before the parts it replaces are deleted, and lists them in its Parquet
metadata (``replaces``), so a reader that sees both reads each row once. A part
that vanishes between the listing and the fetch makes the reader list again
(once). Two merged parts replacing overlapping sets (a deposed leader's
compaction racing the new leader's): the one replacing more wins.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.pool import QueuePool
from sqlmodel import Session

from appliance.errors import NotFound, StoreUnavailable
from appliance.store.parts import PREFIX, TABLES, PartsLog, part_key, schema

_JSON = {"inputs", "prediction", "probabilities", "label"}
MERGED = "m-"


@dataclass(frozen=True)
class Part:
    key: str
    day: str
    path: Path  # a local copy (a link of the cached file)


@dataclass(frozen=True)
class CompactionPass:
    """What one compaction did: parts merged into how many, rows kept."""

    merged_parts: int
    written_parts: int
    rows: int


def _literal(path: Path | str) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _day(key: str) -> str:
    return key.split("/")[2].removeprefix("day=")


def _merged_name(sources: list[str], salt: str = "") -> str:
    digest = hashlib.sha256(json.dumps([sorted(sources), salt]).encode()).hexdigest()
    return f"{MERGED}{digest[:40]}"


def _replaces(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return list(json.loads(meta.get(b"replaces", b"[]")))


class PartsReader:
    def __init__(self, parts: PartsLog) -> None:
        self.parts = parts
        self.objects = parts.objects
        # each pooled connection is an in-memory database of its own; a session (re)makes
        # its views on the one it takes (opening a DuckDB costs ~50 ms: kept, not remade)
        self.engine = create_engine(
            "duckdb:///:memory:", poolclass=QueuePool, pool_size=4, max_overflow=8,
            connect_args={"config": {"autoinstall_known_extensions": False}})

    # -- listing ---------------------------------------------------------------------

    def _list(self, table: str, links: Path) -> list[Part]:
        """The live parts of ``table`` (replaced ones left out), fetched and linked."""
        for attempt in (1, 2):
            try:
                return self._list_once(table, links)
            except NotFound:
                if attempt == 2:
                    raise StoreUnavailable(f"the {table} parts kept changing while being read "
                                           "(a compaction?): try again") from None
        raise AssertionError("unreachable")

    def _list_once(self, table: str, links: Path) -> list[Part]:
        keys = [o.key for o in self.objects.list(f"{PREFIX}/{table}")
                if o.key.endswith(".parquet")]
        local = {k: self.objects.local_path(k) for k in keys
                 if k.rsplit("/", 1)[-1].startswith(MERGED)}
        replaced: set[str] = set()
        sets = {k: set(_replaces(p)) for k, p in local.items()}
        for k, covers in sets.items():
            replaced |= covers
            # an overlapping merge that replaces fewer parts (a racing deposed leader's)
            replaced |= {o for o, other in sets.items()
                         if o != k and other & covers and (len(other), o) < (len(covers), k)}
        out = []
        for k in keys:
            if k in replaced:
                continue
            path = local.get(k) or self.objects.local_path(k)
            out.append(Part(k, _day(k), _link(path, links)))
        return out

    # -- sessions --------------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A read-only DuckDB session with ``predictions`` and ``labels`` views."""
        with self._open() as (conn, _parts, _links), Session(bind=conn) as s:
            yield s

    @contextlib.contextmanager
    def _open(self) -> Iterator[tuple[Any, dict[str, list[Part]], Path]]:
        links = Path(tempfile.mkdtemp(prefix=".read-", dir=self._links_root()))
        try:
            found = {t: self._list(t, links) for t in TABLES}
            with self.engine.connect() as conn:
                raw: Any = conn.connection.driver_connection
                for table, parts in found.items():
                    raw.register(f"pending_{table}", self.parts.pending(table))
                    raw.execute(self._view(table, [p.path for p in parts]))
                try:
                    yield conn, found, links
                finally:
                    for table in TABLES:
                        raw.execute(f"DROP VIEW IF EXISTS {table}")
                        raw.unregister(f"pending_{table}")
        finally:
            shutil.rmtree(links, ignore_errors=True)

    def _links_root(self) -> Path:
        root = self.parts.spool_dir / ".read"
        root.mkdir(parents=True, exist_ok=True)
        return root

    @staticmethod
    def _view(table: str, files: list[Path]) -> str:
        cols = [f"CAST({c} AS JSON) AS {c}" if c in _JSON else c for c in schema(table).names]
        names = ", ".join(schema(table).names)
        sources = [f"SELECT {names} FROM pending_{table}"]
        if files:
            sources.insert(0, f"SELECT {names} FROM read_parquet("
                              f"[{', '.join(map(_literal, files))}])")
        return (f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT {', '.join(cols)} FROM ("
                + " UNION ALL ".join(sources) + ")")

    # -- compaction ------------------------------------------------------------------

    def compact(self, *, today: dt.date | None = None, min_today: int = 64) -> CompactionPass:
        """Merge the small parts of each closed day into one part (and today's, once it
        has ``min_today`` parts); write the merged part before deleting its sources."""
        today = today or dt.datetime.now(dt.UTC).date()
        merged = written = rows = 0
        links = Path(tempfile.mkdtemp(prefix=".compact-", dir=self._links_root()))
        try:
            for table in TABLES:
                by_day: dict[str, list[Part]] = {}
                for p in self._list(table, links):
                    by_day.setdefault(p.day, []).append(p)
                for day, parts in sorted(by_day.items()):
                    due = 2 if day < today.isoformat() else min_today
                    if len(parts) < due:
                        continue
                    rows += self._merge(table, day, parts, links)
                    merged, written = merged + len(parts), written + 1
            self._drop_replaced(links)
        finally:
            shutil.rmtree(links, ignore_errors=True)
        return CompactionPass(merged_parts=merged, written_parts=written, rows=rows)

    def _merge(self, table: str, day: str, parts: list[Part], links: Path,
               where: str | None = None, params: dict[str, Any] | None = None,
               conn: Any = None, salt: str = "") -> int:
        """Write the rows of ``parts`` (those ``where`` does not hold for) as one merged
        part, then delete ``parts``; the rows written."""
        sources = sorted(p.key for p in parts)
        files = ", ".join(_literal(p.path) for p in parts)
        select = f"SELECT * FROM read_parquet([{files}]) AS t"
        if where:
            select += f" WHERE ({where}) IS NOT TRUE"
        out = links / f"{_merged_name(sources, salt)}.parquet"
        with contextlib.ExitStack() as stack:
            if conn is None:
                conn = stack.enter_context(self.engine.connect())
            conn.execute(text(f"CREATE OR REPLACE TEMP TABLE merged_rows AS {select} "
                              f"ORDER BY {TABLES[table]}"), params or {})
            n = int(conn.execute(text("SELECT count(*) FROM merged_rows")).scalar_one())
            if n:
                meta = json.dumps(sources).replace("'", "''")
                conn.execute(text(f"COPY merged_rows TO {_literal(out)} (FORMAT PARQUET, "
                                  f"COMPRESSION zstd, KV_METADATA {{replaces: '{meta}'}})"))
            conn.execute(text("DROP TABLE merged_rows"))
        if n:
            self.objects.put_file(part_key(table, day, out.stem), out, move=True)
        for key in sources:
            self.objects.delete(key)
        return n

    def _drop_replaced(self, links: Path) -> None:
        """Delete parts a merged part replaces (left by a merge that stopped between its
        write and its deletes)."""
        for table in TABLES:
            live = {p.key for p in self._list(table, links)}
            for o in self.objects.list(f"{PREFIX}/{table}"):
                if o.key.endswith(".parquet") and o.key not in live:
                    self.objects.delete(o.key)

    # -- rewrites (erasure, retention) ------------------------------------------------

    def rewrite(self, table: str, where: str, params: dict[str, Any],
                salt: str) -> int:
        """Rewrite every part of ``table`` holding rows ``where`` matches (a condition on
        the part's columns, which may refer to the ``predictions`` and ``labels`` views)
        without them; the rows removed. This host's pending rows are rolled first."""
        self.parts.roll()
        removed = 0
        with self._open() as (conn, found, links):
            for p in found[table]:
                n = int(conn.execute(text(
                    f"SELECT count(*) FROM read_parquet({_literal(p.path)}) AS t "
                    f"WHERE {where}"), params).scalar_one())
                if n:
                    self._merge(table, p.day, [p], links, where, params, conn, salt)
                    removed += n
        return removed


def _link(path: Path, links: Path) -> Path:
    """A hard link of ``path`` in ``links`` (the file itself where links do not work)."""
    dst = links / hashlib.sha256(str(path).encode()).hexdigest()
    try:
        os.link(path, dst)
    except FileExistsError:
        pass
    except OSError:
        return path
    return dst

