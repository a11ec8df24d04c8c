"""A few rows of a big dataset version: the appliance's batched reads vs reading the version.

A generated version (``--rows``, default 2M, x 20 float columns + 2 text columns) is
written in chunks. Each measured read runs in a fresh child process, timed, with its
peak RSS read from the child:

- ``head``: :func:`appliance.datasets.preview.head`, 20 rows (the Rows tab's default);
- ``sample``: :func:`appliance.datasets.preview.sample`, 1,000 rows, seed 0;
- ``read + head`` / ``read + sample``: the reference, what a reader that holds the
  version does: ``pl.read_parquet`` then ``head(20)`` / ``sample(1000, seed=0)``;
- ``imports only``: the child's libraries (and one warm-up call of each path on a
  two-row file, as in a running server), the floor of any RSS.

    python bench/version_rows.py [--rows 2000000]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

NUMERIC = 20
CHUNK = 250_000


def write_version(path: Path, rows: int) -> None:
    import polars as pl
    import pyarrow.parquet as pq

    writer = None
    for i, start in enumerate(range(0, rows, CHUNK)):
        n = min(CHUNK, rows - start)
        rng = np.random.default_rng(i)
        data: dict[str, Any] = {f"x{j:02d}": rng.normal(size=n) for j in range(NUMERIC)}
        data["id"] = np.arange(start, start + n)
        data["city"] = rng.choice(["Lisbon", "Porto", "Faro", "Braga"], n).tolist()
        table = pl.DataFrame(data).to_arrow()
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=100_000)
    assert writer is not None
    writer.close()


def child(kind: str, path: Path) -> None:
    # what the server has loaded anyway, in every child: the timings are the reads alone
    import polars as pl
    import pyarrow.parquet  # noqa: F401

    import appliance.validate._values  # noqa: F401
    from appliance.datasets import preview

    # warm: the first call of either path pays one-off initialisation a server has paid
    warm = path.with_name(f"warm-{kind}.parquet")
    pl.DataFrame({"x": [1.0, 2.0], "s": ["a", "b"]}).write_parquet(warm)
    preview.head(warm, 1), preview.sample(warm, 1, seed=0)
    pl.read_parquet(warm).sample(1, seed=0)
    started = time.perf_counter()
    if kind == "head":
        rows = len(preview.head(path, 20))
    elif kind == "sample":
        rows = len(preview.sample(path, 1000, seed=0))
    elif kind == "read+head":
        rows = pl.read_parquet(path).head(20).height
    elif kind == "read+sample":
        rows = pl.read_parquet(path).sample(1000, seed=0).height
    else:
        rows = 0
    print(json.dumps({"seconds": time.perf_counter() - started, "rows": rows,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(kind: str, path: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--child", kind, "--path", str(path)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{done.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--child", default=None)
    parser.add_argument("--path", default="")
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.path))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "version.parquet"
        write_version(path, args.rows)
        print(f"version: {args.rows:,} rows x {NUMERIC + 2} columns, Parquet "
              f"{path.stat().st_size / 2**20:,.0f} MB")
        results = {kind: measure(kind, path)
                   for kind in ("imports", "head", "read+head", "sample", "read+sample")}
    print(f"\n{'read':<14} {'rows':>6} {'time s':>8} {'peak RSS MB':>12}")
    for kind, r in results.items():
        print(f"{kind:<14} {r['rows']:>6} {r['seconds']:>8.2f} {r['peak_mb']:>12.0f}")
    floor = results["imports"]["peak_mb"]
    for ours, ref in (("head", "read+head"), ("sample", "read+sample")):
        a, b = results[ours], results[ref]
        print(f"{ours} vs {ref}: time {a['seconds'] / b['seconds']:.2f}x, peak RSS "
              f"{a['peak_mb'] / b['peak_mb']:.2f}x ({a['peak_mb'] - floor:,.0f} MB vs "
              f"{b['peak_mb'] - floor:,.0f} MB above the imports)")


if __name__ == "__main__":
    main()
