"""Key-row hashes of a streamed table, counted exactly in bounded memory for any size.

The duplicate-row screen (:func:`appliance.validate._counting.duplicate_rows`)
asks how many distinct hashes the table's key columns have: as many as rows
means no two rows are equal. The hashes are gathered while each piece is on
its way to the Parquet writer (:class:`appliance.validate._pieces.PieceStats`).
Up to ``cap`` rows they are kept in memory (8 bytes a row). Past it they are
spilled, split by their top byte, to 256 files of raw 64-bit values under the
parser's work folder (one append per piece and file), and counted one file at
a time; a file over ``cap`` rows is first merged piece by piece into one
distinct set (enough when it holds many repeats), and only a file with more
than ``cap`` distinct hashes is split again by its next byte, so no step holds
more than about ``cap`` hashes, whatever the table's size. The count is
exact over the hashes (distinct values are never merged): only an equal hash
says two key rows may be equal, and the reader then counts over every column.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np
import polars as pl

_FANOUT = 256                  # files per split: one byte of the hash
_READ_ROWS = 1 << 22           # hashes read at once while a file is split again


class KeyHashes:
    """Hashes appended a piece at a time; :meth:`distinct` counts them exactly."""

    def __init__(self, cap: int, spill: Path | None) -> None:
        self.cap = cap                     # hashes held in memory at most
        self.spill = spill                 # where to spill past ``cap``; None: give up
        self.rows = 0
        self.lost = False                  # past the cap with nowhere to spill
        self._held: list[pl.Series] = []
        self._folder: Path | None = None
        self._files: list[Path] = []
        self._counted: int | None = None
        self._cleanup: weakref.finalize | None = None

    def add(self, hashes: pl.Series) -> None:
        if self.lost or self._counted is not None:
            return
        self.rows += hashes.len()
        if self._folder is None and self.rows <= self.cap:
            self._held.append(hashes)
            return
        if self.spill is None:
            self.drop()
            return
        if self._folder is None:
            self._open()
            for held in self._held:
                self._write(held.to_numpy())
            self._held = []
        self._write(hashes.to_numpy())

    def distinct(self) -> int | None:
        """The number of distinct hashes, or None when they were not all kept."""
        if self.lost:
            return None
        if self._counted is None:
            if self._folder is None:
                self._counted = pl.concat(self._held).n_unique() if self._held else 0
            else:
                self._counted = sum(_distinct_in(f, 48, self.cap) for f in self._files)
                self.drop()
                self.lost = False
            self._held = []
        return self._counted

    def drop(self) -> None:
        """Forget the hashes (and remove the spilled files)."""
        self.lost = True
        self._held = []
        if self._cleanup is not None:
            self._cleanup()
        self._folder, self._files = None, []

    def _open(self) -> None:
        assert self.spill is not None
        self.spill.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix=".key-hashes-", dir=self.spill))
        self._cleanup = weakref.finalize(self, shutil.rmtree, folder, True)
        self._folder = folder
        self._files = [folder / f"{i:02x}.u64" for i in range(_FANOUT)]

    def _write(self, values: np.ndarray) -> None:
        _split_to(values.astype(np.uint64, copy=False), 56, self._files)


def _split_to(values: np.ndarray, shift: int, files: list[Path]) -> None:
    """Append ``values`` to ``files``, each to the file its byte at ``shift`` names."""
    if not values.size:
        return
    part = ((values >> np.uint64(shift)) & np.uint64(0xFF)).astype(np.intp)
    order = np.argsort(part, kind="stable")
    ordered = values[order]
    ends = np.cumsum(np.bincount(part, minlength=_FANOUT))
    start = 0
    for i, end in enumerate(ends.tolist()):
        if end > start:
            with files[i].open("ab") as out:
                ordered[start:end].tofile(out)
        start = end


def _distinct_in(path: Path, shift: int, cap: int) -> int:
    """Distinct values in one spilled file. Over ``cap`` values, it is read in pieces
    merged into one distinct set while that set stays within ``cap`` (many repeats:
    one read); past that, split again by the byte at ``shift`` and counted per part
    (past the last byte all of a part's values are equal)."""
    if not path.exists():
        return 0
    size = path.stat().st_size // 8
    if size <= cap:
        return pl.Series(np.fromfile(path, dtype=np.uint64)).n_unique()
    if shift < 0:
        return 1
    values = np.memmap(path, dtype=np.uint64, mode="r")
    step = max(cap // 2, 1)
    seen = pl.Series(values=[], dtype=pl.UInt64)
    for start in range(0, size, step):
        seen = pl.concat([seen, pl.Series(np.array(values[start:start + step]))]).unique()
        if seen.len() > cap:
            break
    else:
        return seen.len()
    del seen
    folder = Path(tempfile.mkdtemp(prefix=path.stem + "-", dir=path.parent))
    try:
        files = [folder / f"{i:02x}.u64" for i in range(_FANOUT)]
        for start in range(0, size, _READ_ROWS):
            _split_to(np.array(values[start:start + _READ_ROWS]), shift, files)
        del values
        path.unlink()
        return sum(_distinct_in(f, shift - 8, cap) for f in files)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
