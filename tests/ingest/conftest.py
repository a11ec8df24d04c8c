"""Real files for the parser tests: good ones of each format and hostile ones, built on disk."""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from appliance.ingest.parse import ParseLimits
from appliance.ingest.worker import ParserPool

COLORS = ("red", "green", "blue")


def good_csv_text(rows: int = 100) -> str:
    lines = [f"{i * 0.5},{i},{COLORS[i % 3]}" for i in range(rows)]
    return "x,n,color\n" + "\n".join(lines) + "\n"


def good_frame(rows: int = 100) -> pl.DataFrame:
    return pl.read_csv(io.BytesIO(good_csv_text(rows).encode()))


def big_csv(path: Path, rows: int) -> Path:
    """A benchmark-shaped CSV: 16 floats, 3 categories, an integer label."""
    rng = np.random.default_rng(11)
    cols: dict[str, object] = {f"f{i}": np.round(rng.normal(size=rows), 6) for i in range(16)}
    cols["color"] = rng.choice(list(COLORS), rows)
    cols["region"] = rng.choice([f"r{i}" for i in range(8)], rows)
    cols["tier"] = rng.choice(["a", "b"], rows)
    cols["label"] = rng.integers(0, 2, rows)
    pl.DataFrame(cols).write_csv(path)
    return path


def build_hostile(kind: str, folder: Path) -> tuple[Path, str]:
    """Write one hostile input; return its path and format."""
    good = good_csv_text()
    plain: dict[str, bytes] = {
        "ragged_more": b"a,b\n1,2\n3,4,5\n6,7\n",
        "ragged_fewer": b"a,b\n1,2\n3\n6,7\n",
        "unclosed_quote": b'a,b\n1,"x\n3,4\n5,6\n',
        "latin1": "name,city\n1,Zürich\n2,Malmö\n".encode("latin-1"),
        "utf16_bom": good.encode("utf-16"),
        "empty": b"",
        "header_only": b"x,n,color\n",
    }
    if kind in plain:
        path = folder / f"{kind}.csv"
        path.write_bytes(plain[kind])
        return path, "csv"
    if kind == "gzip_bomb":
        path = folder / "bomb.csv.gz"
        with gzip.open(path, "wb", compresslevel=9) as fh:
            fh.write(b"a\n")
            zeros = b"0" * (1 << 20)
            for _ in range(50):             # 50 MB of one byte: about 50 KB compressed
                fh.write(zeros)
        return path, "csv.gz"
    if kind == "fifo":
        path = folder / "pipe.csv"
        os.mkfifo(path)
        return path, "csv"
    if kind == "symlink":
        target = folder / "target.csv"
        target.write_text(good)
        path = folder / "link.csv"
        path.symlink_to(target)
        return path, "csv"
    raise ValueError(kind)


HOSTILE_REASONS = {
    "ragged_more": ("malformed", "line 3"),
    "ragged_fewer": ("malformed", "line 3"),
    "unclosed_quote": ("malformed", "unclosed quote"),
    "latin1": ("encoding", "line 2"),
    "utf16_bom": ("encoding", "UTF-16"),
    "empty": ("empty", "empty"),
    "header_only": ("empty", "no data rows"),
    "gzip_bomb": ("too_big", "10.0 MB"),
    "fifo": ("not_regular_file", "FIFO"),
    "symlink": ("not_regular_file", "symbolic link"),
}


@pytest.fixture
def limits() -> ParseLimits:
    return ParseLimits(max_bytes=200_000_000, max_uncompressed_bytes=10_000_000,
                       timeout_s=60.0, memory_mb=2048)


@pytest.fixture
def write_good(tmp_path: Path) -> Callable[[str], Path]:
    """Write the same 100-row table as csv, csv.gz, parquet or jsonl."""

    def write(fmt: str) -> Path:
        path = tmp_path / f"good.{fmt}"
        text = good_csv_text()
        if fmt == "csv":
            path.write_text(text)
        elif fmt == "csv.gz":
            path.write_bytes(gzip.compress(text.encode()))
        elif fmt == "parquet":
            good_frame().write_parquet(path)
        elif fmt == "jsonl":
            good_frame().write_ndjson(path)
        else:
            raise ValueError(fmt)
        return path

    return write


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParserPool]:
    """One warm child shared by a module's tests, as the server shares one."""
    limits = ParseLimits(max_bytes=200_000_000, max_uncompressed_bytes=10_000_000,
                         timeout_s=60.0, memory_mb=2048)
    with ParserPool(limits) as p:
        p.start()
        yield p
