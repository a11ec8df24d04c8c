"""Parquet files without the rows an erasure names: typed matching, counting, rewriting.

DuckDB streams the copy (``COPY (SELECT ... WHERE NOT match) TO ...``), so a
version of any size is rewritten in bounded memory, in file order. Column names
are quoted identifiers and values are bound parameters: nothing the caller typed
is spliced into SQL. A row whose key is NULL never matches and is always kept
(``(match) IS NOT TRUE``, not ``NOT (match)``, which would drop it).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from appliance.domain.privacy import Condition
from appliance.errors import InvalidInput

_INT = re.compile(r"[+-]?\d{1,40}")
_INT_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
              "UINTEGER", "UBIGINT", "UHUGEINT")
_FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")
_TEXT_TYPES = ("VARCHAR",)


def _connect() -> Any:
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = true")
    return con


@contextmanager
def reader() -> Iterator[Any]:
    """One in-memory DuckDB connection for many :func:`schema` / :func:`count` calls
    (a connection costs tens of milliseconds; a home may have hundreds of versions)."""
    con = _connect()
    try:
        yield con
    finally:
        con.close()


def schema(path: Path, con: Any) -> dict[str, str]:
    """Column name -> DuckDB type of a Parquet file."""
    rows = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [os.fspath(path)]).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}


def typed(cond: Condition, dtype: str) -> Any:
    """The condition's value as the column's type; InvalidInput when it cannot be one."""
    raw = cond.value
    try:
        if dtype in _INT_TYPES:
            if isinstance(raw, bool):
                raise ValueError
            if isinstance(raw, float) and raw.is_integer():
                return int(raw)
            if isinstance(raw, int) or (isinstance(raw, str) and _INT.fullmatch(raw.strip())):
                return int(raw)
            raise ValueError
        if dtype in _FLOAT_TYPES or dtype.startswith("DECIMAL"):
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if dtype == "BOOLEAN":
            if isinstance(raw, bool):
                return raw
            word = str(raw).strip().lower()
            if word in ("true", "1", "yes"):
                return True
            if word in ("false", "0", "no"):
                return False
            raise ValueError
        if dtype in _TEXT_TYPES:
            return raw if isinstance(raw, str) else json.dumps(raw)
        if dtype == "DATE":
            return dt.date.fromisoformat(str(raw).strip())
        if dtype.startswith("TIMESTAMP"):
            stamp = dt.datetime.fromisoformat(str(raw).strip())
            if "TIME ZONE" in dtype and stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.UTC)
            return stamp
    except (ValueError, OverflowError):
        raise InvalidInput(
            f"column {cond.column!r} holds {dtype}: the value given is not one",
            detail={"field": "where", "column": cond.column, "dtype": dtype}) from None
    raise InvalidInput(f"column {cond.column!r} is {dtype}: erasure matches numbers, text, "
                       "booleans, dates and timestamps only",
                       detail={"field": "where", "column": cond.column, "dtype": dtype})


def input_match(column: str, value: Any) -> tuple[str, str, bool]:
    """How a typed value is found in the prediction log's ``inputs`` JSON: (the field's
    name, the value as text, compare as a number). Numbers compare by value, so ``1000`` in a request
    matches a DOUBLE column's ``1000.0``; everything else compares as text."""
    path = column  # the store spells the engine's JSON path for it
    if isinstance(value, bool):
        return path, "true" if value else "false", False
    if isinstance(value, int | float):
        return path, repr(value), True
    if isinstance(value, dt.date):  # datetimes too
        return path, value.isoformat(), False
    return path, str(value), False


Match = Sequence[tuple[str, Any]]  # (column, typed value)


def _predicate(match: Match) -> str:
    return " AND ".join('"' + column.replace('"', '""') + '" = ?' for column, _ in match)


def count(path: Path, match: Match, con: Any) -> tuple[int, int]:
    """(rows, matching rows) of a Parquet file."""
    row = con.execute(f"SELECT count(*), count(*) FILTER (WHERE {_predicate(match)}) "
                      "FROM read_parquet(?)",
                      [*(v for _, v in match), os.fspath(path)]).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def write_without(src: Path, dst: Path, match: Match) -> int:
    """Write ``src`` less its matching rows to ``dst`` (through a temporary file, fsync'd,
    renamed into place); the rows kept."""
    tmp = dst.with_name(dst.name + ".erasing")
    con = _connect()
    try:
        con.execute(f"COPY (SELECT * FROM read_parquet(?) WHERE ({_predicate(match)}) IS NOT TRUE) "
                    "TO ? (FORMAT parquet, COMPRESSION snappy)",
                    [os.fspath(src), *(v for _, v in match), os.fspath(tmp)])
        kept = con.execute("SELECT count(*) FROM read_parquet(?)", [os.fspath(tmp)]).fetchone()
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        con.close()
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dst)
    assert kept is not None
    return int(kept[0])


def sha256_of(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(4 * 1024 * 1024), b""):
            h.update(chunk)
    return h.hexdigest()
