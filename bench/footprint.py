"""Footprint benchmark: install size by package, plain install vs the offline bundle, and cold starts.

Not a test. Run it once, from the checkout, with a venv that has the appliance:

    .venv/bin/python bench/footprint.py               # needs the package index (both installs)
    .venv/bin/python bench/footprint.py --before V1 --after V2   # reuse installed venvs

- **before**: a fresh venv, ``pip install`` of the appliance wheel from the
  index (pip's resolver: every requirement, the CUDA XGBoost wheel and
  everything alibi-detect names).
- **after**: ``appliance bundle`` (the lock, installed ``--no-deps``), then the
  bundle's ``install.sh`` into a fresh venv, with no network when ``unshare``
  is allowed.
- Size by distribution (the files each one's RECORD lists, as installed) and
  of the whole venv; the container image is measured with ``docker`` where an
  engine answers, else estimated as the venv plus the ``python:3.11-slim``
  base (``BASE_IMAGE_MB``) and said to be an estimate.
- Cold ``appliance serve`` (fresh home) to ``/healthz``, median of STARTS, in
  both venvs (the ratio is after / before), with the server's RSS then.
- First ``appliance up --demo`` to the API and the console healthy, from the
  bundle install.

Targets: bundle install at most 1.2 GB, image at most 1.5 GB.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import httpx
import typer
from harness import PASSWORD, free_port  # a sibling module, not a package
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
BASE_IMAGE_MB = 130.0  # about what `docker images` reports for python:3.11-slim (amd64), uncompressed
TARGET_INSTALL_GB = 1.2
TARGET_IMAGE_GB = 1.5
SIZES = """
import importlib.metadata as md, json, os
out = {}
for d in md.distributions():
    total = 0
    for f in d.files or []:
        try:
            total += os.lstat(d.locate_file(f)).st_size
        except OSError:
            pass
    out[d.metadata["Name"]] = total
