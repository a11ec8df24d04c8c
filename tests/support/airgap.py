"""Run the offline tour in a network namespace with no route, and read what the watchers saw.

Two watchers, because neither sees everything:

- strace follows every process of the tour (``-f``) and logs each
  ``connect``/``sendto``/``sendmsg`` system call: native code too (DuckDB's
  HTTP client, onnxruntime, anything spawned), and a DNS lookup is a connect
  or sendto to a resolver. ``--seccomp-bpf`` stops the tracee only on those
  calls, so the tour runs at nearly full speed.
- an audit hook (tests/support/netguard/sitecustomize.py, on PYTHONPATH) in
  every Python process names the Python stack of a non-loopback attempt, and
  records writes outside the home and the temp folder: the container's
  read-only rule, checked without a container engine. The venv, the Python
  install, the checkout and HOME are also bind-mounted read-only in the
  namespace, so a native write there fails loudly.

Inside the namespace only ``lo`` exists (brought up first). The driver's
first act is a connect to 192.0.2.1 (TEST-NET-1): the positive control, which
both watchers must report and which must fail with "network unreachable".
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUPPORT = Path(__file__).resolve().parent
REPO = SUPPORT.parents[1]
PROBE = "192.0.2.1"
_ADDR = re.compile(r'sa_family=AF_INET6?, [^}]*?(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")')


@dataclass(frozen=True)
class AirgapRun:
    returncode: int
    result: dict[str, Any]  # what offline_tour.py wrote
    connects: list[tuple[str, str]]  # (address, strace line) for every non-loopback INET target
    guard: list[dict[str, Any]]  # the audit hook's lines
    output: str

    def net_events(self) -> list[dict[str, Any]]:
        return [g for g in self.guard if g["kind"] == "net"]

    def writes(self) -> list[dict[str, Any]]:
        return [g for g in self.guard if g["kind"] == "write"]

    def started(self) -> list[str]:
        return [" ".join(g["argv"]) for g in self.guard if g["kind"] == "start"]


def refusal() -> str | None:
    """Why an airgapped run cannot happen here, or None."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    for tool in ("unshare", "mount", "ip", "strace"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (util-linux, iproute2, strace)"
    probe = subprocess.run(["unshare", "-n", "-m", "sh", "-c", "ip link set lo up && mount --bind / /mnt"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        return f"the kernel refused a network/mount namespace: {probe.stderr.strip() or probe.returncode}"
    return None


def dockerfile_env(home: Path, tmp: Path, read_only_home: Path) -> dict[str, str]:
    """The image's ENV, with /data -> home, /tmp -> tmp and HOME -> a read-only folder."""
    env: dict[str, str] = {}
    pending = ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.upper().startswith("ENV "):
            for word in shlex.split(line[4:]):
                key, _, value = word.partition("=")
                env[key] = value
    env.pop("PATH", None)
    for key, value in env.items():
        value = re.sub(r"^/data(?=/|$)", str(home), value)
        env[key] = re.sub(r"^/tmp(?=/|$)", str(tmp), value)
    env["HOME"] = str(read_only_home)
    return env


def run_tour(*, appliance: Path, python: Path, work: Path, read_only: list[Path],
             timeout: float = 900) -> AirgapRun:
    """offline_tour.py with ``python`` (its httpx) driving ``appliance`` (a console script)."""
    home, tmp, ro_home = work / "home", work / "tmp", work / "ro-home"
    for d in (home, tmp, ro_home):
        d.mkdir(parents=True, exist_ok=True)
    guard_log, strace_log, result = work / "guard.jsonl", work / "strace.log", work / "result.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APPLIANCE_", "PYTHON"))}
    env.update(dockerfile_env(home, tmp, ro_home))
    env.update({"PYTHONPATH": str(SUPPORT / "netguard"), "PYTHONDONTWRITEBYTECODE": "1",
                "APPLIANCE_GUARD_LOG": str(guard_log),
                "APPLIANCE_GUARD_WRITABLE": os.pathsep.join([str(work), str(tmp)])})
    mounts = sorted({str(p.resolve()) for p in [*read_only, ro_home] if p.exists()}, key=len)
    # The probe is written by the driver before `up` starts; guard_log lives in `work` (writable).
    script = "\n".join([
        "set -eu",
        "ip link set lo up",
        *[f"mount --bind {shlex.quote(m)} {shlex.quote(m)} && mount -o remount,ro,bind {shlex.quote(m)}"
          for m in mounts],
        "exec strace -f --seccomp-bpf -qq -e trace=connect,sendto,sendmsg,sendmmsg -e signal=none "
        f"-o {shlex.quote(str(strace_log))} "
        + shlex.join([str(python), str(SUPPORT / "offline_tour.py"), "--appliance", str(appliance),
                      "--home", str(home), "--out", str(result)]),
    ])
    proc = subprocess.run(["unshare", "-n", "-m", "sh", "-c", script], env=env, capture_output=True,
                          text=True, timeout=timeout, cwd=work)
    return AirgapRun(
        returncode=proc.returncode,
        result=json.loads(result.read_text()) if result.exists() else {},
        connects=non_loopback_connects(strace_log.read_text() if strace_log.exists() else ""),
        guard=[json.loads(ln) for ln in guard_log.read_text().splitlines()] if guard_log.exists() else [],
        output=proc.stdout[-3000:] + proc.stderr[-3000:],
    )


def non_loopback_connects(strace_text: str) -> list[tuple[str, str]]:
    out = []
    for line in strace_text.splitlines():
        for m in _ADDR.finditer(line):
            address = m.group(1) or m.group(2)
            ip = ipaddress.ip_address(address)
            if not (ip.is_loopback or ip.is_unspecified):
                out.append((address, line.strip()[:300]))
    return out
