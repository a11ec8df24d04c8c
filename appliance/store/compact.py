"""SQL for compaction: copy the embedded store into a fresh DuckDB file.

DuckDB does not zero the pages that held deleted rows; their bytes stay in the
file until the pages are reused. ``ATTACH`` both files and ``COPY FROM
DATABASE`` writes every table, view, index, constraint and sequence (its next
value included), and the rows that are still there, into a new file: the freed
pages are not copied. ``schema_migrations`` is a table like any other, so the
migration record travels too. The caller swaps the files (``backup.compact``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
Progress = Callable[[str, int, int], None]


@contextmanager
def _attached(src: Path, dst: Path | None = None) -> Iterator[Any]:
    import duckdb

    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
    try:
        con.execute(f"ATTACH {_literal(src)} AS src (READ_ONLY)")
        if dst is not None:
            con.execute(f"ATTACH {_literal(dst)} AS dst")
        yield con
        if dst is not None:
            con.execute("CHECKPOINT dst")
            con.execute("DETACH dst")
        con.execute("DETACH src")
    finally:
        con.close()


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _tables(con: Any, db: str) -> list[str]:
    names = [str(r[0]) for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? AND NOT internal "
        "ORDER BY table_name", [db]).fetchall()]
    for n in names:
        if not _TABLE_NAME.fullmatch(n):  # never expected: our migrations name the tables
            raise InvalidInput(f"unexpected table name {n!r} in the store")
    return names


def _counts(con: Any, db: str, progress: Progress | None = None) -> dict[str, int]:
    names = _tables(con, db)
    out: dict[str, int] = {}
    for i, name in enumerate(names):
        out[name] = int(con.execute(f'SELECT count(*) FROM {db}.main."{name}"').fetchone()[0])
        if progress:
            progress("counting rows", i + 1, len(names))
    return out


def _objects(con: Any, db: str) -> dict[str, list[str]]:
    """Names of the indexes, views and sequences of ``db`` (what must survive the copy)."""
    out: dict[str, list[str]] = {}
    for kind, sql in (
            ("indexes", "SELECT index_name FROM duckdb_indexes() WHERE database_name = ?"),
            ("views", "SELECT view_name FROM duckdb_views() WHERE database_name = ? "
                      "AND NOT internal"),
            ("sequences", "SELECT sequence_name FROM duckdb_sequences() "
                          "WHERE database_name = ?")):
        out[kind] = sorted(str(r[0]) for r in con.execute(sql, [db]).fetchall())
    return out


def table_counts(db_path: Path) -> dict[str, int]:
    """Rows per table of the (closed) store file at ``db_path``, read-only."""
    with _attached(db_path) as con:
        return _counts(con, "src")


def copy_database(src: Path, dst: Path, *, progress: Progress | None = None) -> dict[str, int]:
    """Copy the closed store ``src`` into the new file ``dst``; check and return its row counts.

    Raises InvalidInput (and leaves ``dst`` for the caller to remove) when a
    table's rows, or the set of tables, indexes, views or sequences, differ.
    """
    if dst.exists():
        raise InvalidInput(f"{dst} exists already; compaction writes a new file")
    with _attached(src, dst) as con:
        if progress:
            progress("copying the store", 0, 1)
        con.execute("COPY FROM DATABASE src TO dst")
        if progress:
            progress("copying the store", 1, 1)
        before = _counts(con, "src", progress)
        after = _counts(con, "dst", progress)
        if before != after:
            diff = {t: [before.get(t), after.get(t)] for t in sorted(set(before) | set(after))
                    if before.get(t) != after.get(t)}
            raise InvalidInput("the compacted copy does not match the store; nothing swapped",
                               detail={"tables": diff})
        want, got = _objects(con, "src"), _objects(con, "dst")
        if want != got:
            raise InvalidInput("the compacted copy lost schema objects; nothing swapped",
                               detail={"store": want, "copy": got})
    return after
