"""The statistics of a streamed table, gathered from its pieces while they are in memory.

A streamed CSV (:mod:`appliance.ingest.stream`) is parsed a piece at a time
and each piece is written to Parquet. Reading that Parquet back once per
statistic (nulls, ranges, lengths, order, categories, the key columns' row
hashes, the cell rules' facts) cost more than the parse itself, so
:class:`PieceStats` looks at each piece on its way to the writer and merges
what the checks and the contract inference need: sums, minima and maxima,
the first values in file order, order counts carried across pieces, and
exact sets of distinct values up to a cap (past it, the set is dropped and
the reader counts over the Parquet as before). The key columns' row hashes
are never dropped when a work folder is given (``spill``): past
``KEY_HASH_CAP`` rows they are spilled there and counted in partitions
(:mod:`appliance.validate._keyhashes`), so the duplicate screen reads no
Parquet back at any size. The results equal what the same aggregates give
over the whole table; tests/ingest/test_streaming.py pins that against the
in-memory read.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from appliance.validate._keyhashes import KeyHashes


class PieceCounter(Protocol):
    """A contract's checks counted piece by piece (``_piececounts.PieceCounts``; a protocol
    here, as that module reads the counting code that reads this one)."""

    def add(self, piece: pl.DataFrame) -> None: ...

    def fill(self, counted: list[Any], schema: pl.Schema, stale: set[str]) -> bool: ...


DISTINCT_CAP = 100_000        # distinct values kept per text column; past it: counted on disk
KEY_HASH_CAP = 8_000_000      # key-column hashes held in memory (8 bytes each); then spilled
FIRST_VALUES = 1000           # non-null text values kept per column (inference's date sample)


def hash_of(names: list[str]) -> pl.Expr:
    """One hash per row over the columns ``names``, as an expression."""
    return pl.struct([pl.col(n) for n in names]).hash()


def key_columns_of(schema: pl.Schema, count: int = 3) -> list[str]:
    """A few columns likely to tell rows apart: floats, then integers, then the rest."""
    def rank(dtype: pl.DataType) -> int:
        return 0 if dtype.is_float() else 1 if dtype.is_integer() else 2 if dtype.is_temporal() else 3

    ordered = sorted(schema.items(), key=lambda item: rank(item[1]))
    return [name for name, _ in ordered[:count]]


def _is_stringlike(dtype: pl.DataType) -> bool:
    return dtype == pl.String or dtype == pl.Categorical or isinstance(dtype, pl.Enum)


class PieceStats:
    """Whole-table aggregates, merged one piece (a ``pl.DataFrame``) at a time, in order."""

    def __init__(self, *, tokens: Sequence[str], window: int,
                 first_values: int = FIRST_VALUES, spill: Path | None = None,
                 key_hash_cap: int | None = None, counts: PieceCounter | None = None) -> None:
        self.tokens = list(tokens)
        self.window = window                   # rows whose nulls are counted on their own
        self.first_wanted = first_values       # non-null text values kept per column
        self.rows = 0
        self.schema: pl.Schema | None = None
        self.key: list[str] = []
        self.null_tokens = False
        self._stats: dict[str, dict[str, Any]] = {}
        self.null_counts: dict[str, int] = {}
        self.head_nulls: dict[str, int] = {}
        self.firsts: dict[str, list[Any]] = {}
        self._distinct: dict[str, pl.Series | None] = {}
        self._last: dict[str, Any] = {}
        # key-row hashes; past the cap spilled under ``spill`` (without one: dropped)
        self._hashes = KeyHashes(KEY_HASH_CAP if key_hash_cap is None else key_hash_cap, spill)
        self.stale: set[str] = set()             # columns re-typed after they were gathered
        self.counts = counts                     # a contract's checks, counted per piece

    def _start(self, schema: pl.Schema) -> None:
        self.schema = schema
        self.key = key_columns_of(schema)
        for name, dtype in schema.items():
            self._stats[name] = {"nulls": 0}
            self.null_counts[name] = self.head_nulls[name] = 0
            if _is_stringlike(dtype):
                self.firsts[name] = []
                self._distinct[name] = pl.Series("v", [], dtype=pl.String)
                self._stats[name].update(length_sum=0, length_count=0)

    def add(self, piece: pl.DataFrame) -> None:
        if self.schema is None:
            self._start(piece.schema)
        assert self.schema is not None
        head = max(0, min(self.window - self.rows, piece.height))
        exprs: list[pl.Expr] = []
        for i, (name, dtype) in enumerate(self.schema.items()):
            col, key = pl.col(name), f"{i}:"
            exprs += [col.null_count().alias(key + "null_count"),
                      col.head(head).null_count().alias(key + "head_nulls")]
            if dtype.is_float():      # NaN, infinities and finite min/max: _finite_range
                exprs += [col.is_finite().sum().alias(key + "finite"),
                          col.min().alias(key + "lo"), col.max().alias(key + "hi")]
            elif dtype.is_integer():
                exprs += [col.min().alias(key + "lo"), col.max().alias(key + "hi")]
            elif _is_stringlike(dtype):
                text = col.cast(pl.String).drop_nulls()
                lengths = text.str.len_chars()
                exprs += [lengths.sum().alias(key + "length_sum"),
                          lengths.len().alias(key + "length_count"),
                          lengths.max().alias(key + "max_length")]
                if dtype == pl.String and self.tokens:
                    exprs.append(col.is_in(self.tokens).any().alias(key + "tokens"))
        found = dict(zip((e.meta.output_name() for e in exprs),
                         piece.select(exprs).row(0) if exprs else (), strict=True))
        names = list(self.schema)
        found.update(self._finite_range(piece, names, found))   # pops the finite counts
        for label, value in found.items():
            index, _, stat = label.partition(":")
            self._merge(names[int(index)], stat, value)
        for name, dtype in self.schema.items():
            if dtype.is_integer():
                self._order(name, piece.get_column(name))
            elif _is_stringlike(dtype):
                self._text(name, piece.get_column(name).cast(pl.String).drop_nulls())
        self._key_hashes(piece)
        if self.counts is not None:
            self.counts.add(piece)
        self.rows += piece.height

    @staticmethod
    def _finite_range(piece: pl.DataFrame, names: list[str],
                      found: dict[str, Any]) -> dict[str, Any]:
        """The finite minimum and maximum of the float columns that hold a NaN or an
        infinity in this piece (elsewhere the plain ones are the finite ones)."""
        exprs = []
        for i, name in enumerate(names):
            key = f"{i}:"
            if key + "finite" not in found:
                continue
            finite_count = int(found.pop(key + "finite") or 0)
            if finite_count + int(found[key + "null_count"] or 0) < piece.height:
                col = pl.col(name)
                finite = col.filter(col.is_finite())
                exprs += [finite.min().alias(key + "lo"), finite.max().alias(key + "hi"),
                          col.is_nan().sum().alias(key + "nan"),
                          col.is_infinite().sum().alias(key + "infinite")]
            else:
                found[key + "infinite"] = 0
        return piece.select(exprs).row(0, named=True) if exprs else {}

    def _merge(self, name: str, stat: str, value: Any) -> None:
        s = self._stats[name]
        if stat == "null_count":
            self.null_counts[name] += int(value or 0)
            s["nulls"] += int(value or 0)
        elif stat == "head_nulls":
            self.head_nulls[name] += int(value or 0)
        elif stat == "nan":
            s["nulls"] += int(value or 0)
            self.null_tokens = self.null_tokens or bool(value)
        elif stat == "tokens":
            self.null_tokens = self.null_tokens or bool(value)
        elif stat in ("infinite", "length_sum", "length_count"):
            s[stat] = s.get(stat, 0) + int(value or 0)
        elif value is not None:          # lo, hi, max_length
            old = s.get(stat)
            pick = min if stat == "lo" else max
            s[stat] = value if old is None else pick(old, value)
        else:
            s.setdefault(stat, None)

    def _order(self, name: str, values: pl.Series) -> None:
        s = self._stats[name]
        values = values.drop_nulls()
        if name in self._last:
            values = pl.concat([self._last[name], values])
        if values.len():
            steps = values.diff().drop_nulls()
            s["decreases"] = s.get("decreases", 0) + int((steps < 0).sum())
            s["increases"] = s.get("increases", 0) + int((steps > 0).sum())
            self._last[name] = values.tail(1)
        else:
            s.setdefault("decreases", 0)
            s.setdefault("increases", 0)

    def _text(self, name: str, text: pl.Series) -> None:
        firsts = self.firsts[name]
        if len(firsts) < self.first_wanted:
            firsts += text.head(self.first_wanted - len(firsts)).to_list()
        seen = self._distinct[name]
        if seen is not None:
            merged = pl.concat([seen, text.unique()]).unique()
            self._distinct[name] = merged if merged.len() <= DISTINCT_CAP else None

    def _key_hashes(self, piece: pl.DataFrame) -> None:
        if self._hashes.lost or not self.key or not piece.height:
            return
        self._hashes.add(piece.select(hash_of(self.key).alias("h")).to_series())

    def retyped(self, names: set[str]) -> None:
        """``names`` were re-typed after the table was written: what was gathered about
        them no longer holds (nor the key-row hashes, when one is a key column)."""
        self.stale |= names
        if names & set(self.key):
            self._hashes.drop()

    # -- what the readers ask -------------------------------------------------------

    def statistic(self, name: str, dtype: pl.DataType) -> dict[str, Any]:
        """The statistics ``validate._inference`` computes for one column, less what is
        unknown (a distinct count past the cap: ``distinct`` is absent)."""
        s = dict(self._stats[name])
        if _is_stringlike(dtype):
            count = s.pop("length_count")
            total = s.pop("length_sum")
            s["mean_length"] = total / count if count else None
            s.setdefault("max_length", None)
            distinct = self._distinct[name]
            if distinct is not None:
                s["distinct"] = distinct.len()
        return s

    def first_text(self, name: str) -> list[Any]:
        """The first non-null values of a text column, in file order."""
        return list(self.firsts.get(name, []))

    def domain(self, name: str) -> list[Any] | None:
        """The sorted distinct non-null values of a text column, or None past the cap."""
        distinct = None if name in self.stale else self._distinct.get(name)
        return None if distinct is None else distinct.sort().to_list()

    def key_distinct(self, key: list[str]) -> int | None:
        """Distinct row hashes over ``key`` (the key columns), or None when not kept."""
        if key != self.key:
            return None
        return self._hashes.distinct()
