"""What the serving benchmarks share (``bench/serving.py``, ``bench/v2.py``): the data,
the model trained by the appliance's own training core, server processes, lean HTTP
clients (kept-alive or a new connection per request), timed targets, peak memory.

Imported by the sibling scripts as ``_serving_kit``; not a package and not a test.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

N_FEATURES = 20
SEED = 7
MODEL = "bench"
KIND = "xgboost.XGBClassifier"
PARAMS = {"n_estimators": 100, "max_depth": 6}
JOB = {
    "name": "bench",
    "dataset": "bench",
    "target": "label",
    "model": {"kind": KIND, "params": PARAMS},
    "split": {"test_size": 0.2, "seed": SEED},
    "metric": "roc_auc",
}
BIN = Path(sys.executable).parent

console = Console()


# -- data and models ---------------------------------------------------------------


def make_frame(rows: int, *, seed: int = 0) -> Any:
    """20 float columns (4 decimals, so JSON bodies stay short) and a 0/1 label."""
    import polars as pl

    rng = np.random.default_rng(seed)
    X = np.round(rng.standard_normal((rows, N_FEATURES)), 4)
    w = rng.standard_normal(N_FEATURES)
    logit = 0.6 * (X @ w) + X[:, 0] * X[:, 1] - 0.5 * np.abs(X[:, 2]) + 0.3
    label = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    cols: dict[str, Any] = {f"f{i:02d}": X[:, i] for i in range(N_FEATURES)}
    cols["label"] = label
    return pl.DataFrame(cols)


def train_ours(parquet: Path, out_dir: Path) -> dict[str, Any]:
    """The appliance's training core on the Parquet file: the result dict, model.onnx included."""
    from appliance.train.child.run import run_job

    result = run_job({"job": JOB, "parquet_path": str(parquet), "out_dir": str(out_dir)})
    if not result["ok"]:
        raise RuntimeError(f"training failed: {result['error']}")
    parity = result.get("parity") or {}
    if parity and not parity.get("passed", True):
        raise RuntimeError(f"the ONNX export failed its parity check: {parity}")
    return result


def fit_native(frame: Any) -> tuple[Any, list[Any], Any]:
    """(fitted pipeline, features, holdout row positions): same builder, split, params, seed."""
    from appliance.train.child.pipeline import (
        build_pipeline,
        encode_target,
        prepare_frame,
        select_features,
        split_rows,
    )
    from appliance.train.estimators import CLASSIFICATION, make_estimator, resolve

    info = resolve(KIND)
    features, _ = select_features(dict(frame.schema), target="label", include=None, exclude=None)
    y, _ = encode_target(frame["label"].to_numpy(), CLASSIFICATION)
    train_idx, test_idx = split_rows(y, CLASSIFICATION, test_size=0.2, seed=SEED)
    X = prepare_frame(frame, features)
    pipeline = build_pipeline(info, make_estimator(info, dict(PARAMS), seed=SEED), features)
    pipeline.fit(X.iloc[train_idx], y[train_idx])
    return pipeline, features, test_idx


def save_mlflow(pipeline: Any, sample: Any, path: Path) -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    import logging

    import mlflow
    from mlflow.models import infer_signature

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    signature = infer_signature(sample, pipeline.predict(sample))
    # explicit requirements: inferring them starts a subprocess and is not what we time
    # MLflow 3 saves with skops and refuses types it does not know unless they are named
    mlflow.sklearn.save_model(pipeline, str(path), signature=signature,
                              pip_requirements=["scikit-learn", "xgboost", "pandas"],
                              skops_trusted_types=["numpy.dtype", "xgboost.core.Booster",
                                                   "xgboost.sklearn.XGBClassifier"])


# -- processes ---------------------------------------------------------------------


def bench_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", **extra}


