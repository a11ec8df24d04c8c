"""The dependency lock: read it, compose it for a set of extras, and install through it.

``locks/`` (shipped in the wheel as ``appliance/_locks``) holds one pinned file
per group, written by ``scripts/lock`` from pyproject.toml: ``runtime.txt``
and one file per locked extra (``test.txt``, ``gpu.txt``) with the pins that
extra adds. An extra's file may start with ``# replaces: NAME`` lines: the
GPU variant replaces ``xgboost-cpu`` with ``xgboost`` (same import name).

Every pinned package is installed with ``pip --no-deps``, so what is not in
the lock is not installed; that is how the requirements of alibi-detect that
no code path of ours imports stay out (pyproject's ``[tool.appliance.lock]``).

This file is the one install routine: ``scripts/install-wheel.sh`` (CI, the
demo, the Dockerfile without a bundle) and a bundle's ``install.sh`` both run
it by path with the target venv's interpreter (``python -I lockfile.py
install ...``), so it uses the standard library only and imports nothing
from the package.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

RUNTIME = "runtime"
# Tooling of the venv itself: never removed by a sync.
_TOOLING = frozenset({"pip", "setuptools", "wheel", "appliance"})
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*(?:#.*)?$")


def canonical(name: str) -> str:
    """PEP 503 normalised name: ``Foo_Bar.baz`` -> ``foo-bar-baz``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    name: str
    version: str

    @property
    def key(self) -> str:
        return canonical(self.name)

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass(frozen=True)
class LockFile:
    pins: tuple[Pin, ...]
    replaces: tuple[str, ...]


@dataclass(frozen=True)
class Composed:
    """The pins to install for a set of extras, and the extras no lock covers."""

    pins: tuple[Pin, ...]
    unlocked: tuple[str, ...]

    def text(self) -> str:
        return "".join(f"{p}\n" for p in self.pins)


def read_lock(path: Path) -> LockFile:
    pins: list[Pin] = []
    replaces: list[str] = []
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if line.startswith("# replaces:"):
            replaces += line.split(":", 1)[1].split()
            continue
        if not line or line.startswith("#"):
            continue
        m = _PIN.match(line)
        if not m:
            raise ValueError(f"{path}:{n}: not a NAME==VERSION pin: {line!r}")
        pins.append(Pin(m.group(1), m.group(2)))
    return LockFile(tuple(pins), tuple(canonical(r) for r in replaces))


def parse_extras(extras: str) -> list[str]:
    return [e.strip() for e in extras.split(",") if e.strip()]


def compose(lock_dir: Path, extras: list[str]) -> Composed:
    """runtime.txt, minus what a requested extra replaces, plus each locked extra's pins."""
    base = read_lock(lock_dir / f"{RUNTIME}.txt")
    added: list[Pin] = []
    dropped: set[str] = set()
    unlocked: list[str] = []
    for extra in extras:
        path = lock_dir / f"{extra}.txt"
        if extra == RUNTIME or not path.is_file():
            unlocked.append(extra)
            continue
        lock = read_lock(path)
        added += lock.pins
        dropped |= set(lock.replaces)
    by_key: dict[str, Pin] = {}
    for pin in [p for p in base.pins if p.key not in dropped] + added:
        seen = by_key.get(pin.key)
        if seen is not None and seen.version != pin.version:
            raise ValueError(f"the locks disagree on {pin.name}: {seen.version} and {pin.version}")
        by_key[pin.key] = pin
    return Composed(tuple(sorted(by_key.values(), key=lambda p: p.key)), tuple(unlocked))


# -- installing (runs inside the target venv's interpreter) -----------------


def _installed() -> dict[str, md.Distribution]:
    out: dict[str, md.Distribution] = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name:
            out.setdefault(canonical(name), dist)
    return out


def _files_missing(dist: md.Distribution) -> bool:
    for f in dist.files or []:
        if "__pycache__" in f.parts:
            continue
        if not Path(str(dist.locate_file(f))).exists():
            return True
    return False


