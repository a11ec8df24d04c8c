"""Does a dataset version fit the trainer? The rule, the row-hash split, and seeded samples.

The rule (docs/reference/jobs.md, "Data larger than memory"): the in-memory path holds
about :data:`MEMORY_FACTOR` copies of the table as 8-byte values (the Parquet read, the
prepared frame, the transformed matrix, the estimator's own copy), so a version of
``rows x columns`` needs an estimated ``rows * columns * 8 * MEMORY_FACTOR`` bytes. It
fits when that is at most :data:`DATA_SHARE` of the trainer's cap
(``APPLIANCE_TRAIN_MEMORY_MB``); the rest is for the libraries and the model.

``data.mode`` then decides: ``auto`` trains in memory when the version fits, else XGBoost
trains from Parquet batches (external memory, :mod:`appliance.train.child.external`) and
any other estimator is refused with the estimate, the cap and the options; ``memory`` and
``external`` force a path; ``sample`` trains in memory on a seeded sample.

Rows are assigned by a hash of (row position, seed) so that any batch, read in any
order, knows each row's side of the holdout split and whether it is in a sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.errors import InvalidInput

MEMORY_FACTOR = 4          # copies of the table the in-memory path holds at its peak
DATA_SHARE = 0.5           # share of the cap the data may take; the rest is libraries + model
BYTES_PER_VALUE = 8
BATCH_ROWS = 65_536        # Parquet rows per record batch on the external path
MEMORY = "memory"
EXTERNAL = "external"
SAMPLE = "sample"
_SPLIT_SALT = 0x5EED_0001
_SAMPLE_SALT = 0x5EED_0002
_VALIDATION_SALT = 0x5EED_0003


@dataclass(frozen=True)
class DataPlan:
    """How the trainer holds this version, and why."""

    mode: str                 # MEMORY | EXTERNAL | SAMPLE
    rows: int
    columns: int
    estimated_mb: float
    cap_mb: int | None
    sample_rows: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "rows": self.rows, "columns": self.columns,
                "estimated_mb": round(self.estimated_mb, 1), "cap_mb": self.cap_mb,
                "sample_rows": self.sample_rows, "reason": self.reason}


def estimate_mb(rows: int, columns: int) -> float:
    """The in-memory path's estimated peak for the data, in MB (see the module's rule)."""
    return rows * columns * BYTES_PER_VALUE * MEMORY_FACTOR / 2**20


def rows_that_fit(cap_mb: int, columns: int) -> int:
    """The most rows of ``columns`` columns whose estimate fits the cap's data share."""
    budget = cap_mb * DATA_SHARE * 2**20
    return max(1, int(budget // (max(1, columns) * BYTES_PER_VALUE * MEMORY_FACTOR)))


def parquet_shape(path: Path) -> tuple[int, int]:
    """(rows, columns) from the Parquet footer, without reading the data."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(path).metadata
    return int(meta.num_rows), int(meta.num_columns)


def plan_data(*, mode: str, flavor: str, rows: int, columns: int, cap_mb: int | None,
              sample_rows: int | None) -> DataPlan:
    """Apply the rule; InvalidInput when the estimator cannot train on data this size."""
    est = estimate_mb(rows, columns)
    fits = cap_mb is None or est <= cap_mb * DATA_SHARE
    size = (f"the dataset version ({rows:,} rows x {columns} columns) needs an estimated "
            f"{est:,.0f} MB in memory")
    cap = f"the trainer's cap is {cap_mb:,} MB" if cap_mb is not None else "the trainer has no cap"
    if mode == SAMPLE:
        n = sample_rows if sample_rows is not None else (
            rows_that_fit(cap_mb, columns) if cap_mb is not None else rows)
        n = min(n, rows)
        return DataPlan(SAMPLE, rows, columns, est, cap_mb, n,
                        f"data.mode is sample: {n:,} of {rows:,} rows, chosen with the split seed")
    if mode == EXTERNAL or (mode == "auto" and not fits):
        if flavor != "xgboost":
            options = ("use xgboost.XGBClassifier/XGBRegressor (trained from Parquet batches), "
                       "set data: {mode: sample, sample_rows: N} to train on a seeded sample, "
                       "or raise APPLIANCE_TRAIN_MEMORY_MB")
            why = (f"{size}, more than {DATA_SHARE:.0%} of the cap ({cap}); "
                   if mode == "auto" else "data.mode external trains XGBoost only; ")
            raise InvalidInput(f"{why}this estimator trains in memory only: {options}",
                               detail={"field": "data.mode", "estimated_mb": round(est, 1),
                                       "cap_mb": cap_mb, "rows": rows, "columns": columns})
        reason = "data.mode is external" if mode == EXTERNAL else \
            f"{size}, more than {DATA_SHARE:.0%} of the cap ({cap})"
        return DataPlan(EXTERNAL, rows, columns, est, cap_mb, None,
                        f"{reason}: XGBoost trains from Parquet batches (external memory)")
    reason = "data.mode is memory" if mode == MEMORY else f"{size}; it fits ({cap})"
    return DataPlan(MEMORY, rows, columns, est, cap_mb, None, reason)


def row_uniform(positions: Any, seed: int, salt: int) -> Any:
    """A uniform [0, 1) value per row position, from a splitmix64 hash of (position, seed)."""
    import numpy as np

    with np.errstate(over="ignore"):
        z = (np.asarray(positions, dtype=np.uint64)
             + np.uint64((seed * 0x9E3779B97F4A7C15 + salt) % 2**64))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def holdout_side(positions: Any, seed: int, test_size: float) -> Any:
    """Boolean mask: the rows at ``positions`` that belong to the holdout."""
    return row_uniform(positions, seed, _SPLIT_SALT) < test_size


def validation_side(positions: Any, seed: int) -> Any:
    """Boolean mask: the rows at ``positions`` that a search scores its trials on, if they
    are on the train side (the same share as the in-memory search's validation cut)."""
    from appliance.train.child.search import VALIDATION_SIZE

    return row_uniform(positions, seed, _VALIDATION_SALT) < VALIDATION_SIZE


def in_sample(positions: Any, seed: int, fraction: float) -> Any:
    """Boolean mask: the rows at ``positions`` in a seeded sample of about ``fraction``."""
    return row_uniform(positions, seed, _SAMPLE_SALT) < fraction


def batches(path: Path, columns: list[str] | None = None) -> Any:
    """(first row position, polars frame) per Parquet record batch of :data:`BATCH_ROWS`
    rows, in file order."""
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    start = 0
    # pre_buffer=False: with it, the reader keeps every column chunk it has read until it
    # is closed, and memory grows with the file (measured: +360 MB over 2M rows x 23)
    reader = pq.ParquetFile(path, pre_buffer=False)
    for batch in reader.iter_batches(batch_size=BATCH_ROWS, columns=columns):
        frame = pl.DataFrame(pa.Table.from_batches([batch]))
        yield start, frame
        start += batch.num_rows


def read_sample(path: Path, n: int, rows: int, seed: int) -> Any:
    """The ``n`` rows (of ``rows``) with the smallest seeded row hashes, in file order,
    read batch by batch so that only a little more than the sample is ever held."""
    import math

    import numpy as np
    import polars as pl

    # keep rows under a threshold that lets through n rows plus four standard deviations
    fraction = min(1.0, (n + 4 * math.sqrt(n) + 10) / max(1, rows))
    parts = []
    for start, frame in batches(path):
        u = row_uniform(np.arange(start, start + frame.height), seed, _SAMPLE_SALT)
        keep = u < fraction
        if keep.any():
            parts.append(frame.with_columns(pl.Series("__u", u)).filter(pl.Series(keep)))
    if not parts:
        return pl.read_parquet(path, n_rows=0)   # the schema, not the file
    kept = pl.concat(parts).with_row_index("__pos")
    chosen = kept.sort("__u").head(n).sort("__pos")
    return chosen.drop("__u", "__pos")
