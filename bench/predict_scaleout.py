"""Single-row predict on a host in scale-out mode against the embedded default, same run.

Not a test. Run it once (pgserver and moto[server] are in the test extra):

    .venv/bin/python bench/predict_scaleout.py            # --requests 3000 --rounds 5

It starts a PostgreSQL 16 from pgserver and a moto S3 server on loopback, then two real
``appliance serve`` processes: one embedded (no settings: DuckDB in its home, files on
disk), one in scale-out mode (``APPLIANCE_STORE_URL`` on that PostgreSQL, left empty so
the server migrates it at start, and ``APPLIANCE_OBJECT_STORE`` on the bucket). The same
ONNX model (y = x + 1, one float column) is uploaded to each and made champion through
the API; then single-row ``POST /api/v1/models/m/predict?alias=champion`` calls, one
after another on a kept-alive connection, are timed in interleaved rounds (load from
elsewhere on the machine falls on both alike). Every answer is checked.

The target (issue 13): scale-out within 1.1x of embedded. Prints p50 and p99 of each,
the ratios (pooled, and the median of the per-round ratios) and peak memory (each
server's VmHWM and this process's).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _serving_kit import (  # sibling modules, not a package
    JSON,
    Target,
    bench_env,
    console,
    make_client,
    peak_rss_mb,
    process,
)
from harness import PASSWORD, appliance_command, free_port

app = typer.Typer(add_completion=False)
MODEL = "m"
BUCKET = "appliance-bench"


def adder_onnx() -> bytes:
    """y = x + 1 on one float column ``x`` (the served model; tiny, so the path is timed)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "offset"], ["y"])], "bench_add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[helper.make_tensor("offset", TensorProto.FLOAT, [1], [1.0])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def start_moto(stack: ExitStack, tmp: Path) -> str:
    port = free_port()
    log = (tmp / "moto.log").open("wb")
    stack.callback(log.close)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from moto.server import main; main(sys.argv[1:])",
         "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT)
    stack.callback(proc.wait)
    stack.callback(proc.kill)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.2)
    import pyarrow.fs as pafs

    fs = pafs.S3FileSystem(access_key="bench", secret_key="bench", region="us-east-1",
                           endpoint_override=f"127.0.0.1:{port}", scheme="http",
                           allow_bucket_creation=True)
    fs.create_dir(BUCKET)
    return f"http://127.0.0.1:{port}"