@contextmanager
def process(label: str, cmd: list[str], env: dict[str, str], log_path: Path,
            ready_url: str, timeout_s: float = 180.0) -> Iterator[subprocess.Popen[bytes]]:
    """A server in its own process group; waits for ``ready_url`` to answer 200; stops the group."""
    import httpx

    console.print(f"  starting {label} (log: {log_path})")
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{label} exited ({proc.returncode}):\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(ready_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label} not ready in {timeout_s:.0f} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the group this script started (mlflow's CLI runs uvicorn as a child)."""
    with suppress(ProcessLookupError):   # the group may be gone already
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- measuring -----------------------------------------------------------------------


JSON = {"Content-Type": "application/json"}


@dataclass
class Reply:
    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)  # names in lower case

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class StdlibClient:
    """One keep-alive ``http.client`` connection: a lean client, so that the figures
    measure the servers more than the client (httpx costs ~0.3-1 ms a request here)."""

    def __init__(self, base_url: str, timeout: float = 120) -> None:
        import http.client
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        self._conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port,
                                                timeout=timeout)

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> Reply:
        import http.client

        try:
            self._conn.request("POST", url, body=content, headers=headers)
            resp = self._conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            self._conn.close()  # the server closed an idle keep-alive connection: reconnect
            self._conn.request("POST", url, body=content, headers=headers)
            resp = self._conn.getresponse()
        return Reply(resp.status, resp.read(), {k.lower(): v for k, v in resp.getheaders()})

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> StdlibClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class FreshClient:
    """A new TCP connection for every request (``Connection: close``), as a client without
    a pool (curl in a loop, a serverless function) talks to a server."""

    def __init__(self, base_url: str, timeout: float = 120) -> None:
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._timeout = timeout

    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> Reply:
        import http.client

        conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        try:
            conn.request("POST", url, body=content, headers={**headers, "Connection": "close"})
            resp = conn.getresponse()
            return Reply(resp.status, resp.read())
        finally:
            conn.close()

    def close(self) -> None:
        pass

    def __enter__(self) -> FreshClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def make_client(kind: str, base_url: str) -> Any:
    import httpx

    if kind == "httpx":
        return httpx.Client(base_url=base_url, timeout=120)
    if kind == "fresh":
        return FreshClient(base_url)
    return StdlibClient(base_url)


def peak_rss_mb(proc: subprocess.Popen[bytes]) -> float:
    """The largest peak resident memory (VmHWM) in the process's group: the server
    itself, or the uvicorn child that ``mlflow models serve`` starts."""
    import psutil

    try:
        root = psutil.Process(proc.pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return float("nan")
    peak = 0
    for p in procs:
        with suppress(OSError, psutil.Error):
            for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
    return peak / 1024


@dataclass
class Target:
    """One contender: a keep-alive client, its URL, pre-encoded bodies and what was timed."""

    key: str
    client: Any
    url: str
    bodies: list[bytes]
    headers: dict[str, str]
    latencies_ns: list[int] = field(default_factory=list)
    busy_s: float = 0.0
    rounds: list[tuple[int, float]] = field(default_factory=list)  # (first index, seconds)
    proc: Any = None  # the server process (for its peak memory)

    def post(self, body: bytes) -> Any:
        r = self.client.post(self.url, content=body, headers=self.headers)
        if r.status_code != 200:
            raise RuntimeError(f"{self.key}: POST {self.url}: {r.status_code} {r.text[:500]}")
        return r

    def warm(self, n: int) -> None:
        for i in range(n):
            self.post(self.bodies[i % len(self.bodies)])

    def timed(self, start: int, n: int) -> None:
        """``n`` single requests one after another, bodies ``start``.. (cycled)."""
        clock = time.perf_counter_ns
        bodies, post, lat = self.bodies, self.post, self.latencies_ns
        first = len(lat)
        began = clock()
        for i in range(start, start + n):
            t0 = clock()
            post(bodies[i % len(bodies)])
            lat.append(clock() - t0)
        spent = (clock() - began) / 1e9
        self.busy_s += spent
        self.rounds.append((first, spent))

    def round_figures(self) -> list[dict[str, float]]:
        out = []
        for r, (first, spent) in enumerate(self.rounds):
            end = self.rounds[r + 1][0] if r + 1 < len(self.rounds) else len(self.latencies_ns)
            ms = np.asarray(self.latencies_ns[first:end], dtype=np.float64) / 1e6
            out.append({"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
                        "rps": len(ms) / spent})
        return out

    def figures(self) -> dict[str, float]:
        """All requests pooled, plus the median over rounds (robust to a noisy round)."""
        ms = np.asarray(self.latencies_ns, dtype=np.float64) / 1e6
        per_round = self.round_figures()
        return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99)),
                "mean": float(ms.mean()), "max": float(ms.max()), "rps": len(ms) / self.busy_s,
                "round_rps": statistics.median(r["rps"] for r in per_round),
                "round_p99": statistics.median(r["p99"] for r in per_round)}


def round_ratio(a: Target, b: Target) -> float:
    """Median over rounds of a's requests/s over b's in the same round."""
    return statistics.median(x["rps"] / y["rps"]
                             for x, y in zip(a.round_figures(), b.round_figures(), strict=True))


def timed_batch(fn: Any, repeats: int) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls, after one untimed call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