def _pip(args: list[str], *, offline: bool, quiet: bool) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    if quiet:
        cmd.insert(3, "--quiet")
    env = dict(os.environ)
    if offline:
        # No pip.conf, no PIP_* variables: nothing but the bundle's wheels.
        env = {k: v for k, v in env.items() if not k.startswith("PIP_")}
        env["PIP_CONFIG_FILE"] = os.devnull
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    subprocess.run(cmd, check=True, env=env)


def install(composed: Composed, wheel: Path, *, find_links: Path | None = None, quiet: bool = False) -> None:
    """Make this interpreter's environment hold exactly the lock, then the appliance wheel.

    Packages the lock does not list are removed first (a package that shares
    files with a locked one, like ``xgboost`` and ``xgboost-cpu``, would
    otherwise break it on removal); a locked package whose files went
    missing is reinstalled. With ``find_links`` nothing but that folder is
    read (``--no-index``).
    """
    offline = find_links is not None
    source = ["--no-index", "--find-links", str(find_links)] if offline else []
    wanted = {p.key: p for p in composed.pins}
    stray = sorted(k for k in _installed() if k not in wanted and k not in _TOOLING)
    if stray:
        _say(f"removing {len(stray)} packages the lock does not list: {', '.join(stray)}")
        _pip(["uninstall", "--yes", *stray], offline=offline, quiet=quiet)
    lock_file = Path(sys.prefix) / "appliance-lock.txt"  # what this venv was installed from
    lock_file.write_text(composed.text())
    _say(f"installing {len(composed.pins)} pinned packages (--no-deps)")
    _pip(["install", "--no-deps", *source, "-r", str(lock_file)], offline=offline, quiet=quiet)
    present = _installed()
    broken = [str(p) for k, p in wanted.items() if k in present and _files_missing(present[k])]
    if broken:
        _say(f"reinstalling {len(broken)} packages with missing files")
        _pip(["install", "--no-deps", "--force-reinstall", *source, *broken], offline=offline, quiet=quiet)
    if "appliance" in present:  # a wheel of the same version would be skipped, not replaced
        _pip(["uninstall", "--yes", "appliance"], offline=offline, quiet=True)
    _pip(["install", "--no-deps", *source, str(wheel)], offline=offline, quiet=quiet)
    if composed.unlocked:
        extras = ",".join(composed.unlocked)
        _say(f"installing unlocked extras [{extras}] with pip's resolver, constrained by the lock")
        _pip(["install", *source, "-c", str(lock_file), f"{wheel}[{extras}]"], offline=offline, quiet=quiet)
    check(composed)


def check(composed: Composed) -> None:
    """Every pin installed at its exact version, or SystemExit naming the ones that are not."""
    present = _installed()
    wrong = [f"{p} (found {present[p.key].version if p.key in present else 'nothing'})"
             for p in composed.pins if p.key not in present or present[p.key].version != p.version]
    if wrong:
        raise SystemExit("lockfile: installed packages do not match the lock: " + "; ".join(wrong))


def _say(msg: str) -> None:
    print(f"lockfile: {msg}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lockfile.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("compose", "install"):
        p = sub.add_parser(name)
        src = p.add_mutually_exclusive_group(required=True)
        src.add_argument("--locks", type=Path, help="folder of lock files (with --extras)")
        src.add_argument("--lock", type=Path, help="one composed lock file")
        p.add_argument("--extras", default="", help="comma-separated extras")
        if name == "install":
            p.add_argument("--wheel", type=Path, required=True)
            p.add_argument("--find-links", type=Path, help="offline: install only from this folder")
            p.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.locks is not None:
        composed = compose(args.locks, parse_extras(args.extras))
    else:
        composed = Composed(read_lock(args.lock).pins, tuple(parse_extras(args.extras)))
    if args.command == "compose":
        sys.stdout.write(composed.text())
        if composed.unlocked:
            _say(f"no lock for extras: {', '.join(composed.unlocked)}")
        return 0
    install(composed, args.wheel, find_links=args.find_links, quiet=args.quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