print(json.dumps(out))
"""

console = Console()
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def du(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


def by_package(venv: Path) -> dict[str, int]:
    out = subprocess.run([str(venv / "bin" / "python"), "-I", "-c", SIZES], capture_output=True, text=True,
                         check=True)
    return {k.lower(): v for k, v in json.loads(out.stdout).items()}


def build_wheel(work: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(work / "dist"),
                    str(REPO)], check=True)
    (wheel,) = (work / "dist").glob("appliance-*.whl")
    return wheel


def plain_install(work: Path, wheel: Path) -> tuple[Path, float]:
    venv = work / "before"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    t0 = time.monotonic()
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], check=True)
    return venv, time.monotonic() - t0


def bundle_install(work: Path, wheel: Path) -> tuple[Path, float, int]:
    bundle = work / "bundle"
    subprocess.run([sys.executable, "-m", "appliance", "bundle", "--out", str(bundle), "--wheel", str(wheel),
                    "--json"], check=True, capture_output=True)
    venv = work / "after"
    cmd = ["sh", str(bundle / "install.sh"), str(venv)]
    if shutil.which("unshare") and subprocess.run(["unshare", "-n", "true"]).returncode == 0:
        cmd = ["unshare", "-n", *cmd]  # no network at all while installing
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    return venv, time.monotonic() - t0, du(bundle)


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            ppid = next(ln for ln in status.read_text().splitlines() if ln.startswith("PPid:"))
        except (OSError, StopIteration):
            continue
        parents[int(status.parent.name)] = int(ppid.split()[1])
    tree, grew = {pid}, True
    while grew:
        more = {p for p, pp in parents.items() if pp in tree} - tree
        tree |= more
        grew = bool(more)
    total = 0
    for p in tree:
        with contextlib.suppress(OSError, StopIteration):
            total += int(next(ln for ln in Path(f"/proc/{p}/status").read_text().splitlines()
                              if ln.startswith("VmRSS:")).split()[1])
    return total / 1024


def cold_serve(venv: Path, starts: int) -> tuple[float, float]:
    """Median seconds from spawning serve on a fresh home to /healthz 200, and RSS (MB) then."""
    times, rss = [], []
    for _ in range(starts):
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            env = {**os.environ, "APPLIANCE_HOME": tmp + "/home", "APPLIANCE_PORT": str(port),
                   "APPLIANCE_ADMIN_PASSWORD": PASSWORD, "APPLIANCE_LOG_LEVEL": "warning"}
            env.pop("PYTHONPATH", None)
            t0 = time.monotonic()
            proc = subprocess.Popen([str(venv / "bin" / "appliance"), "serve"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_http(f"http://127.0.0.1:{port}/healthz", proc, 120)
                times.append(time.monotonic() - t0)
                rss.append(rss_mb(proc.pid))
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
    return statistics.median(times), statistics.median(rss)


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{url} not healthy after {timeout} s")


def first_up(venv: Path) -> tuple[float, float]:
    """Seconds from `appliance up --demo` on a fresh home to the API, then the console, healthy."""
    with tempfile.TemporaryDirectory() as tmp:
        port, console_port = free_port(), free_port()
        env = {**os.environ, "APPLIANCE_HOME": tmp + "/home", "APPLIANCE_PORT": str(port),
               "APPLIANCE_CONSOLE_PORT": str(console_port), "APPLIANCE_ADMIN_PASSWORD": PASSWORD,
               "APPLIANCE_LOG_LEVEL": "warning"}
        env.pop("PYTHONPATH", None)
        t0 = time.monotonic()
        proc = subprocess.Popen([str(venv / "bin" / "appliance"), "up", "--demo"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc, 180)
            api = time.monotonic() - t0
            wait_http(f"http://127.0.0.1:{console_port}/_stcore/health", proc, 180)
            return api, time.monotonic() - t0
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(90)


def image_mb(venv_bytes: int) -> tuple[float, str]:
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
        subprocess.run(["docker", "build", "-q", "-t", "appliance:footprint", str(REPO)], check=True)
        size = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", "appliance:footprint"],
                              capture_output=True, text=True, check=True).stdout
        return int(size) / 1e6, "measured (docker image inspect)"
    return (venv_bytes / 1e6 + BASE_IMAGE_MB,
            f"ESTIMATE: no container engine; venv + python:3.11-slim ({BASE_IMAGE_MB:.0f} MB)")


@app.command()
def main(
    before: Annotated[Path | None, typer.Option(help="Reuse this plain-install venv.")] = None,
    after: Annotated[Path | None, typer.Option(help="Reuse this bundle-install venv.")] = None,
    starts: Annotated[int, typer.Option(help="Cold serve starts per venv (median).")] = 3,
    rows: Annotated[int, typer.Option(help="Largest packages to list.")] = 30,
) -> None:
    work = Path(tempfile.mkdtemp(prefix="footprint-"))
    try:
        wheel = build_wheel(work) if before is None or after is None else None
        t_before = t_after = None
        bundle_bytes = None
        if before is None:
            assert wheel is not None
            before, t_before = plain_install(work, wheel)
        if after is None:
            assert wheel is not None
            after, t_after, bundle_bytes = bundle_install(work, wheel)
        sizes_b, sizes_a = by_package(before), by_package(after)
        venv_b, venv_a = du(before), du(after)

        table = Table("package", "plain install MB", "bundle install MB",
                      title="site-packages by distribution")
        for name in sorted(set(sizes_b) | set(sizes_a), key=lambda n: -max(sizes_b.get(n, 0),
                                                                          sizes_a.get(n, 0)))[:rows]:
            b, a = sizes_b.get(name), sizes_a.get(name)
            table.add_row(name, "-" if b is None else f"{b / 1e6:.1f}",
                          "-" if a is None else f"{a / 1e6:.1f}")
        table.add_row("[b]all distributions", f"[b]{sum(sizes_b.values()) / 1e6:.0f}",
                      f"[b]{sum(sizes_a.values()) / 1e6:.0f}")
        table.add_row("[b]whole venv", f"[b]{venv_b / 1e6:.0f}", f"[b]{venv_a / 1e6:.0f}")
        console.print(table)
        left_out = sorted(set(sizes_b) - set(sizes_a), key=lambda n: -sizes_b[n])
        console.print(f"left out by the lock ({sum(sizes_b[n] for n in left_out) / 1e6:.0f} MB): "
                      + ", ".join(f"{n} {sizes_b[n] / 1e6:.0f}" for n in left_out))

        image, how = image_mb(venv_a)
        cold_b, rss_b = cold_serve(before, starts)
        cold_a, rss_a = cold_serve(after, starts)
        up_api, up_console = first_up(after)
        summary = Table("measure", "value", title="footprint")
        if t_before is not None:
            summary.add_row("plain pip install from the index", f"{t_before:.0f} s")
        if t_after is not None and bundle_bytes is not None:
            summary.add_row("bundle install (--no-index, no network)", f"{t_after:.0f} s")
            summary.add_row("bundle on disk", f"{bundle_bytes / 1e6:.0f} MB")
        ok_install = venv_a / 1e9 <= TARGET_INSTALL_GB
        summary.add_row("bundle install size", f"{venv_a / 1e9:.2f} GB (target {TARGET_INSTALL_GB} GB: "
                        f"{'met' if ok_install else 'MISSED'}); plain install {venv_b / 1e9:.2f} GB, "
                        f"ratio {venv_a / venv_b:.2f}")
        summary.add_row("container image", f"{image / 1e3:.2f} GB (target {TARGET_IMAGE_GB} GB: "
                        f"{'met' if image / 1e3 <= TARGET_IMAGE_GB else 'MISSED'}); {how}")
        summary.add_row("cold serve to /healthz", f"bundle {cold_a:.2f} s, plain {cold_b:.2f} s, "
                        f"ratio {cold_a / cold_b:.2f} (median of {starts})")
        summary.add_row("serve RSS at healthy", f"bundle {rss_a:.0f} MB, plain {rss_b:.0f} MB")
        summary.add_row("first up --demo (bundle)",
                        f"API healthy {up_api:.1f} s, console healthy {up_console:.1f} s")
        console.print(summary)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    app()
