"""Scale-out analytics (issue 13 §2): the prediction log and labels as Parquet parts.

On the embedded store the prediction log and labels are the ``predictions`` and
``labels`` tables of the DuckDB file. With metadata on PostgreSQL they are not
written there: each host appends its rows to a local *spool* (an Arrow IPC
stream per table, flushed to the OS after every batch, so a ``kill -9`` of the
process loses only what its in-memory queue held) and *rolls* the spool into
write-once Parquet parts in the object store every ``roll_seconds`` or
``roll_rows``::

    logs/predictions/day=2026-12-03/<host>-<uuid>.parquet
    logs/labels/day=2026-12-03/<host>-<uuid>.parquet

A part holds the rows of one UTC day (of ``created_at`` / ``received_at``) and
the table's columns. A spool left by a killed process is rolled by the next
one that starts on the same home (``recover``); its key comes from the spool's
name, so rolling it twice stores it once. Reading, compaction and rewrites are
in :mod:`appliance.store.partsread`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from appliance.objects.base import ObjectStore

log = logging.getLogger(__name__)

PREFIX = "logs"
# table -> the timestamp column that names a row's day
TABLES = {"predictions": "created_at", "labels": "received_at"}


def schema(table: str) -> pa.Schema:
    """The columns of a part: the table's, in the table's order."""
    import pyarrow as pa

    ts = pa.timestamp("us", tz="UTC")
    if table == "predictions":
        return pa.schema([("request_id", pa.string()), ("model", pa.string()),
                          ("version", pa.int32()), ("inputs", pa.string()),
                          ("prediction", pa.string()), ("probabilities", pa.string()),
                          ("latency_ms", pa.float64()), ("created_at", ts),
                          ("role", pa.string()), ("outlier", pa.bool_()),
                          ("outlier_score", pa.float64())])
    if table == "labels":
        return pa.schema([("request_id", pa.string()), ("model", pa.string()),
                          ("label", pa.string()), ("source", pa.string()),
                          ("received_at", ts)])
    raise ValueError(f"no parts table {table!r}")


def host_id() -> str:
    """This host's name as a key segment (letters, digits, '-', '_')."""
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:60].strip("-") or "host"


def part_key(table: str, day: str, name: str) -> str:
    return f"{PREFIX}/{table}/day={day}/{name}.parquet"


@dataclass
class _Spool:
    """The rows of a table not yet rolled: a locked IPC stream on disk, mirrored in memory."""

    path: Path
    fh: Any
    writer: Any
    batches: list[Any] = field(default_factory=list)
    rows: int = 0
    opened: float = field(default_factory=time.monotonic)


