"""Serving benchmark: our predict route vs ``mlflow models serve`` vs a bare FastAPI + onnxruntime route.

Not a test. Install the peers, then run it once:

    scripts/install-wheel.sh .venv test,bench
    .venv/bin/python bench/serving.py            # --requests 1000 for a quick look

Data: ROWS rows of synthetic binary classification (20 float columns f00..f19
plus ``label``, fixed seed), written as Parquet. One XGBoost model
(``xgboost.XGBClassifier``, 100 trees, depth 6) is trained by the appliance's
own training core (``appliance.train.child.run.run_job``, the function the training
child runs), which exports ``model.onnx``. The same sklearn pipeline is built
and fitted natively with ``appliance.train.child.pipeline`` (same split, params and
seed) for MLflow and for the in-process baseline.

Contenders, each a real server process on loopback, all started before any timing:

(a) MLflow: ``mlflow.sklearn.save_model`` of the native pipeline (with a
    signature), served by ``mlflow models serve --env-manager local`` (one
    uvicorn worker); requests are ``{"dataframe_records": [record]}`` to
    ``/invocations``.
(b) bare: ``bench/_serving_bare.py``, a FastAPI route that feeds the same
    ``model.onnx`` to onnxruntime (intra-op threads = 1) under uvicorn, one
    worker; requests are ``[record]`` to ``/predict``. The limit of our stack.
(c) ours: ``appliance serve``; the ONNX is registered with
    ``POST /api/v1/models/bench/versions``, ``champion`` is moved to v1, and
    requests are ``[record]`` to ``POST /api/v1/models/bench/predict?alias=champion``
    with a bearer token.

Single-row requests go one after another from one persistent keep-alive
connection per contender (stdlib ``http.client`` by default: its overhead per
request is a fraction of httpx's, which ``--client httpx`` restores), bodies
encoded before the clock starts and cycled over the holdout rows: WARMUP
untimed, then REQUESTS timed, split into ROUNDS interleaved rounds (mlflow,
bare, ours, mlflow, ...) so that load from elsewhere on a shared machine falls
on every contender alike. Requests/s is timed requests over the time spent in
them; the targets are checked on the median over rounds (the ratio taken within
each round, p99 per round), which a burst of load on a shared machine moves
less than the pooled figures, printed beside them. Any non-200 answer aborts the run;
ours is first checked to answer like the bare route (same label and
probabilities). It prints p50, p99, mean (ms) and requests/s, then a BATCH-row
request to ours (and bare) against the native pipeline's ``predict_proba`` on
the same rows in-process (median of BATCH_REPEATS).

Targets: ours/mlflow throughput >= 8x, our p99 <= 2 ms, ours/bare throughput
>= 0.6. ``--strict`` exits 1 when one is missed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from harness import PASSWORD, appliance_command, free_port  # a sibling module, not a package
from rich.console import Console
from rich.table import Table

TARGET_VS_MLFLOW = 8.0   # ours / mlflow requests per second, at least
TARGET_P99_MS = 2.0      # our p99, at most
TARGET_VS_BARE = 0.6     # ours / bare requests per second, at least
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
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


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
        return Reply(resp.status, resp.read())

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> StdlibClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def make_client(kind: str, base_url: str) -> Any:
    import httpx

    if kind == "httpx":
        return httpx.Client(base_url=base_url, timeout=120)
    return StdlibClient(base_url)


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


# -- contenders ------------------------------------------------------------------------


def start_mlflow(stack: ExitStack, tmp: Path, model_dir: Path,
                 records: list[dict[str, float]], client_kind: str) -> Target:
    port = free_port()
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", str(model_dir), "-h", "127.0.0.1",
           "-p", str(port), "--env-manager", "local"]
    stack.enter_context(process("mlflow models serve", cmd, bench_env(), tmp / "mlflow-serve.log",
                                f"http://127.0.0.1:{port}/ping"))
    client = stack.enter_context(make_client(client_kind, f"http://127.0.0.1:{port}"))
    bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in records]
    target = Target("mlflow", client, "/invocations", bodies, JSON)
    console.print(f"    mlflow answers {target.post(bodies[0]).text[:100]}")
    return target


def start_bare(stack: ExitStack, tmp: Path, onnx_path: Path,
               records: list[dict[str, float]], client_kind: str) -> Target:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(__file__).resolve().parent),
           "_serving_bare:app", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--no-access-log", "--log-level", "warning"]
    stack.enter_context(process("bare FastAPI + onnxruntime", cmd,
                                bench_env(BENCH_ONNX=str(onnx_path)), tmp / "bare.log",
                                f"http://127.0.0.1:{port}/ping"))
    client = stack.enter_context(make_client(client_kind, f"http://127.0.0.1:{port}"))
    return Target("bare", client, "/predict", [json.dumps([r]).encode() for r in records], JSON)


def start_ours(stack: ExitStack, tmp: Path, onnx_path: Path,
               records: list[dict[str, float]], client_kind: str) -> Target | None:
    """Our server with the ONNX registered as champion, or None when there is no predict route."""
    from appliance.client import ApplianceClient

    home = tmp / "home"
    home.mkdir()
    port = free_port()
    env = bench_env(APPLIANCE_HOME=str(home), APPLIANCE_HOST="127.0.0.1",
                    APPLIANCE_PORT=str(port), APPLIANCE_ADMIN_PASSWORD=PASSWORD,
                    APPLIANCE_LOG_LEVEL="warning")
    base = f"http://127.0.0.1:{port}"
    stack.enter_context(process("appliance serve", [*appliance_command(), "serve"], env,
                                tmp / "serve.log", f"{base}/healthz"))
    with ApplianceClient(base, timeout=120) as admin:
        admin.login("admin", PASSWORD)
        version = admin.post(f"/models/{MODEL}/versions", json=None,
                             content=onnx_path.read_bytes(),
                             headers={"Content-Type": "application/octet-stream"})
        number = int(version.get("number") or version.get("version") or 1)
        admin.put(f"/models/{MODEL}/aliases/champion", json={"version": number, "reason": "bench"})
        token = admin.token
    client = stack.enter_context(make_client(client_kind, base))
    target = Target("ours", client, f"/api/v1/models/{MODEL}/predict?alias=champion",
                    [json.dumps([r]).encode() for r in records],
                    {**JSON, "Authorization": f"Bearer {token}"})
    probe = client.post(target.url, content=target.bodies[0], headers=target.headers)
    if probe.status_code in (404, 405):   # the route is not there (yet)
        console.print(f"    [yellow]ours: no predict route ({probe.status_code} {probe.text[:120]})[/]")
        return None
    if probe.status_code != 200:
        raise RuntimeError(f"ours: POST {target.url}: {probe.status_code} {probe.text[:500]}")
    return target


def check_same(ours: dict[str, Any], bare: dict[str, Any]) -> None:
    """Our answer and the bare route's carry the same prediction and probabilities."""
    for key in ("model", "version", "predictions", "probabilities", "request_ids"):
        if key not in ours:
            raise RuntimeError(f"our predict answer has no {key!r}: {json.dumps(ours)[:300]}")
    if [str(p) for p in ours["predictions"]] != [str(p) for p in bare["predictions"]]:
        raise RuntimeError(f"predictions differ: ours {ours['predictions']}, bare {bare['predictions']}")
    if ours["probabilities"] is not None:
        a, b = ours["probabilities"][0], bare["probabilities"][0]
        diff = max(abs(float(a[str(k)]) - float(b[str(k)])) for k in b)
        if diff > 1e-5:
            raise RuntimeError(f"probabilities differ by {diff}: ours {a}, bare {b}")


