"""Open Inference Protocol (V2) benchmark: V2 infer against our predict route and raw onnxruntime.

Not a test. Run it once (the test install is enough; no peer is needed):

    python bench/v2.py            # --requests 1000 for a quick look

Data and model as in ``bench/serving.py`` (``bench/_serving_kit.py``): 20 float
columns, XGBoost (100 trees, depth 6) trained by the appliance's own training
core and exported to ONNX, registered in a real ``appliance serve`` as the
champion.

Single rows: the same holdout rows, one request after another over one
kept-alive loopback connection (stdlib ``http.client``), in interleaved rounds:
(a) ``POST /api/v1/models/bench/predict`` with ``[record]``; (b)
``POST /v2/models/bench/infer`` with JSON tensors (one ``FP32 [1, 1]`` input a
column); (c) the same with binary tensors, as tritonclient sends them by
default (``Inference-Header-Content-Length``, raw little-endian floats; binary
outputs). Target: V2 JSON latency at most 1.2x predict's (the median over
rounds of the ratio of mean latencies).

Batch: BATCH rows as binary tensors in one V2 request (outputs binary), against
``onnxruntime.InferenceSession.run`` in this process on the same float32 arrays,
with the server's session options (one intra-op thread). The answers are
checked equal first. Each timed request follows a pause of PAUSE seconds, so
that the server's prediction log writer (a background thread, ~20 us a logged
row) has finished the previous request's rows. Target: at most 2x
onnxruntime's time. Printed too: our predict route on the same rows as JSON
records, and the server's peak resident memory.
"""

from __future__ import annotations

import json
import resource
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from _serving_kit import (  # sibling modules, not a package
    JSON,
    MODEL,
    N_FEATURES,
    SEED,
    Target,
    console,
    make_frame,
    peak_rss_mb,
    round_ratio,
    train_ours,
)
from rich.table import Table
from serving import run_rounds, start_ours

TARGET_JSON_VS_PREDICT = 1.2  # V2 JSON single-row latency / predict's, at most
TARGET_BATCH_VS_ORT = 2.0     # V2 binary batch time / onnxruntime's, at most
PAUSE = 1.5
INFER = f"/v2/models/{MODEL}/infer"

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def json_body(columns: list[str], values: list[float]) -> bytes:
    return json.dumps({"inputs": [{"name": c, "datatype": "FP32", "shape": [1, 1], "data": [v]}
                                  for c, v in zip(columns, values, strict=True)]}).encode()


def binary_body(columns: list[str], arrays: list[Any]) -> tuple[bytes, int]:
    """A request as tritonclient builds it: JSON header, then each input's bytes."""
    raws = [np.ascontiguousarray(a, dtype="<f4").tobytes() for a in arrays]
    head = {"inputs": [{"name": c, "datatype": "FP32", "shape": [len(a), 1],
                        "parameters": {"binary_data_size": len(r)}}
                       for c, a, r in zip(columns, arrays, raws, strict=True)],
            "parameters": {"binary_data_output": True}}
    header = json.dumps(head).encode()
    return header + b"".join(raws), len(header)


def read_binary(content: bytes, header_length: int) -> dict[str, Any]:
    head = json.loads(content[:header_length])
    out, pos = {}, header_length
    for o in head["outputs"]:
        size = o["parameters"]["binary_data_size"]
        if o["datatype"] != "BYTES":
            dtype = {"INT64": "<i8", "FP64": "<f8"}[o["datatype"]]
            out[o["name"]] = np.frombuffer(content[pos:pos + size], dtype=dtype).reshape(o["shape"])
        pos += size
    return out


