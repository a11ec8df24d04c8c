"""CI, the demo and the container install the same wheel the same way.

Docker cannot run in CI, so the Dockerfile is checked by reading it: it must
build through ``scripts/install-wheel.sh`` like ``scripts/test`` does (or
through an offline bundle's ``install.sh``, which runs the same routine,
``appliance/lockfile.py``), run a real CLI command, keep its writes in /data
and /tmp, and use a Python that ``requires-python`` admits.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = ["scripts/install-wheel.sh", "scripts/test", "scripts/demo", "scripts/lock",
           "scripts/make-upgrade-fixture", ".ci/run", "appliance/install_bundle.sh"]


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        instr, _, args = line.partition(" ")
        out.append((instr.upper(), args.strip()))
    return out


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _shell_lines(path: str) -> list[str]:
    lines = (REPO / path).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def _cli_command_paths() -> set[str]:
    """Every command of the typer app, as 'up', 'datasets list', ..."""
    import typer

    import appliance.cli as cli

    apps = [v for v in vars(cli).values() if isinstance(v, typer.Typer)]
    assert apps, "appliance.cli defines no typer.Typer app"
    root = typer.main.get_command(apps[0])
    paths: set[str] = set()

    # Duck-typed: recent typer versions vendor their own click, so no isinstance on click.Group.
    def walk(cmd: object, prefix: str) -> None:
        for name, sub in (getattr(cmd, "commands", None) or {}).items():
            if getattr(sub, "hidden", False):
                continue
            path = f"{prefix} {name}".strip()
            paths.add(path)
            walk(sub, path)

    walk(root, "")
    return paths


def test_dockerfile_installs_through_the_ci_script() -> None:
    runs = [args for instr, args in _dockerfile() if instr == "RUN"]
    docker_installs = [r for r in runs if "scripts/install-wheel.sh" in r]
    assert len(docker_installs) == 1, runs
    assert re.search(r"scripts/install-wheel\.sh\s+/opt/venv\b", docker_installs[0])
    # Nothing else is pip-installed into the image behind the script's back.
    assert not [r for r in runs if "pip install" in r or "pip3 install" in r]
    ci_installs = [ln for ln in _shell_lines("scripts/test") if "scripts/install-wheel.sh" in ln]
    assert ci_installs == ["./scripts/install-wheel.sh .venv test"]
    demo_installs = [ln for ln in _shell_lines("scripts/demo") if "scripts/install-wheel.sh" in ln]
    assert demo_installs == ["./scripts/install-wheel.sh .venv"]


def test_dockerfile_builds_from_a_bundle_when_one_is_present() -> None:
    instrs = _dockerfile()
    copies = [args.split() for instr, args in instrs if instr == "COPY" and "--from" not in args]
    # A wildcard so the COPY is a no-op without a bundle (BuildKit copies nothing for no match).
    assert ["bundl[e]", "bundle/"] in copies
    (install,) = [args for instr, args in instrs if instr == "RUN" and "/opt/venv" in args]
    assert re.search(r"if \[ -f bundle/install\.sh \]; then sh bundle/install\.sh /opt/venv;", install)
    assert re.search(r"else sh scripts/install-wheel\.sh /opt/venv \"\$EXTRAS\"; fi", install)
    assert "/bundle/" in (REPO / ".gitignore").read_text().splitlines()


def test_bundle_installer_and_ci_script_run_the_same_install_routine() -> None:
    """Both end in `python -I lockfile.py install`: the same pins, pip --no-deps, the same sync."""
    wheel_script = " ".join(_shell_lines("scripts/install-wheel.sh"))
    bundle_script = " ".join(ln.rstrip("\\") for ln in _shell_lines("appliance/install_bundle.sh"))
    assert '"$py" -I "$root/appliance/lockfile.py" install --quiet --locks "$root/locks"' in wheel_script
    assert re.search(r'"\$venv/bin/python" -I "\$here/lockfile\.py" install --lock "\$here/requirements\.lock"\s+'
                     r'--find-links "\$here/wheels" --wheel "\$wheel"', bundle_script), bundle_script
    # The checksums are checked before the venv is made or anything from the bundle runs.
    text = (REPO / "appliance" / "install_bundle.sh").read_text()
    assert text.index("SHA256SUMS") < text.index('-m venv') < text.index("lockfile.py\" install")


def test_dockerfile_keeps_writes_in_data_and_tmp() -> None:
    env: dict[str, str] = {}
    for instr, args in _dockerfile():
        if instr == "ENV":
            for word in shlex.split(args):
                key, _, value = word.partition("=")
                env[key] = value
    for key in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "MPLCONFIGDIR", "NUMBA_CACHE_DIR", "TMPDIR"):
        assert env[key] == "/tmp" or env[key].startswith("/tmp/"), (key, env[key])
    assert env["APPLIANCE_HOME"] == "/data"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # the venv is read-only at run time
    assert env["HOME"] == "/home/appliance"  # read-only under --read-only: nothing writes there
    # No phone-home: Streamlit's telemetry and start-up IP lookups, Hugging Face if ever installed.
    assert env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"
    assert env["STREAMLIT_LOGGER_HIDE_WELCOME_MESSAGE"] == "true"
    assert env["STREAMLIT_SERVER_HEADLESS"] == "true"
    assert env["HF_HUB_OFFLINE"] == "1" and env["HF_HUB_DISABLE_TELEMETRY"] == "1"
    docs = (REPO / "docs" / "operations.md").read_text()
    assert "docker run --read-only --tmpfs /tmp" in " ".join(docs.split())


def test_dockerfile_builder_copies_every_wheel_input() -> None:
    copied: set[str] = set()
    for instr, args in _dockerfile():
        if instr == "COPY" and "--from" not in args:
            *sources, _dest = args.split()
            copied.update(s.rstrip("/") for s in sources)
    project = _pyproject()
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = {"pyproject.toml", project["project"]["readme"], "scripts"}
    needed |= set(wheel.get("packages", []))
    needed |= {src.rstrip("/") for src in wheel.get("force-include", {})}
    assert needed <= copied, f"Dockerfile does not COPY {sorted(needed - copied)}"


def test_dockerfile_runs_appliance_up_as_non_root() -> None:
    instrs = _dockerfile()
    entry = [args for instr, args in instrs if instr == "ENTRYPOINT"]
    assert len(entry) == 1
    assert json.loads(entry[0]) == ["appliance", "up"]
    users = [args for instr, args in instrs if instr == "USER"]
    assert users and users[-1] == "appliance"
    healthchecks = [args for instr, args in instrs if instr == "HEALTHCHECK"]
    assert healthchecks and "/healthz" in healthchecks[0]
    assert any(instr == "VOLUME" and "/data" in args for instr, args in instrs)


def test_cli_has_the_commands_the_scripts_run() -> None:
    paths = _cli_command_paths()
    assert "up" in paths  # Dockerfile ENTRYPOINT and scripts/demo
    assert "serve" in paths


def test_python_versions_match_requires_python() -> None:
    from packaging.specifiers import SpecifierSet

    spec = SpecifierSet(_pyproject()["project"]["requires-python"])
    images = [args.split()[0] for instr, args in _dockerfile() if instr == "FROM"]
    versions = {m.group(1) for img in images if (m := re.match(r"python:(\d+\.\d+)", img))}
    assert len(versions) == 1 and len(images) == 2, images
    (docker_py,) = versions
    assert spec.contains(f"{docker_py}.0"), (docker_py, str(spec))
    # The scripts' preferred interpreter is the image's.
    script = (REPO / "scripts" / "install-wheel.sh").read_text()
    assert set(re.findall(r"python(\d+\.\d+)", script)) == {docker_py}


def test_ci_run_execs_scripts_test() -> None:
    text = (REPO / ".ci" / "run").read_text()
    assert text.startswith("#!/bin/sh\n")
    lines = _shell_lines(".ci/run")
    assert "set -eu" in lines
    assert lines[-1] == "exec ./scripts/test"


@pytest.mark.parametrize("path", SCRIPTS)
def test_scripts_are_executable_posix_sh(path: str) -> None:
    file = REPO / path
    assert file.read_text().startswith("#!/bin/sh\n")
    assert "set -eu" in _shell_lines(path)
    assert file.stat().st_mode & stat.S_IXUSR, f"chmod +x {path}"
    subprocess.run(["sh", "-n", str(file)], check=True)


def _readme_commands() -> list[str]:
    """Shell commands in README code blocks, in order, without trailing comments."""
    commands: list[str] = []
    in_block = False
    for line in (REPO / "README.md").read_text().splitlines():
        if line.strip().startswith("```"):
            in_block = not in_block
            continue
        if in_block and line.strip() and not line.strip().startswith("#"):
            commands.append(line.split(" #")[0].strip())
    return commands


def test_readme_leads_with_demo_then_test() -> None:
    assert _readme_commands()[:2] == ["./scripts/demo", "./scripts/test"]


def test_tests_import_the_installed_wheel() -> None:
    if not os.environ.get("EXPECT_INSTALLED_APPLIANCE"):
        pytest.skip("set by scripts/test, which installs the wheel first")
    import appliance

    location = Path(appliance.__file__).resolve()
    assert "site-packages" in location.parts, location
    assert not location.is_relative_to(REPO / "appliance"), location


def test_wheel_ships_the_console_and_entry_point(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(REPO)],
        check=True,
        timeout=240,
    )
    (wheel,) = tmp_path.glob("appliance-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        scripts = zf.read(entry_points).decode()
    assert "appliance/_console/Home.py" in names
    assert "appliance/demo.py" in names
    # `init --demo` copies the example jobs from here (pyproject force-include jobs -> _jobs).
    assert "appliance/_jobs/churn.yaml" in names
    # `appliance bundle` from an installed appliance: the lock, the installer and its routine.
    assert {"appliance/_locks/runtime.txt", "appliance/_locks/gpu.txt", "appliance/install_bundle.sh",
            "appliance/lockfile.py"} <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    assert re.search(r"^appliance\s*=\s*appliance\.cli:main$", scripts, re.M), scripts