class PartsLog:
    """A host's writer of prediction-log and label parts (thread-safe)."""

    def __init__(self, objects: ObjectStore, spool_dir: Path, *, host: str | None = None,
                 roll_rows: int = 100_000, roll_seconds: float = 60.0) -> None:
        self.objects = objects
        self.spool_dir = Path(spool_dir)
        self.host = host or host_id()
        self.roll_rows = roll_rows
        self.roll_seconds = roll_seconds
        self._spools: dict[str, _Spool] = {}
        # rolled spools whose upload failed (the object store down): retried by tick()
        self._stalled: dict[Path, tuple[str, pa.Table]] = {}
        self._retry_at = 0.0
        self._lock = threading.RLock()
        self.parts_written = 0

    # -- writing -------------------------------------------------------------------

    def add(self, table: str, batch: pa.Table) -> None:
        """Append ``batch`` (the table's columns) to the spool; roll when it is due."""
        if batch.num_rows == 0:
            return
        batch = batch.select(schema(table).names).cast(schema(table))
        with self._lock:
            spool = self._spools.get(table) or self._open(table)
            spool.writer.write_table(batch)
            spool.fh.flush()  # in the OS's hands: a kill -9 of this process keeps it
            spool.batches.append(batch)
            spool.rows += batch.num_rows
            if spool.rows >= self.roll_rows:
                try:
                    self._roll(table)
                except Exception:  # the rows are kept (stalled) and retried by tick()
                    log.exception("rolling a %s part failed; retried in a few seconds", table)

    def _open(self, table: str) -> _Spool:
        import pyarrow as pa

        folder = self.spool_dir / table
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.host}-{uuid.uuid4().hex}.arrows"
        fh = path.open("xb")
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours while we write it
        spool = _Spool(path, fh, pa.ipc.new_stream(fh, schema(table)))
        self._spools[table] = spool
        return spool

    def tick(self) -> int:
        """Roll every spool older than ``roll_seconds``, and retry failed uploads every
        few seconds (the log's writer calls this)."""
        now = time.monotonic()
        with self._lock:
            n = 0
            if self._stalled and now >= self._retry_at:
                self._retry_at = now + 5.0
                n += self._retry()
            due = [t for t, s in self._spools.items() if now - s.opened >= self.roll_seconds]
            return n + sum(self._roll(t) for t in due)

    def roll(self) -> int:
        """Roll every spool now (a clean stop, a test, before a rewrite); parts written.
        Raises if the object store refuses a part (kept, retried: nothing is dropped)."""
        with self._lock:
            n = self._retry()
            return n + sum(self._roll(t) for t in list(self._spools))

    close = roll

    def _roll(self, table: str) -> int:
        spool = self._spools.pop(table)
        spool.writer.close()
        spool.fh.flush()
        rows = _concat(table, spool.batches)
        try:
            n = self.upload(table, spool.path, rows)
        except BaseException:
            spool.fh.close()
            self._stalled[spool.path] = (table, rows)  # still read as pending; retried
            raise
        spool.path.unlink(missing_ok=True)
        spool.fh.close()
        return n

    def _retry(self) -> int:
        n = 0
        for path, (table, rows) in list(self._stalled.items()):
            n += self.upload(table, path, rows)
            path.unlink(missing_ok=True)
            del self._stalled[path]
        return n

    def upload(self, table: str, spool: Path, rows: pa.Table) -> int:
        """Store ``rows`` as one part per day, named after ``spool`` (so a second upload of
        the same spool finds its parts there and writes nothing)."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        if rows.num_rows == 0:
            return 0
        days = pc.strftime(rows.column(TABLES[table]), format="%Y-%m-%d")
        written = 0
        for day in sorted(set(days.to_pylist())):
            key = part_key(table, day, spool.stem)
            if self.objects.exists(key):
                continue
            part = rows.filter(pc.equal(days, day))
            fd, name = tempfile.mkstemp(dir=spool.parent, prefix=".part-", suffix=".parquet")
            os.close(fd)
            try:
                pq.write_table(part, name, compression="zstd")
                self.objects.put_file(key, Path(name), move=True)
            finally:
                Path(name).unlink(missing_ok=True)
            written += 1
        self.parts_written += written
        return written

    def recover(self) -> int:
        """Roll the spools a killed process left on this home (skipping any another live
        process holds); the rows read before a torn tail are kept."""
        n = 0
        for table in TABLES:
            folder = self.spool_dir / table
            for path in sorted(folder.glob("*.arrows")) if folder.is_dir() else []:
                with self._lock, path.open("rb") as fh:
                    if path in self._stalled or any(
                            s.path == path for s in self._spools.values()):
                        continue  # this process's own
                    try:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        continue  # a live process's spool
                    rows = _read_spool(table, fh)
                    n += self.upload(table, path, rows)
                    path.unlink(missing_ok=True)
                    log.info("rolled %d %s rows left in %s", rows.num_rows, table, path.name)
        return n

    def pending(self, table: str) -> pa.Table:
        """This host's rows of ``table`` not rolled yet (readers on this host see them)."""
        with self._lock:
            spool = self._spools.get(table)
            stalled = [rows for t, rows in self._stalled.values() if t == table]
            return _concat(table, stalled + (list(spool.batches) if spool else []))

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"pending_rows": sum(s.rows for s in self._spools.values()),
                    "stalled_rows": sum(r.num_rows for _, r in self._stalled.values()),
                    "parts_written": self.parts_written}


def _concat(table: str, batches: list[Any]) -> pa.Table:
    import pyarrow as pa

    return pa.concat_tables(batches) if batches else schema(table).empty_table()


def _read_spool(table: str, fh: Any) -> pa.Table:
    import pyarrow as pa

    batches: list[Any] = []
    try:
        reader = pa.ipc.open_stream(fh)
        while True:
            batches.append(reader.read_next_batch())
    except StopIteration:
        pass
    except (pa.ArrowInvalid, OSError):  # a torn tail (killed mid-write), or an empty file
        pass
    return pa.Table.from_batches(batches, schema(table)) if batches \
        else schema(table).empty_table()
