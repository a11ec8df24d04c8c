"""A scratch, in-memory DuckDB for the parser child's checks (row counts, Parquet footers).

Capped at 256 MB (or a quarter of the parser's memory cap when that is
smaller, set once at the child's start by :func:`set_memory_cap`) and one
thread, and never fetching an extension: DuckDB installs known extensions on
first use from the internet by default, which an air-gapped site must never
attempt (the store's own connection is set the same way in
``appliance.store.db``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

_DEFAULT_MB = 256
_MIN_MB = 16

CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "memory_limit": f"{_DEFAULT_MB}MB", "threads": 1, "autoinstall_known_extensions": False}


def set_memory_cap(parser_memory_mb: int) -> None:
    """Keep DuckDB's own buffer pool well inside the parser's resident-memory cap."""
    mb = max(_MIN_MB, min(_DEFAULT_MB, int(parser_memory_mb) // 4))
    CONFIG["memory_limit"] = f"{mb}MB"


def scratch_duckdb() -> duckdb.DuckDBPyConnection:
    import duckdb

    return duckdb.connect(":memory:", config=dict(CONFIG))
