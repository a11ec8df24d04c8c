"""Ingest to the object store: a 1M-row file with the snapshot going to an S3-compatible
server (moto, on loopback) against the same file going to local disk, in the same run.

Not a test. Run it once (moto[server] is in the test extra):

    .venv/bin/python bench/objectstore_ingest.py          # --rows 200000 for a quick look

It writes the CSV of bench/ingest.py (ROWS x 20 columns, about 160 MB at 1,000,000 rows),
starts ``moto.server`` in a child process on a free loopback port, and builds two
in-process appliances: one on a home (the default object store) and one with
``APPLIANCE_OBJECT_STORE=s3://bench/<prefix>`` on that server. Each of REPEATS rounds
ingests a fresh copy of the file (one distinct row, so nothing is a duplicate) through
``IngestService.ingest_stream`` into each, alternating which goes first, and times the
whole ingest: copy into the claimed area, hash, parse and validate in the parser child,
publish the Parquet (a rename, or an upload kept in the host's cache), commit. It then
times a second host reading the snapshot from the bucket into its empty cache, and the
S3 server accepting the same snapshot from pyarrow directly (the floor of any upload).

Prints the medians, the ratio s3/local (target <= 1.5), the snapshot size and the peak
resident memory of this process and of its largest child (a parser, or the moto server).
``--strict`` exits 1 when the target is missed.
"""

from __future__ import annotations

import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import make_csv, with_distinct_last_row  # a sibling module, not a package

TARGET = 1.5
BUCKET = "bench"
console = Console()
app = typer.Typer(add_completion=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from moto.server import main; main(sys.argv[1:])",
         "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("moto server did not start")


def settings(home: Path, endpoint: str | None, prefix: str) -> Any:
    from appliance.config import Settings

    extra: dict[str, Any] = {}
    if endpoint:
        extra = {"object_store": f"s3://{BUCKET}/{prefix}", "s3_endpoint": endpoint,
                 "s3_access_key_id": "bench", "s3_secret_access_key": "bench",
                 "s3_region": "us-east-1"}
    return Settings(home=home, admin_password="bench-password-1", parse_timeout_seconds=1800,
                    **extra)


def ingest_once(appliance: Any, src: Path, dataset: str) -> tuple[float, str]:
    from appliance.domain.principal import SYSTEM

    t0 = time.perf_counter()
    with src.open("rb") as fh:
        out = appliance.ingest.ingest_stream(fh, file_name="f.csv", dataset=dataset, who=SYSTEM)
    elapsed = time.perf_counter() - t0
    if str(out.outcome) != "accepted":
        raise RuntimeError(f"{dataset}: {out.outcome} {out.message}")
    return elapsed, f"datasets/{dataset}/{out.sha256}.parquet"


def raw_upload(host: str, path: Path) -> float:
    """Seconds the S3 server takes to accept the snapshot by itself (pyarrow, 8 MB writes):
    the floor of what publishing to it can cost."""
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(access_key="bench", secret_key="bench", region="us-east-1",
                           endpoint_override=host, scheme="http")
    t0 = time.perf_counter()
    with path.open("rb") as src, fs.open_output_stream(f"{BUCKET}/raw/snapshot") as out:
        while chunk := src.read(8 * 1024 * 1024):
            out.write(chunk)
    return time.perf_counter() - t0


def _rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


@app.command()
def main(
    rows: Annotated[int, typer.Option(help="Rows in the CSV.")] = 1_000_000,
    repeats: Annotated[int, typer.Option(help="Ingests per store.")] = 3,
    strict: Annotated[bool, typer.Option(help="Exit 1 when the target is missed.")] = False,
) -> None:
    import pyarrow.fs as pafs

    from appliance.objects import open_object_store
    from appliance.runtime import build

    with tempfile.TemporaryDirectory(prefix="objbench-") as tmp_s:
        tmp = Path(tmp_s)
        base = tmp / "base.csv"
        make_csv(base, rows)
        size_mb = base.stat().st_size / 1e6
        console.print(f"CSV: {rows:,} rows, {size_mb:.0f} MB")
        moto, endpoint = start_moto()
        try:
            host = endpoint.removeprefix("http://")
            pafs.S3FileSystem(access_key="bench", secret_key="bench", region="us-east-1",
                              endpoint_override=host, scheme="http",
                              allow_bucket_creation=True).create_dir(BUCKET)
            apps = {"local": build(settings(tmp / "local", None, "")),
                    "s3": build(settings(tmp / "s3", endpoint, "run"))}
            times: dict[str, list[float]] = {"local": [], "s3": []}
            key = ""
            try:
                for r in range(repeats):
                    order = ["local", "s3"] if r % 2 == 0 else ["s3", "local"]
                    for mode in order:
                        src = tmp / f"{mode}{r}.csv"
                        with_distinct_last_row(base, src, r + 1)
                        os.sync()
                        elapsed, got = ingest_once(apps[mode], src, f"bench{r}")
                        times[mode].append(elapsed)
                        key = got if mode == "s3" else key
                        src.unlink()
                        console.print(f"round {r + 1} {mode}: {elapsed:.2f} s")
            finally:
                for a in apps.values():
                    a.close()
            reader = open_object_store(settings(tmp / "reader", endpoint, "run"))
            t0 = time.perf_counter()
            path = reader.local_path(key)
            fetch_s = time.perf_counter() - t0
            snap_mb = path.stat().st_size / 1e6
            raw_s = raw_upload(host, path)
        finally:
            moto.terminate()
            moto.wait(timeout=30)

    local, s3 = statistics.median(times["local"]), statistics.median(times["s3"])
    ratio = s3 / local
    table = Table(title=f"Ingest of {rows:,} rows ({size_mb:.0f} MB CSV), median of {repeats}")
    for col in ("object store", "seconds (each)", "median s"):
        table.add_column(col)
    table.add_row("local disk (default)", ", ".join(f"{t:.2f}" for t in times["local"]),
                  f"{local:.2f}")
    table.add_row("S3 (moto on loopback)", ", ".join(f"{t:.2f}" for t in times["s3"]),
                  f"{s3:.2f}")
    console.print(table)
    console.print(f"s3 / local: {ratio:.2f}x (target <= {TARGET}x)")
    console.print(f"the S3 server alone accepts the snapshot in {raw_s:.2f} s: s3 - local - that = "
                  f"{s3 - local - raw_s:+.2f} s of ours; (local + that) / local = "
                  f"{(local + raw_s) / local:.2f}x is this server's floor")
    console.print(f"snapshot {snap_mb:.1f} MB; a second host fetched it into its cache in "
                  f"{fetch_s:.2f} s")
    console.print(f"peak RSS: this process {_rss_mb(resource.RUSAGE_SELF):.0f} MB, "
                  f"largest child (parser, moto server) {_rss_mb(resource.RUSAGE_CHILDREN):.0f} MB")
    if strict and ratio > TARGET:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
