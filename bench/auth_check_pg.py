"""What checking every token in PostgreSQL would cost, against the cache the change feed keeps.

Not a test. Run it once (the project venv has pgserver, from the test extra):

    .venv/bin/python bench/auth_check_pg.py              # --calls 2000

It starts a PostgreSQL 16 from pgserver in a temporary folder, builds an appliance on
it (``APPLIANCE_STORE_URL``), registers a one-input ONNX model and makes an API token,
then times in this process, on the same data in the same run:

- a token check answered from the host's cache (what a request pays in scale-out while
  the change feed is fresh: revocations reach it within the bound),
- a token check read from PostgreSQL on every call (what "check revocation on every
  request" would pay; it is also what a host pays while its feed is stale),
- one single-row prediction through the serving service (the work the check guards).

Prints the medians, the ratio of the database check to the cached one, the database
check against a prediction, and this process's peak memory.
"""

from __future__ import annotations

import resource
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()
app = typer.Typer(add_completion=False)


def _adder() -> bytes:
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "offset"], ["y"])], "bench_add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
        initializer=[helper.make_tensor("offset", TensorProto.FLOAT, [1], [1.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def _median_us(fn: object, calls: int) -> float:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


@app.command()
def main(calls: Annotated[int, typer.Option(help="Timed calls per path.")] = 2000) -> None:
    """Time a cached token check, a token check in PostgreSQL, and a prediction."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver warns that XDG_RUNTIME_DIR is unset
        import pgserver

    from appliance.config import Settings
    from appliance.domain.principal import Principal
    from appliance.domain.roles import Role
    from appliance.runtime import build
    from appliance.store.db import migrate

    tmp = Path(tempfile.mkdtemp(prefix="appliance-bench-auth-pg-"))
    tmp.chmod(0o755)  # as root, pgserver runs the server as its own system user
    try:
        server = pgserver.get_server(tmp / "pgdata", cleanup_mode="stop")
        url = str(server.get_uri("postgres")).replace("postgresql://", "postgresql+psycopg://", 1)
        migrate(tmp / "x.duckdb", tmp / "x.lock", url)
        appliance = build(Settings(home=tmp / "home", store_url=url,
                                   admin_password="bench-password"))  # type: ignore[arg-type]
        try:
            admin = Principal("bench", Role.admin)
            appliance.registry.register_upload("adder", _adder(), by=admin)
            appliance.registry.set_alias("adder", "champion", 1, reason="bench", by=admin)
            secret = appliance.auth.create_token("admin", "bench", by=admin).token
            auth = appliance.auth
            auth.fresh = lambda: True  # the feed is fresh: the cache answers
            auth.authenticate(secret)
            cached = _median_us(lambda: auth.authenticate(secret), calls)
            auth.fresh = lambda: False  # stale, or "check every request": the database answers
            database = _median_us(lambda: auth.authenticate(secret), calls)
            rows = [{"x": 1.0}]
            appliance.serving.predict("adder", rows)
            predict = _median_us(lambda: appliance.serving.predict("adder", rows), calls)
        finally:
            appliance.close()
        server.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    console.print(f"token check from the cache:       {cached:8.1f} us (median of {calls})")
    console.print(f"token check in PostgreSQL:        {database:8.1f} us  "
                  f"({database / cached:.0f}x the cached check)")
    console.print(f"single-row predict (in process):  {predict:8.1f} us  "
                  f"(the database check costs {database / predict:.1f}x a prediction)")
    console.print(f"peak memory: {peak_mb:.0f} MB")


if __name__ == "__main__":
    app()