def start_host(stack: ExitStack, tmp: Path, name: str, env: dict[str, str],
               onnx: bytes, client_kind: str) -> Target:
    """``appliance serve`` over a new home with the model as champion; its predict target."""
    from appliance.client import ApplianceClient

    home = tmp / name / "home"
    home.mkdir(parents=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = stack.enter_context(process(
        f"appliance serve ({name})", [*appliance_command(), "serve"],
        bench_env(APPLIANCE_HOME=str(home), APPLIANCE_HOST="127.0.0.1",
                  APPLIANCE_PORT=str(port), APPLIANCE_ADMIN_PASSWORD=PASSWORD,
                  APPLIANCE_LOG_LEVEL="warning", **env),
        tmp / f"serve-{name}.log", f"{base}/healthz"))
    with ApplianceClient(base, timeout=120) as admin:
        admin.login("admin", PASSWORD)
        version = admin.post(f"/models/{MODEL}/versions", json=None, content=onnx,
                             headers={"Content-Type": "application/octet-stream"})
        number = int(version.get("number") or version.get("version") or 1)
        admin.put(f"/models/{MODEL}/aliases/champion", json={"version": number,
                                                            "reason": "bench"})
        token = admin.token
    client = stack.enter_context(make_client(client_kind, base))
    bodies = [json.dumps([{"x": float(i % 97)}]).encode() for i in range(500)]
    target = Target(name, client, f"/api/v1/models/{MODEL}/predict?alias=champion", bodies,
                    {**JSON, "Authorization": f"Bearer {token}"}, proc=proc)
    answer = target.post(bodies[3]).json()
    if "4.0" not in json.dumps(answer):  # x = 3.0 -> 4.0: the model, not an error page
        raise RuntimeError(f"{name}: unexpected answer {answer}")
    return target


@app.command()
def main(
    requests: Annotated[int, typer.Option(help="Timed single-row requests per host.")] = 3000,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds.")] = 5,
    warmup: Annotated[int, typer.Option(help="Untimed requests per host first.")] = 300,
    client: Annotated[str, typer.Option(help="stdlib (kept alive), httpx, or fresh.")] = "stdlib",
) -> None:
    """Time single-row predict on a scale-out host against an embedded one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver warns that XDG_RUNTIME_DIR is unset
        import pgserver

    tmp = Path(tempfile.mkdtemp(prefix="appliance-bench-predict-scaleout-"))
    tmp.chmod(0o755)  # as root, pgserver runs the server as its own system user
    try:
        with ExitStack() as stack:
            server = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
            stack.callback(server.cleanup)
            url = str(server.get_uri("postgres")).replace("postgresql://",
                                                          "postgresql+psycopg://", 1)
            endpoint = start_moto(stack, tmp)
            onnx = adder_onnx()
            embedded = start_host(stack, tmp, "embedded", {}, onnx, client)
            scaleout = start_host(stack, tmp, "scale-out", {
                "APPLIANCE_STORE_URL": url,
                "APPLIANCE_OBJECT_STORE": f"s3://{BUCKET}/{uuid.uuid4().hex[:8]}",
                "APPLIANCE_S3_ENDPOINT": endpoint, "APPLIANCE_S3_ACCESS_KEY_ID": "bench",
                "APPLIANCE_S3_SECRET_ACCESS_KEY": "bench", "APPLIANCE_S3_REGION": "us-east-1",
            }, onnx, client)
            targets = [embedded, scaleout]
            for t in targets:
                t.warm(warmup)
            per_round = [requests // rounds + (1 if r < requests % rounds else 0)
                         for r in range(rounds)]
            done = 0
            for r, n in enumerate(per_round):
                for t in (targets if r % 2 == 0 else targets[::-1]):
                    t.timed(done, n)
                done += n
                console.print(f"  round {r + 1}/{rounds}: " + ", ".join(
                    f"{t.key} p50 {t.round_figures()[-1]['p50']:.2f} ms" for t in targets))
            report(embedded, scaleout, load=os.getloadavg()[0])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def report(embedded: Target, scaleout: Target, *, load: float) -> None:
    a, b = embedded.figures(), scaleout.figures()
    table = Table(title=f"single-row predict, {len(embedded.latencies_ns)} requests each "
                        f"(load average {load:.1f})")
    for col in ("host", "p50 ms", "p99 ms", "req/s", "server peak MB"):
        table.add_column(col, justify="left" if col == "host" else "right")
    for t, f in ((embedded, a), (scaleout, b)):
        table.add_row(t.key, f"{f['p50']:.2f}", f"{f['p99']:.2f}", f"{f['rps']:,.0f}",
                      f"{peak_rss_mb(t.proc):.0f}")
    console.print(table)
    rounds = zip(scaleout.round_figures(), embedded.round_figures(), strict=True)
    per_round = [(x["p50"] / y["p50"], x["p99"] / y["p99"]) for x, y in rounds]
    p50 = b["p50"] / a["p50"]
    verdict = "within" if p50 <= 1.1 else "NOT within"
    console.print(f"ratio scale-out / embedded: p50 {p50:.2f}x, p99 {b['p99'] / a['p99']:.2f}x "
                  f"(median of per-round ratios: p50 "
                  f"{statistics.median(r[0] for r in per_round):.2f}x, p99 "
                  f"{statistics.median(r[1] for r in per_round):.2f}x); {verdict} the 1.1x "
                  "target at p50")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"peak memory of this process {peak_mb:.0f} MB")


if __name__ == "__main__":
    app()