# -- main ------------------------------------------------------------------------------


@app.command()
def main(
    rows: Annotated[int, typer.Option(help="Rows of synthetic data.")] = 20_000,
    requests: Annotated[int, typer.Option(help="Timed single-row requests per contender.")] = 3000,
    warmup: Annotated[int, typer.Option(help="Untimed requests first, per contender.")] = 200,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds the timed requests are split into.")] = 10,
    batch: Annotated[int, typer.Option(help="Rows in the batch request.")] = 10_000,
    batch_repeats: Annotated[int, typer.Option(help="Timed batch calls (median).")] = 5,
    skip_mlflow: Annotated[bool, typer.Option(help="Leave MLflow out.")] = False,
    skip_ours: Annotated[bool, typer.Option(help="Time the references only.")] = False,
    strict: Annotated[bool, typer.Option(help="Exit 1 when a target is missed.")] = False,
    keep: Annotated[bool, typer.Option(help="Keep the temporary folder.")] = False,
    client: Annotated[str, typer.Option(help="HTTP client: 'stdlib' (http.client) or 'httpx'.")] = "stdlib",
) -> None:
    """Time single-row predictions over HTTP: ours vs mlflow models serve vs bare FastAPI + ONNX."""
    import polars as pl

    from appliance.train.child.pipeline import prepare_frame

    tmp = Path(tempfile.mkdtemp(prefix="appliance-bench-serving-"))
    if client not in ("stdlib", "httpx"):
        raise typer.BadParameter("--client is stdlib or httpx")
    results: dict[str, dict[str, float]] = {}
    ratios: dict[str, float] = {}
    batches: dict[str, float] = {}
    try:
        frame = make_frame(rows, seed=SEED)
        parquet = tmp / "bench.parquet"
        frame.write_parquet(parquet)
        with console.status("training (appliance.train.child.run.run_job) and exporting ONNX"):
            trained = train_ours(parquet, tmp / "train")
        onnx_path = Path(trained["onnx_path"])
        with console.status("fitting the native pipeline"):
            pipeline, features, test_idx = fit_native(frame)
        console.print(f"[bold]data[/]: {rows:,} rows x {N_FEATURES} float columns; "
                      f"XGBoost {PARAMS}; holdout roc_auc {trained['metrics'].get('roc_auc', 0):.3f}; "
                      f"ONNX {onnx_path.stat().st_size / 1e3:.0f} kB")

        feature_cols = [f"f{i:02d}" for i in range(N_FEATURES)]
        records: list[dict[str, float]] = frame[test_idx.tolist()].select(feature_cols).to_dicts()
        batch_frame = frame.head(batch).select(feature_cols)
        batch_body = json.dumps(batch_frame.to_dicts()).encode()
        X_batch = prepare_frame(batch_frame, features)
        console.print(f"  single bodies cycle over {len(records):,} holdout rows; "
                      f"the {batch:,}-row body is {len(batch_body) / 1e6:.1f} MB")
        if not skip_mlflow:
            with console.status("saving the MLflow model"):
                save_mlflow(pipeline, prepare_frame(pl.DataFrame(records[:5]), features),
                            tmp / "mlflow-model")

        with ExitStack() as stack:
            targets = []
            if not skip_mlflow:
                targets.append(start_mlflow(stack, tmp, tmp / "mlflow-model", records, client))
            bare = start_bare(stack, tmp, onnx_path, records, client)
            targets.append(bare)
            ours = None if skip_ours else start_ours(stack, tmp, onnx_path, records, client)
            if ours is not None:
                check_same(ours.post(ours.bodies[0]).json(), bare.post(bare.bodies[0]).json())
                targets.append(ours)

            # all servers up; warm each, then interleave rounds so that load from elsewhere
            # on the machine falls on every contender alike
            for t in targets:
                t.warm(warmup)
            per_round = [requests // rounds + (1 if r < requests % rounds else 0) for r in range(rounds)]
            done = 0
            for r, n in enumerate(per_round):
                for t in targets:
                    t.timed(done, n)
                done += n
                console.print(f"  round {r + 1}/{rounds}: " + ", ".join(
                    f"{t.key} {len(t.latencies_ns) / t.busy_s:,.0f} req/s" for t in targets))
            results = {t.key: t.figures() for t in targets}
            if ours is not None:
                ratios["bare"] = round_ratio(ours, bare)
                if targets[0].key == "mlflow":
                    ratios["mlflow"] = round_ratio(ours, targets[0])

            for t in targets:
                if t.key != "mlflow":
                    batches[t.key] = timed_batch(lambda t=t: t.post(batch_body), batch_repeats)
        batches["native"] = timed_batch(lambda: pipeline.predict_proba(X_batch), batch_repeats)
    finally:
        if keep:
            console.print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    report(results, ratios, batches, batch, requests, rounds, client, strict)


LABELS = {
    "mlflow": "mlflow models serve (/invocations)",
    "ours": "ours: appliance serve /predict",
    "bare": "bare: FastAPI + onnxruntime",
}


def report(results: dict[str, dict[str, float]], ratios: dict[str, float],
           batches: dict[str, float], batch: int, requests: int, rounds: int, client: str,
           strict: bool) -> None:
    table = Table(title=f"single-row requests, sequential over loopback ({requests:,} timed in "
                        f"{rounds} rounds, keep-alive, {client} client)")
    for col in ("contender", "p50 ms", "p99 ms", "mean ms", "max ms", "req/s",
                "median round p99", "median round req/s"):
        table.add_column(col, justify="left" if col == "contender" else "right")
    for key in ("mlflow", "ours", "bare"):
        if key in results:
            r = results[key]
            table.add_row(LABELS[key], f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['mean']:.2f}",
                          f"{r['max']:.1f}", f"{r['rps']:,.0f}", f"{r['round_p99']:.2f}",
                          f"{r['round_rps']:,.0f}")
    console.print(table)

    btable = Table(title=f"{batch:,}-row batch (median)")
    for col in ("contender", "ms", "rows/s"):
        btable.add_column(col, justify="left" if col == "contender" else "right")
    for key, label in (("ours", "ours: one HTTP request, JSON records"),
                       ("bare", "bare: one HTTP request, JSON records"),
                       ("native", "native pipeline.predict_proba in-process")):
        if key in batches:
            btable.add_row(label, f"{batches[key] * 1e3:.1f}", f"{batch / batches[key]:,.0f}")
    console.print(btable)

    if "ours" not in results:
        console.print("[yellow]ours was not measured: no targets checked[/]")
        return
    ours = results["ours"]
    checks = [(f"our p99 = {ours['round_p99']:.2f} ms, median over rounds "
               f"(pooled {ours['p99']:.2f} ms)  (target <= {TARGET_P99_MS} ms)",
               ours["round_p99"] <= TARGET_P99_MS)]
    if "mlflow" in ratios:
        pooled = ours["rps"] / results["mlflow"]["rps"]
        checks.insert(0, (f"ours / mlflow throughput = {ratios['mlflow']:.1f}x, median over rounds "
                          f"(pooled {pooled:.1f}x)  (target >= {TARGET_VS_MLFLOW:.0f}x)",
                          ratios["mlflow"] >= TARGET_VS_MLFLOW))
    pooled = ours["rps"] / results["bare"]["rps"]
    checks.append((f"ours / bare throughput = {ratios['bare']:.2f}, median over rounds "
                   f"(pooled {pooled:.2f})  (target >= {TARGET_VS_BARE})",
                   ratios["bare"] >= TARGET_VS_BARE))
    for text, ok in checks:
        console.print(f"{text}  " + ("[green]met[/]" if ok else "[red]missed[/]"))
    if "ours" in batches:
        console.print(f"batch: ours / native predict_proba = "
                      f"{batches['ours'] / batches['native']:.1f}x the time (no target)")
    if strict and not all(ok for _, ok in checks):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
