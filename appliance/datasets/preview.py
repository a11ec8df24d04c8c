"""A few rows of a dataset version, read without holding the version.

Two ways, both bounded by the number of rows asked for, whatever the version's size:

* ``head``: the first ``limit`` rows in file order. pyarrow reads record batches of
  ``limit`` rows from the first row group(s) and stops after the first batch.
* ``sample``: a seeded sample of ``limit`` rows spread over the whole version: every
  row gets a uniform value from a hash of (row position, seed) and the ``limit`` rows
  with the smallest values are kept, in file order. The version is read one record
  batch (:data:`BATCH_ROWS`) at a time and at most ``limit`` candidate rows are held, so
  memory is one batch plus the sample; the same seed gives the same rows.

Values are JSON-safe (NaN and infinities become null, dates ISO strings, text is cut to
200 characters), as in column summaries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

BATCH_ROWS = 65_536
MAX_ROWS = 1000
_SALT = 0x5EED_0010


def head(path: Path, limit: int, columns: list[str] | None = None) -> list[dict[str, Any]]:
    """The first ``limit`` rows."""
    import pyarrow.parquet as pq

    reader = pq.ParquetFile(path, pre_buffer=False)
    for batch in reader.iter_batches(batch_size=max(1, limit), columns=columns):
        return _rows(batch.to_pylist()[:limit])
    return []


def sample(path: Path, limit: int, seed: int,
           columns: list[str] | None = None) -> list[dict[str, Any]]:
    """``limit`` rows chosen by a seeded hash of their position, in file order."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    kept: pa.Table | None = None          # candidates, with their hash value and position
    start = 0
    reader = pq.ParquetFile(path, pre_buffer=False)
    for batch in reader.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        positions = np.arange(start, start + batch.num_rows, dtype=np.uint64)
        start += batch.num_rows
        u = _uniform(positions, seed)
        best = np.argsort(u, kind="stable")[:limit]
        part = pa.Table.from_batches([batch]).take(pa.array(best)).append_column(
            "__u", pa.array(u[best])).append_column("__pos", pa.array(positions[best]))
        kept = part if kept is None else pa.concat_tables([kept, part])
        if kept.num_rows > limit:
            order = np.argsort(kept.column("__u").to_numpy(), kind="stable")[:limit]
            kept = kept.take(pa.array(order))
    if kept is None:
        return []
    in_file_order = np.argsort(kept.column("__pos").to_numpy(), kind="stable")
    kept = kept.take(pa.array(in_file_order)).drop_columns(["__u", "__pos"])
    return _rows(kept.to_pylist())


def _uniform(positions: Any, seed: int) -> Any:
    """A uniform [0, 1) value per row position (splitmix64 of position and seed)."""
    import numpy as np

    with np.errstate(over="ignore"):
        z = positions + np.uint64((seed * 0x9E3779B97F4A7C15 + _SALT) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def _rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from appliance.validate._values import json_safe

    return [{k: json_safe(v) for k, v in r.items()} for r in records]
