"""A scratch, in-memory DuckDB for the parser child's checks (row counts, Parquet footers).

Capped at 256 MB and one thread, and never fetching an extension: DuckDB
installs known extensions on first use from the internet by default, which an
air-gapped site must never attempt (the store's own connection is set the
same way in ``appliance.store.db``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "memory_limit": "256MB", "threads": 1, "autoinstall_known_extensions": False}


def scratch_duckdb() -> duckdb.DuckDBPyConnection:
    import duckdb

    return duckdb.connect(":memory:", config=dict(CONFIG))
