"""Running the notebook script, and a real ``mlflow server``, for the MLflow tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

NOTEBOOK = Path(__file__).with_name("notebook.py")


def run_notebook(url: str, *flags: str, token: str | None, cwd: Path,
                 timeout: float = 300) -> dict[str, Any]:
    """The notebook script in a fresh interpreter (the client keeps global state), with
    the environment a user sets: MLFLOW_TRACKING_URI's value and MLFLOW_TRACKING_TOKEN."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # an error answers at once
    proc = subprocess.run([sys.executable, str(NOTEBOOK), url, *flags], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-6000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("SUMMARY ")][-1]
    return dict(json.loads(line.removeprefix("SUMMARY ")))


@contextmanager
def mlflow_server(home: Path, port: int) -> Iterator[str]:
    """A real ``mlflow server`` on SQLite serving artifacts, on a loopback port."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log = (home / "mlflow.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{home / 'mlflow.db'}", "--serve-artifacts",
         "--artifacts-destination", str(home / "artifacts"), "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert proc.poll() is None, (home / "mlflow.log").read_text()[-3000:]
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
