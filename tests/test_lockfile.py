"""The dependency lock: in step with pyproject.toml, composed per extra, and what is installed."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from appliance.lockfile import Composed, Pin, compose, read_lock

REPO = Path(__file__).resolve().parents[1]
LOCKS = REPO / "locks"


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _config() -> dict:
    return _project()["tool"]["appliance"]["lock"]


def _pins(extras: list[str]) -> dict[str, str]:
    return {p.key: p.version for p in compose(LOCKS, extras).pins}


def _applies(req: Requirement) -> bool:
    return req.marker is None or req.marker.evaluate({**default_environment(), "extra": ""})


@pytest.mark.parametrize("group", ["runtime", "test", "gpu"])
def test_lock_satisfies_every_requirement_of_pyproject(group: str) -> None:
    """Fails after a dependency is added or bumped in pyproject.toml until scripts/lock is run."""
    project = _project()["project"]
    extras = [] if group == "runtime" else [group]
    requirements = project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]
    pins = _pins(extras)
    replaced = {canonicalize_name(r) for e in extras for r in _config().get("replaces", {}).get(e, [])}
    for raw in requirements:
        req = Requirement(raw)
        name = canonicalize_name(req.name)
        if not _applies(req) or name in replaced:
            continue
        assert name in pins, f"{req} is not in the lock: run scripts/lock"
        assert req.specifier.contains(Version(pins[name]), prereleases=True), \
            f"{req} does not admit the locked {name}=={pins[name]}: run scripts/lock"


def test_lock_has_one_file_per_locked_extra_and_leaves_the_pruned_packages_out() -> None:
    assert sorted(p.stem for p in LOCKS.glob("*.txt")) == sorted(["runtime", *_config()["extras"]])
    pruned = {canonicalize_name(n) for names in _config()["prune"].values() for n in names}
    runtime = _pins([])
    still_needed = {"pillow", "requests"}  # streamlit requires them itself
    assert not (pruned - still_needed) & set(runtime)
    for heavy in ("transformers", "numba", "llvmlite", "opencv-python", "scikit-image", "matplotlib",
                  "tokenizers", "huggingface-hub", "pydeck", "nvidia-nccl-cu12", "xgboost"):
        assert heavy not in runtime, heavy
    assert "xgboost-cpu" in runtime


def test_compose_gpu_replaces_the_cpu_xgboost_wheel() -> None:
    gpu = _pins(["gpu"])
    assert "xgboost-cpu" not in gpu and "xgboost" in gpu and "nvidia-nccl-cu12" in gpu
    assert gpu["xgboost"] == _pins([])["xgboost-cpu"]


def test_compose_names_the_extras_no_lock_covers(tmp_path: Path) -> None:
    out = compose(LOCKS, ["test", "bench"])
    assert out.unlocked == ("bench",)
    assert set(_pins([])) < {p.key for p in out.pins}


def test_compose_refuses_locks_that_disagree(tmp_path: Path) -> None:
    (tmp_path / "runtime.txt").write_text("numpy==1.26.4\n")
    (tmp_path / "extra.txt").write_text("NumPy==2.0.0\n")
    with pytest.raises(ValueError, match="disagree on NumPy"):
        compose(tmp_path, ["extra"])


@pytest.mark.parametrize("line", ["numpy>=1.26", "numpy", "-e .", "numpy==1.26 ; python_version<'3'",
                                  "--index-url http://evil.example/simple"])
def test_read_lock_refuses_anything_but_exact_pins(tmp_path: Path, line: str) -> None:
    (tmp_path / "runtime.txt").write_text(f"# a comment\n{line}\n")
    with pytest.raises(ValueError, match=r"runtime\.txt:2: not a NAME==VERSION pin"):
        read_lock(tmp_path / "runtime.txt")


def test_compose_text_is_a_requirements_file_of_sorted_pins() -> None:
    out = Composed((Pin("b", "2"), Pin("A", "1")), ())
    assert out.text() == "b==2\nA==1\n"
    assert list(compose(LOCKS, []).pins) == sorted(compose(LOCKS, []).pins, key=lambda p: p.key)


def test_lockfile_runs_by_path_without_the_package(tmp_path: Path) -> None:
    """install.sh and install-wheel.sh run it as a file (python -I), before the appliance is installed."""
    out = subprocess.run([sys.executable, "-I", str(REPO / "appliance" / "lockfile.py"), "compose",
                          "--locks", str(LOCKS), "--extras", "gpu"], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    assert out.stdout == compose(LOCKS, ["gpu"]).text()


def test_installed_environment_is_exactly_the_lock() -> None:
    """Under scripts/test the suite runs in the locked install: the pruned packages are absent."""
    if not os.environ.get("EXPECT_INSTALLED_APPLIANCE"):
        pytest.skip("set by scripts/test, which installs through the lock")
    composed = compose(LOCKS, ["test"])
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in md.distributions()}
    for pin in composed.pins:
        assert installed.get(pin.key) == pin.version, pin
    extra = set(installed) - {p.key for p in composed.pins} - {"pip", "setuptools", "wheel", "appliance"}
    assert extra == set()
