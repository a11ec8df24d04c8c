"""The tour's main steps against `appliance up --demo`, run inside a network namespace.

tests/test_offline.py runs this under ``unshare -n`` (only loopback exists)
and strace; it must not import the appliance (the package under test runs in
its own processes) and talks HTTP with httpx like any client. Steps: a probe
connect to a documentation address (the positive control: the watchers must
see it and it must fail), ``appliance up --demo``, the API and the console
healthy, log in, list datasets (the demo's), drop a file into the inbox,
train on it (XGBoost), predict with the new champion, a CLI command through
the server, and a clean stop. Writes the outcome as JSON to ``--out``.

    python offline_tour.py --appliance VENV/bin/appliance --home HOME --out result.json
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "offline-tour-admin"
PROBE = ("192.0.2.1", 9)  # TEST-NET-1 (RFC 5737): never routed
JOB = """
name: tour
dataset: tour
target: label
model: {kind: xgboost.XGBClassifier, params: {n_estimators: 10, max_depth: 2}}
split: {test_size: 0.25, seed: 1}
metric: roc_auc
promote: {alias: champion, min_delta: 0.0, require_approval: false}
"""


def probe() -> int:
    s = socket.socket()
    s.settimeout(2)
    try:
        return s.connect_ex(PROBE)
    finally:
        s.close()


def tour_csv(n: int = 200) -> bytes:
    rnd = random.Random(5)
    lines = ["x1,x2,color,label"]
    for _ in range(n):
        x1, x2 = rnd.gauss(0, 1), rnd.gauss(0, 1)
        color = rnd.choice(["red", "green", "blue"])
        lines.append(f"{x1:.4f},{x2:.4f},{color},{int(x1 + 0.5 * x2 + rnd.gauss(0, 0.5) > 0)}")
    return ("\n".join(lines) + "\n").encode()


def wait_until(check: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            out = check()
            if out:
                return out
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


def ok(resp: httpx.Response) -> Any:
    assert resp.status_code < 400, f"{resp.request.method} {resp.request.url}: {resp.status_code} {resp.text[:400]}"
    return resp.json()


def run_tour(args: argparse.Namespace, steps: dict[str, float], up: subprocess.Popen[bytes]) -> None:
    t0 = time.monotonic()
    api = f"http://127.0.0.1:{args.api_port}"
    console = f"http://127.0.0.1:{args.console_port}"

    def mark(step: str) -> None:
        steps[step] = round(time.monotonic() - t0, 2)

    def serving() -> Any:
        assert up.poll() is None, f"appliance up exited with {up.returncode}"
        return httpx.get(api + "/healthz", timeout=2).json().get("status") == "ok"

    wait_until(serving, "the API", 240)
    mark("api_healthy")
    wait_until(lambda: httpx.get(console + "/_stcore/health", timeout=2).text.strip() == "ok", "the console", 180)
    assert "<html" in httpx.get(console + "/", timeout=5).text.lower()
    mark("console_healthy")
    with httpx.Client(base_url=api, timeout=120) as c:
        token = ok(c.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD}))
        c.headers["Authorization"] = f"Bearer {token['access_token']}"
        mark("login")
        wait_until(lambda: any(d["name"] == "customers" for d in ok(c.get("/api/v1/datasets"))),
                   "the demo dataset", 180)
        mark("list_datasets")
        folder = Path(args.home) / "inbox" / "tour"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".tour.csv.part").write_bytes(tour_csv())
        os.rename(folder / ".tour.csv.part", folder / "tour.csv")
        wait_until(lambda: ok(c.get("/api/v1/datasets")) and any(
            d["name"] == "tour" and d["current_version"] == 1 for d in ok(c.get("/api/v1/datasets"))),
            "the dropped file", 120)
        mark("drop_file")
        run = ok(c.post("/api/v1/runs", json={"job": JOB}))
        run = wait_until(lambda: (r := ok(c.get(f"/api/v1/runs/{run['id']}")))["status"] in (
            "succeeded", "failed", "interrupted") and r, "training", 300)
        assert run["status"] == "succeeded", run
        mark("train")
        rows = [{"x1": 0.5, "x2": -1.0, "color": "red"}, {"x1": -2.0, "x2": 0.1, "color": "blue"}]
        out = ok(c.post("/api/v1/models/tour/predict", params={"alias": "champion"}, json=rows))
        assert len(out["predictions"]) == 2, out
        mark("predict")
        cli = subprocess.run([args.appliance, "datasets", "list"], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "APPLIANCE_TOKEN": token["access_token"], "APPLIANCE_HOME": args.home,
                                  "APPLIANCE_PORT": str(args.api_port), "APPLIANCE_HOST": "127.0.0.1"})
        assert cli.returncode == 0 and "tour" in cli.stdout, cli.stdout + cli.stderr
        mark("cli")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appliance", required=True, help="the appliance console script")
    parser.add_argument("--home", required=True)
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument("--console-port", type=int, default=8501)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result: dict[str, Any] = {"probe_errno": probe(), "steps": {}, "error": None}
    env = {**os.environ, "APPLIANCE_HOME": args.home, "APPLIANCE_PORT": str(args.api_port),
           "APPLIANCE_CONSOLE_PORT": str(args.console_port), "APPLIANCE_ADMIN_PASSWORD": PASSWORD,
           "APPLIANCE_INBOX_POLL_SECONDS": "0.5", "APPLIANCE_LOG_LEVEL": "warning"}
    log = Path(args.home).parent / "up.log"
    with log.open("wb") as fh:
        up = subprocess.Popen([args.appliance, "up", "--demo"], env=env, stdout=fh, stderr=subprocess.STDOUT)
    t0 = time.monotonic()
    try:
        run_tour(args, result["steps"], up)
    except Exception:
        result["error"] = traceback.format_exc()
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            result["up_exit"] = up.wait(90)
        except subprocess.TimeoutExpired:
            up.kill()
            result["up_exit"] = f"killed after 90 s: {up.wait()}"
        result["seconds"] = round(time.monotonic() - t0, 1)
        result["up_log_tail"] = log.read_text(errors="replace")[-4000:]
        args.out.write_text(json.dumps(result, indent=2))
    return 0 if result["error"] is None and result["up_exit"] == 0 and result["probe_errno"] in (
        errno.ENETUNREACH, errno.EHOSTUNREACH) else 1


if __name__ == "__main__":
    sys.exit(main())
