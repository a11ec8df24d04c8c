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

Single-row requests go one after another, twice per contender: from one
persistent keep-alive connection, and with a new connection per request
(``Connection: close``; stdlib ``http.client`` by default: its overhead per
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

Targets (issue 11): ours/mlflow throughput >= 10x kept-alive and >= 7x with a
new connection per request, our kept-alive p99 <= 1.5 ms, ours/bare
throughput >= 0.9 kept-alive (same uvicorn settings: both pick uvloop and
httptools). The peak resident memory of each server is printed.
``--strict`` exits 1 when one is missed. The shared machinery is in
``bench/_serving_kit.py``.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import typer
from _serving_kit import (  # sibling modules, not a package
    BIN,
    JSON,
    MODEL,
    N_FEATURES,
    PARAMS,
    SEED,
    Target,
    bench_env,
    console,
    fit_native,
    make_client,
    make_frame,
    peak_rss_mb,
    process,
    round_ratio,
    save_mlflow,
    timed_batch,
    train_ours,
)
from harness import PASSWORD, appliance_command, free_port
from rich.table import Table

TARGET_VS_MLFLOW = 10.0      # ours / mlflow requests per second kept-alive, at least
TARGET_VS_MLFLOW_NEW = 7.0   # the same with a new connection per request
TARGET_P99_MS = 1.5          # our kept-alive p99, at most
TARGET_VS_BARE = 0.9         # ours / bare requests per second kept-alive, at least
MODES = {"keep": "stdlib", "new": "fresh"}

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


# -- contenders ------------------------------------------------------------------------


def start_mlflow(stack: ExitStack, tmp: Path, model_dir: Path,
                 records: list[dict[str, float]], client_kind: str) -> Target:
    port = free_port()
    cmd = [str(BIN / "mlflow"), "models", "serve", "-m", str(model_dir), "-h", "127.0.0.1",
           "-p", str(port), "--env-manager", "local"]
    proc = stack.enter_context(process("mlflow models serve", cmd, bench_env(),
                                       tmp / "mlflow-serve.log",
                                       f"http://127.0.0.1:{port}/ping"))
    client = stack.enter_context(make_client(client_kind, f"http://127.0.0.1:{port}"))
    bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in records]
    target = Target("mlflow", client, "/invocations", bodies, JSON, proc=proc)
    console.print(f"    mlflow answers {target.post(bodies[0]).text[:100]}")
    return target


def start_bare(stack: ExitStack, tmp: Path, onnx_path: Path,
               records: list[dict[str, float]], client_kind: str) -> Target:
    port = free_port()
    cmd = [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(__file__).resolve().parent),
           "_serving_bare:app", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
           "--no-access-log", "--log-level", "warning"]
    proc = stack.enter_context(process("bare FastAPI + onnxruntime", cmd,
                                       bench_env(BENCH_ONNX=str(onnx_path)), tmp / "bare.log",
                                       f"http://127.0.0.1:{port}/ping"))
    client = stack.enter_context(make_client(client_kind, f"http://127.0.0.1:{port}"))
    return Target("bare", client, "/predict", [json.dumps([r]).encode() for r in records], JSON,
                  proc=proc)


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
    proc = stack.enter_context(process("appliance serve", [*appliance_command(), "serve"], env,
                                       tmp / "serve.log", f"{base}/healthz"))
    with ApplianceClient(base, timeout=120) as admin:
        admin.login("admin", PASSWORD)
        version = admin.post(f"/models/{MODEL}/versions", json=None,
                             content=onnx_path.read_bytes(),
                             headers={"Content-Type": "application/octet-stream"})
        number = int(version.get("number") or version.get("version") or 1)
        admin.put(f"/models/{MODEL}/aliases/champion", json={"version": number, "reason": "bench"})
        token = admin.token
        server = admin.health().get("server")
    console.print(f"    appliance serve runs on {server}")
    client = stack.enter_context(make_client(client_kind, base))
    target = Target("ours", client, f"/api/v1/models/{MODEL}/predict?alias=champion",
                    [json.dumps([r]).encode() for r in records],
                    {**JSON, "Authorization": f"Bearer {token}"}, proc=proc)
    probe = client.post(target.url, content=target.bodies[0], headers=target.headers)
    if probe.status_code in (404, 405):   # the route is not there (yet)
        console.print(f"    [yellow]ours: no predict route ({probe.status_code} {probe.text[:120]})[/]")
        return None
    if probe.status_code != 200:
        raise RuntimeError(f"ours: POST {target.url}: {probe.status_code} {probe.text[:500]}")
    return target


def fresh_twin(stack: ExitStack, target: Target, base_url: str) -> Target:
    """The same contender, but a new connection for every request."""
    client = stack.enter_context(make_client("fresh", base_url))
    return Target(f"{target.key}/new", client, target.url, target.bodies, target.headers,
                  proc=target.proc)


def base_of(target: Target) -> str:
    conn = getattr(target.client, "_conn", None)
    if conn is not None:
        return f"http://{conn.host}:{conn.port}"
    return str(target.client.base_url)


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


def run_rounds(targets: list[Target], requests: int, rounds: int, warmup: int) -> None:
    """Warm each, then interleave rounds so that load from elsewhere on the machine
    falls on every contender alike."""
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


# -- main ------------------------------------------------------------------------------


