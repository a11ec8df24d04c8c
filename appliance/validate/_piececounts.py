"""A contract's row counts, taken from a streamed file's pieces on their way to Parquet.

A file that arrives for a dataset with a contract is read with the contract's
types, so the table's schema is known from its first piece. The fast path's
checks (:func:`appliance.validate._checking.counted_items`: nullability,
pandera's built-in check expressions, the profile's nulls, ranges and
domains) are each a sum of a boolean expression, and their sample values the
first distinct failing values in file order: both add up piece by piece. So
:class:`PieceCounts` runs them on each piece while it is in memory, and
:func:`appliance.validate._counting.count_all` takes them from here instead of
reading the written Parquet again. It does so only for the very same
expressions over the very same schema, and for no column re-typed after it
was written; anything else is counted over the Parquet as before.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from appliance.validate._counting import _SAMPLE_SCAN_ROWS, SAMPLE_SIZE, Counted
from appliance.validate._values import json_safe


class PieceCounts:
    """The counts ``build(schema)`` names, summed over the pieces of one table, in order."""

    def __init__(self, build: Callable[[pl.Schema], list[Counted] | None]) -> None:
        self._build = build
        self.schema: pl.Schema | None = None
        self.items: list[Counted] | None = None
        self._counts: list[int] = []
        self._scanned: list[int] = []        # failing rows looked at for samples, per item
        self._samples: list[pl.Series | None] = []

    def add(self, piece: pl.DataFrame) -> None:
        if self.schema is None:
            self.schema = piece.schema
            self.items = self._build(piece.schema)
            n = len(self.items or [])
            self._counts, self._scanned, self._samples = [0] * n, [0] * n, [None] * n
        if not self.items or not piece.height:
            return
        sums = piece.select(c.fails.sum().alias(str(i)) for i, c in enumerate(self.items)).row(0)
        for i, (c, found) in enumerate(zip(self.items, sums, strict=True)):
            found = int(found or 0)
            self._counts[i] += found
            if found and c.samples_wanted:
                self._sample(i, c, piece)

    def _sample(self, i: int, c: Counted, piece: pl.DataFrame) -> None:
        """The first distinct failing values among the first ``_SAMPLE_SCAN_ROWS`` failing
        rows, as ``failing_values(...).unique(maintain_order=True).head(SAMPLE_SIZE)``."""
        left = _SAMPLE_SCAN_ROWS - self._scanned[i]
        kept = self._samples[i]
        if left <= 0 or (kept is not None and kept.len() >= SAMPLE_SIZE):
            return
        bad = piece.select(pl.col(c.column).filter(c.fails).head(left)).to_series()
        self._scanned[i] += bad.len()
        both = bad if kept is None else pl.concat([kept, bad])
        self._samples[i] = both.unique(maintain_order=True).head(SAMPLE_SIZE)

    def fill(self, counted: list[Counted], schema: pl.Schema, stale: set[str]) -> bool:
        """Fill ``counted`` from what was gathered, when all of it was: True if so."""
        if self.items is None or self.schema != schema:
            return False
        index = {c.key: i for i, c in enumerate(self.items)}
        found: list[int] = []
        for c in counted:
            i = index.get(c.key)
            if i is None or c.column in stale or not _same(c, self.items[i]):
                return False
            found.append(i)
        for c, i in zip(counted, found, strict=True):
            c.count = self._counts[i]
            samples = self._samples[i]
            c.samples = ([json_safe(v) for v in samples] if c.count and c.samples_wanted
                         and samples is not None else [])
        return True


def _same(a: Counted, b: Counted) -> bool:
    return (a.column, a.check, a.samples_wanted) == (b.column, b.check, b.samples_wanted) and \
        bool(a.fails.meta.eq(b.fails))


def contract_counts(contract_yaml: str) -> PieceCounts:
    """A :class:`PieceCounts` for a file checked against ``contract_yaml``."""
    from appliance.validate._checking import counted_items
    from appliance.validate.contracts import _profile, load_contract

    schema = load_contract(contract_yaml)
    profile = _profile(contract_yaml)

    def build(present: pl.Schema) -> list[Counted] | None:
        try:
            return counted_items(present, schema, profile)
        except Exception:     # a check pandera cannot express here: counted on the file
            return None

    return PieceCounts(build)