def native_session(onnx_path: Path) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def paused_median(fn: Any, repeats: int, pause: float) -> float:
    fn()
    times = []
    for _ in range(repeats):
        time.sleep(pause)
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@app.command()
def main(
    rows: Annotated[int, typer.Option(help="Rows of synthetic data.")] = 20_000,
    requests: Annotated[int, typer.Option(help="Timed single-row requests per kind.")] = 3000,
    warmup: Annotated[int, typer.Option(help="Untimed requests first, per kind.")] = 200,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds.")] = 10,
    batch: Annotated[int, typer.Option(help="Rows in the batch request.")] = 10_000,
    batch_repeats: Annotated[int, typer.Option(help="Timed batch calls (median).")] = 5,
    strict: Annotated[bool, typer.Option(help="Exit 1 when a target is missed.")] = False,
) -> None:
    """Time V2 infer (JSON and binary tensors) against predict and raw onnxruntime."""
    tmp = Path(tempfile.mkdtemp(prefix="appliance-bench-v2-"))
    columns = [f"f{i:02d}" for i in range(N_FEATURES)]
    try:
        frame = make_frame(rows, seed=SEED)
        frame.write_parquet(tmp / "bench.parquet")
        with console.status("training (appliance.train.child.run.run_job) and exporting ONNX"):
            trained = train_ours(tmp / "bench.parquet", tmp / "train")
        onnx_path = Path(trained["onnx_path"])
        records = frame.select(columns).tail(min(2000, rows)).to_dicts()
        batch_arrays = [frame[c].head(batch).to_numpy().astype(np.float32) for c in columns]
        with ExitStack() as stack:
            predict = start_ours(stack, tmp, onnx_path, records, "stdlib")
            if predict is None:
                raise RuntimeError("our server has no predict route")
            auth = {"Authorization": predict.headers["Authorization"]}
            singles = [[r[c] for c in columns] for r in records]
            v2_json = Target("v2 json", predict.client, INFER,
                             [json_body(columns, v) for v in singles], {**JSON, **auth})
            bodies = [binary_body(columns, [np.array([x]) for x in v]) for v in singles]
            v2_binary = Target("v2 binary", predict.client, INFER, [b for b, _ in bodies],
                               {"Content-Type": "application/octet-stream",
                                "Inference-Header-Content-Length": str(bodies[0][1]), **auth})
            check_single(predict, v2_json, v2_binary)
            run_rounds([predict, v2_json, v2_binary], requests, rounds, warmup)
            figures = {t.key: t.figures() for t in (predict, v2_json, v2_binary)}
            ratios = {"json": round_ratio(predict, v2_json),
                      "binary": round_ratio(predict, v2_binary)}

            body, length = binary_body(columns, batch_arrays)
            headers = {"Content-Type": "application/octet-stream",
                       "Inference-Header-Content-Length": str(length), **auth}
            session = native_session(onnx_path)
            names = [i.name for i in session.get_inputs()]
            feeds = {n: a.reshape(-1, 1) for n, a in zip(names, batch_arrays, strict=True)}
            check_batch(predict.client.post(INFER, content=body, headers=headers), session, feeds)
            records_body = json.dumps(frame.head(batch).select(columns).to_dicts()).encode()
            batches = {
                "v2": paused_median(lambda: predict.client.post(INFER, content=body,
                                                                headers=headers),
                                    batch_repeats, PAUSE),
                "predict": paused_median(lambda: predict.post(records_body), batch_repeats, PAUSE),
                "ort": paused_median(lambda: session.run(None, feeds), batch_repeats, 0),
            }
            memory = {"server": peak_rss_mb(predict.proc),
                      "bench": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report(figures, ratios, batches, memory, batch, len(body), requests, rounds, strict)


def check_single(predict: Target, v2_json: Target, v2_binary: Target) -> None:
    """All three answer the same label and probability for the same row."""
    native = predict.post(predict.bodies[0]).json()
    head = v2_json.post(v2_json.bodies[0]).json()
    by_name = {o["name"]: o["data"] for o in head["outputs"]}
    reply = v2_binary.post(v2_binary.bodies[0])
    binary = read_binary(reply.content, int(reply.headers["inference-header-content-length"]))
    p1 = native["probabilities"][0]["1"]
    if by_name["predictions"] != native["predictions"] or abs(by_name["probabilities"][1] - p1) > 1e-6 \
            or binary["predictions"].tolist() != native["predictions"] \
            or abs(float(binary["probabilities"][0, 1]) - p1) > 1e-6:
        raise RuntimeError(f"answers differ: predict {native}, v2 json {by_name}, binary {binary}")


def check_batch(reply: Any, session: Any, feeds: dict[str, Any]) -> None:
    if reply.status_code != 200:
        raise RuntimeError(f"V2 batch: {reply.status_code} {reply.text[:300]}")
    out = read_binary(reply.content, int(reply.headers["inference-header-content-length"]))
    labels, proba = session.run(None, feeds)
    if out["predictions"].tolist() != labels.reshape(-1).tolist() or \
            np.abs(out["probabilities"] - proba).max() > 1e-6:
        raise RuntimeError("the V2 batch answer differs from onnxruntime's")


def report(figures: dict[str, dict[str, float]], ratios: dict[str, float],
           batches: dict[str, float], memory: dict[str, float], batch: int, body_bytes: int,
           requests: int, rounds: int, strict: bool) -> None:
    table = Table(title=f"single-row requests to one appliance serve, kept-alive loopback "
                        f"({requests:,} timed per kind in {rounds} interleaved rounds)")
    for col in ("request", "p50 ms", "p99 ms", "mean ms", "req/s", "median round p99"):
        table.add_column(col, justify="left" if col == "request" else "right")
    for key, label in (("ours", "predict: [record]"), ("v2 json", "V2 infer, JSON tensors"),
                       ("v2 binary", "V2 infer, binary tensors")):
        r = figures[key]
        table.add_row(label, f"{r['p50']:.2f}", f"{r['p99']:.2f}", f"{r['mean']:.2f}",
                      f"{r['rps']:,.0f}", f"{r['round_p99']:.2f}")
    console.print(table)
    btable = Table(title=f"{batch:,} rows x {N_FEATURES} columns in one call (median, "
                         f"binary body {body_bytes / 1e6:.1f} MB)")
    for col in ("call", "ms", "rows/s"):
        btable.add_column(col, justify="left" if col == "call" else "right")
    for key, label in (("v2", "V2 infer over HTTP, binary tensors in and out"),
                       ("predict", "predict over HTTP, JSON records"),
                       ("ort", "onnxruntime session.run in-process")):
        btable.add_row(label, f"{batches[key] * 1e3:.1f}", f"{batch / batches[key]:,.0f}")
    console.print(btable)
    console.print(f"peak resident memory: server {memory['server']:.0f} MB, "
                  f"this bench process {memory['bench']:.0f} MB")
    checks = [
        (f"V2 JSON / predict latency = {ratios['json']:.2f}x, median over rounds "
         f"(target <= {TARGET_JSON_VS_PREDICT}x)", ratios["json"] <= TARGET_JSON_VS_PREDICT),
        (f"V2 binary batch / onnxruntime = {batches['v2'] / batches['ort']:.2f}x the time "
         f"(target <= {TARGET_BATCH_VS_ORT}x)",
         batches["v2"] / batches["ort"] <= TARGET_BATCH_VS_ORT),
    ]
    for text, ok in checks:
        console.print(f"{text}  " + ("[green]met[/]" if ok else "[red]missed[/]"))
    console.print(f"V2 binary single-row / predict latency = {ratios['binary']:.2f}x (no target)")
    if strict and not all(ok for _, ok in checks):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
