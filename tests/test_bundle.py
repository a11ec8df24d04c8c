"""The offline bundle: built from the lock, checked before anything installs, installed with no network.

The fast tests tamper with a small bundle-shaped folder (install.sh from the
package's template, SHA256SUMS written by ``appliance.bundle.write_sums``)
and show install.sh refuses it before it makes a venv. The slow test builds
the real bundle (needs the package index, like CI), installs it into a fresh
venv inside a network namespace with ``--no-index``, and runs the offline
tour from that install: `./scripts/test -m slow tests/test_bundle.py`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
from airgap import PROBE, REPO, refusal, run_tour
from typer.testing import CliRunner

from appliance.bundle import SUMS, write_sums
from appliance.cli import app

PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def _bundle_shape(folder: Path) -> Path:
    (folder / "wheels").mkdir(parents=True)
    installer = resources.files("appliance").joinpath("install_bundle.sh").read_text()
    (folder / "install.sh").write_text(installer.replace("@PYTHON@", PYTHON))
    (folder / "wheels" / "appliance-0.0.0-py3-none-any.whl").write_bytes(b"not really a wheel")
    (folder / "requirements.lock").write_text("numpy==1.26.4\n")
    write_sums(folder)
    return folder


def _install(bundle: Path, venv: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(bundle / "install.sh"), str(venv)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHON": sys.executable})


def test_sums_list_every_file_in_sha256sum_format(tmp_path: Path) -> None:
    bundle = _bundle_shape(tmp_path / "b")
    lines = (bundle / SUMS).read_text().splitlines()
    assert sorted(line.split("  ", 1)[1] for line in lines) == [
        "install.sh", "requirements.lock", "wheels/appliance-0.0.0-py3-none-any.whl"]
    check = subprocess.run(["sha256sum", "--strict", "-c", SUMS], cwd=bundle, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize(("tamper", "problem"), [
    (lambda b: (b / "requirements.lock").write_text("numpy==1.26.4\nevil==6.6.6\n"),
     "requirements.lock: checksum does not match"),
    (lambda b: (b / "wheels" / "evil-1.0-py3-none-any.whl").write_bytes(b"PK"),
     "wheels/evil-1.0-py3-none-any.whl: not in SHA256SUMS"),
    (lambda b: (b / "wheels" / "appliance-0.0.0-py3-none-any.whl").unlink(),
     "wheels/appliance-0.0.0-py3-none-any.whl: missing"),
    (lambda b: (b / "wheels" / "link.whl").symlink_to("/etc/passwd"), "wheels/link.whl: a link"),
    (lambda b: (b / SUMS).write_text((b / SUMS).read_text() + f"{'0' * 64}  ../outside\n"),
     "SHA256SUMS line 4 is malformed"),
])
def test_install_refuses_a_changed_bundle_before_making_a_venv(tmp_path: Path, tamper, problem: str) -> None:
    bundle = _bundle_shape(tmp_path / "b")
    tamper(bundle)
    out = _install(bundle, tmp_path / "venv")
    assert out.returncode != 0
    assert problem in out.stderr, out.stderr
    assert not (tmp_path / "venv").exists()


def test_install_refuses_another_python(tmp_path: Path) -> None:
    bundle = _bundle_shape(tmp_path / "b")
    (bundle / "install.sh").write_text((bundle / "install.sh").read_text().replace(f"want={PYTHON}", "want=2.7"))
    write_sums(bundle)
    out = _install(bundle, tmp_path / "venv")
    assert out.returncode == 1 and "the wheels are for Python 2.7" in out.stderr
    assert not (tmp_path / "venv").exists()


def test_bundle_refuses_a_non_empty_destination_and_unlocked_extras(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    out = CliRunner().invoke(app, ["bundle", "--out", str(tmp_path / "full")])
    assert out.exit_code == 2 and "not an empty folder" in out.output
    out = CliRunner().invoke(app, ["bundle", "--out", str(tmp_path / "b"), "--extras", "bench"])
    assert out.exit_code == 2 and "no lock for extra(s) bench" in " ".join(out.output.split())
    assert not (tmp_path / "b").exists()
    out = CliRunner().invoke(app, ["bundle", "--out", str(tmp_path / "b"), "--wheel", str(tmp_path / "full" / "x")])
    assert out.exit_code == 2 and "is not an appliance wheel file" in out.output


@pytest.mark.slow
def test_bundle_installs_with_no_network_and_runs_the_tour(tmp_path: Path) -> None:
    reason = refusal()
    if reason:
        pytest.skip(reason)
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dist), str(REPO)],
                   check=True, timeout=300)
    (wheel,) = dist.glob("appliance-*.whl")
    bundle = tmp_path / "bundle"
    built = CliRunner().invoke(app, ["bundle", "--out", str(bundle), "--wheel", str(wheel), "--json"])
    assert built.exit_code == 0, built.output
    report = json.loads(built.stdout)
    assert report["extras"] == [] and report["python"] == PYTHON
    lock = (bundle / "requirements.lock").read_text()
    assert "xgboost-cpu==" in lock and "transformers" not in lock and "pytest" not in lock
    assert "distributed==" in lock and "dask==" in lock   # training on Dask installs offline too

    venv = tmp_path / "venv"
    install = subprocess.run(
        ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec sh "$0" "$1"', str(bundle / "install.sh"),
         str(venv)], capture_output=True, text=True, timeout=900,
        env={k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON"))})
    assert install.returncode == 0, install.stderr[-4000:]
    assert "files match SHA256SUMS" in install.stderr
    assert "Looking in links" in install.stdout and "Downloading" not in install.stdout

    run = run_tour(appliance=venv / "bin" / "appliance", python=venv / "bin" / "python", work=tmp_path / "tour",
                   read_only=[venv, Path(sys.base_prefix), REPO, bundle])
    assert run.returncode == 0 and run.result.get("error") is None, (run.result.get("error"), run.output)
    assert [c for c in run.connects if c[0] != PROBE] == [] and run.writes() == []
