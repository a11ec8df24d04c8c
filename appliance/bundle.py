"""The offline bundle: every pinned dependency and the appliance as wheels, an installer, checksums.

Built on a machine with a package index (``appliance bundle --out DIR``),
carried to a site without one, installed there by ``DIR/install.sh`` with
``pip --no-index``. Layout::

    install.sh          checks SHA256SUMS, makes the venv, runs lockfile.py
    lockfile.py         the one install routine (appliance/lockfile.py)
    requirements.lock   the composed pins, each installed with --no-deps
    wheels/             one wheel per pin, plus appliance-<version>-py3-none-any.whl
    BUNDLE.json         version, Python, platform, extras, counts
    SHA256SUMS          sha256 of every other file (`sha256sum -c` reads it too)

The wheels are for the building machine's platform and Python; the installer
refuses another Python minor version.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import appliance
from appliance import lockfile
from appliance.errors import InvalidInput

Progress = Callable[[str, int, int], None]
FORMAT = 1
SUMS = "SHA256SUMS"


@dataclass(frozen=True)
class BundleReport:
    path: str
    appliance_version: str
    python: str
    platform: str
    extras: tuple[str, ...]
    wheels: int
    bytes: int
    sha256sums: str  # sha256 of SHA256SUMS itself: write it down, compare it at the site


def locks_dir() -> Path:
    """The lock files: ``appliance/_locks`` in the wheel, ``locks/`` in a checkout."""
    pkg = Path(appliance.__file__).parent
    for candidate in (pkg / "_locks", pkg.parent / "locks"):
        if (candidate / f"{lockfile.RUNTIME}.txt").is_file():
            return candidate
    raise FileNotFoundError("the dependency lock (locks/runtime.txt) is not installed")


def _checkout() -> Path | None:
    root = Path(appliance.__file__).parent.parent
    pyproject = root / "pyproject.toml"
    if pyproject.is_file() and 'name = "appliance"' in pyproject.read_text():
        return root
    return None


def _nothing(_stage: str, _done: int, _total: int) -> None:
    return None


def build_bundle(out: Path, *, extras: list[str] | None = None, wheel: Path | None = None,
                 progress: Progress = _nothing) -> BundleReport:
    """Write the bundle to ``out`` (new or empty), through ``out.partial``, renamed when complete."""
    out = out.absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInput(f"{out} exists and is not an empty folder")
    extras = extras or []
    composed = lockfile.compose(locks_dir(), extras)
    if composed.unlocked:
        raise InvalidInput(f"no lock for extra(s) {', '.join(composed.unlocked)}: a bundle holds locked "
                           f"extras only ({', '.join(_locked_extras())})")
    if wheel is not None and not (wheel.is_file() and wheel.name.startswith("appliance-")
                                  and wheel.suffix == ".whl"):
        raise InvalidInput(f"{wheel} is not an appliance wheel file")
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    wheels = partial / "wheels"
    wheels.mkdir(parents=True)
    try:
        lock_path = partial / "requirements.lock"
        lock_path.write_text(
            f"# appliance {appliance.__version__}{' [' + ','.join(extras) + ']' if extras else ''}: "
            "every package install.sh installs, each with pip --no-deps\n" + composed.text())
        _fetch_wheels(lock_path, wheels, len(composed.pins), progress)
        _check_wheels(wheels, composed)
        _appliance_wheel(wheel, wheels, progress)
        shutil.copy2(lockfile.__file__, partial / "lockfile.py")
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        installer = resources.files("appliance").joinpath("install_bundle.sh").read_text()
        (partial / "install.sh").write_text(installer.replace("@PYTHON@", python))
        (partial / "install.sh").chmod(0o755)
        platform = sysconfig.get_platform()
        count = len(composed.pins) + 1
        meta = {"format": FORMAT, "appliance": appliance.__version__, "python": python,
                "platform": platform, "extras": extras,
                "wheels": count, "created_at": dt.datetime.now(dt.UTC).isoformat()}
        (partial / "BUNDLE.json").write_text(json.dumps(meta, indent=2) + "\n")
        progress("checksums", 0, 1)
        digest, size = write_sums(partial)
        progress("checksums", 1, 1)
        if out.exists():
            out.rmdir()
        os.replace(partial, out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return BundleReport(path=str(out), appliance_version=appliance.__version__, python=python,
                        platform=platform, extras=tuple(extras), wheels=count,
                        bytes=size, sha256sums=digest)


def _locked_extras() -> list[str]:
    return sorted(p.stem for p in locks_dir().glob("*.txt") if p.stem != lockfile.RUNTIME)


def _fetch_wheels(lock_path: Path, wheels: Path, total: int, progress: Progress) -> None:
    """``pip wheel --no-deps`` of the lock (downloads wheels, builds any sdist), counted as it goes."""
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels),
           "-r", str(lock_path)]
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.5):
            progress("wheels", len(list(wheels.glob("*.whl"))), total)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    finally:
        done.set()
        watcher.join()
    if proc.returncode != 0:
        raise InvalidInput("pip could not fetch the locked wheels (is a package index reachable?)",
                           detail={"stderr": proc.stderr[-4000:]})
    progress("wheels", total, total)


def _check_wheels(wheels: Path, composed: lockfile.Composed) -> None:
    from packaging.utils import canonicalize_version, parse_wheel_filename

    found: dict[str, list[str]] = {}
    for path in wheels.glob("*.whl"):
        name, version, _build, _tags = parse_wheel_filename(path.name)
        found.setdefault(lockfile.canonical(name), []).append(canonicalize_version(version))
    problems = []
    for pin in composed.pins:
        versions = found.pop(pin.key, [])
        if versions != [canonicalize_version(pin.version)]:
            problems.append(f"{pin}: found {versions or 'no wheel'}")
    problems += [f"{name}: not in the lock" for name in sorted(found)]
    if problems:
        raise InvalidInput("the wheelhouse does not match the lock", detail={"problems": problems})


def _appliance_wheel(wheel: Path | None, wheels: Path, progress: Progress) -> Path:
    """Copy ``wheel`` into the wheelhouse, or build it there from the source checkout."""
    if wheel is not None:
        return Path(shutil.copy2(wheel, wheels / wheel.name))
    root = _checkout()
    if root is None:
        raise InvalidInput("this appliance was installed from a wheel and there is no source checkout "
                           "to build one from: pass --wheel appliance-<version>-py3-none-any.whl")
    progress("appliance wheel", 0, 1)
    with tempfile.TemporaryDirectory(prefix="appliance-wheel-") as tmp:
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                               "--wheel-dir", tmp, str(root)], capture_output=True, text=True)
        built = list(Path(tmp).glob("appliance-*.whl"))
        if proc.returncode != 0 or len(built) != 1:
            raise InvalidInput(f"could not build the appliance wheel from {root}",
                               detail={"stderr": proc.stderr[-4000:]})
        progress("appliance wheel", 1, 1)
        return Path(shutil.move(str(built[0]), wheels / built[0].name))


def write_sums(folder: Path) -> tuple[str, int]:
    """Write SHA256SUMS over every file below ``folder``; (its own sha256, total bytes)."""
    lines = []
    size = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != SUMS):
        lines.append(f"{sha256_file(path)}  {path.relative_to(folder).as_posix()}\n")
        size += path.stat().st_size
    text = "".join(lines)
    (folder / SUMS).write_text(text)
    return hashlib.sha256(text.encode()).hexdigest(), size + len(text)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