@app.command()
def main(
    rows: Annotated[int, typer.Option(help="Rows of synthetic data.")] = 20_000,
    requests: Annotated[int, typer.Option(help="Timed single-row requests per contender and mode.")] = 3000,
    warmup: Annotated[int, typer.Option(help="Untimed requests first, per contender.")] = 200,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds the timed requests are split into.")] = 10,
    batch: Annotated[int, typer.Option(help="Rows in the batch request.")] = 10_000,
    batch_repeats: Annotated[int, typer.Option(help="Timed batch calls (median).")] = 5,
    skip_mlflow: Annotated[bool, typer.Option(help="Leave MLflow out.")] = False,
    skip_ours: Annotated[bool, typer.Option(help="Time the references only.")] = False,
    skip_new: Annotated[bool, typer.Option(help="Kept-alive connections only.")] = False,
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
    memory: dict[str, float] = {}
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
            kept: list[Target] = []
            if not skip_mlflow:
                kept.append(start_mlflow(stack, tmp, tmp / "mlflow-model", records, client))
            bare = start_bare(stack, tmp, onnx_path, records, client)
            kept.append(bare)
            ours = None if skip_ours else start_ours(stack, tmp, onnx_path, records, client)
            if ours is not None:
                check_same(ours.post(ours.bodies[0]).json(), bare.post(bare.bodies[0]).json())
                kept.append(ours)
            fresh = [] if skip_new else [fresh_twin(stack, t, base_of(t)) for t in kept]
            targets = kept + fresh
            run_rounds(targets, requests, rounds, warmup)
            results = {t.key: t.figures() for t in targets}
            by_key = {t.key: t for t in targets}
            for mode in ("", "/new"):
                if f"ours{mode}" not in by_key or f"bare{mode}" not in by_key:
                    continue
                ratios[f"bare{mode}"] = round_ratio(by_key[f"ours{mode}"], by_key[f"bare{mode}"])
                if f"mlflow{mode}" in by_key:
                    ratios[f"mlflow{mode}"] = round_ratio(by_key[f"ours{mode}"],
                                                          by_key[f"mlflow{mode}"])
            for t in kept:
                if t.key != "mlflow":
                    batches[t.key] = timed_batch(lambda t=t: t.post(batch_body), batch_repeats)
            memory = {t.key: peak_rss_mb(t.proc) for t in kept}
        batches["native"] = timed_batch(lambda: pipeline.predict_proba(X_batch), batch_repeats)
    finally:
        if keep:
            console.print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    report(results, ratios, batches, memory, batch, requests, rounds, client, strict)


LABELS = {
    "mlflow": "mlflow models serve (/invocations)",
    "ours": "ours: appliance serve /predict",
    "bare": "bare: FastAPI + onnxruntime",
}


def report(results: dict[str, dict[str, float]], ratios: dict[str, float],
           batches: dict[str, float], memory: dict[str, float], batch: int, requests: int,
           rounds: int, client: str, strict: bool) -> None:
    table = Table(title=f"single-row requests, sequential over loopback ({requests:,} timed in "
                        f"{rounds} rounds per contender and connection mode, {client} client)")
    for col in ("contender", "connection", "p50 ms", "p99 ms", "mean ms", "max ms", "req/s",
                "median round p99", "median round req/s", "server peak MB"):
        table.add_column(col, justify="left" if col in ("contender", "connection") else "right")
    for mode, label in (("", "kept-alive"), ("/new", "new each request")):
        for key in ("mlflow", "ours", "bare"):
            if key + mode in results:
                r = results[key + mode]
                table.add_row(LABELS[key], label, f"{r['p50']:.2f}", f"{r['p99']:.2f}",
                              f"{r['mean']:.2f}", f"{r['max']:.1f}", f"{r['rps']:,.0f}",
                              f"{r['round_p99']:.2f}", f"{r['round_rps']:,.0f}",
                              f"{memory.get(key, float('nan')):.0f}")
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
    checks = [(f"our kept-alive p99 = {ours['round_p99']:.2f} ms, median over rounds "
               f"(pooled {ours['p99']:.2f} ms)  (target <= {TARGET_P99_MS} ms)",
               ours["round_p99"] <= TARGET_P99_MS)]
    for mode, label, target in (("", "kept-alive", TARGET_VS_MLFLOW),
                                ("/new", "new connections", TARGET_VS_MLFLOW_NEW)):
        if f"mlflow{mode}" in ratios:
            pooled = results[f"ours{mode}"]["rps"] / results[f"mlflow{mode}"]["rps"]
            checks.append((f"ours / mlflow throughput, {label} = {ratios[f'mlflow{mode}']:.1f}x, "
                           f"median over rounds (pooled {pooled:.1f}x)  (target >= {target:.0f}x)",
                           ratios[f"mlflow{mode}"] >= target))
    pooled = ours["rps"] / results["bare"]["rps"]
    checks.append((f"ours / bare throughput, kept-alive = {ratios['bare']:.2f}, median over rounds "
                   f"(pooled {pooled:.2f})  (target >= {TARGET_VS_BARE})",
                   ratios["bare"] >= TARGET_VS_BARE))
    for text, ok in checks:
        console.print(f"{text}  " + ("[green]met[/]" if ok else "[red]missed[/]"))
    if "bare/new" in ratios:
        console.print(f"ours / bare throughput, new connections = {ratios['bare/new']:.2f} "
                      "(no target)")
    if "ours" in batches:
        console.print(f"batch: ours / native predict_proba = "
                      f"{batches['ours'] / batches['native']:.1f}x the time (no target)")
    if strict and not all(ok for _, ok in checks):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
