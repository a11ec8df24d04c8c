"""A tracking server that does nothing (bench/tracking_mlflow.py's floor): every MLflow
call is answered at once with the least the client accepts, so timing the workload
against it measures the MLflow client's own cost per call. ``uvicorn
_noop_tracking_server:app``."""

from __future__ import annotations

from typing import Any

_RUN = (b'{"run": {"info": {"run_id": "r", "run_uuid": "r", "experiment_id": "0", '
        b'"status": "RUNNING", "artifact_uri": "mlflow-artifacts:/0/r/artifacts", '
        b'"lifecycle_stage": "active", "run_name": "noop", "user_id": "u", '
        b'"start_time": 1}, "data": {}}}')
_EXPERIMENT = (b'{"experiment": {"experiment_id": "0", "name": "bench", '
               b'"artifact_location": "mlflow-artifacts:/0", "lifecycle_stage": "active"}}')


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    path = scope["path"]
    body = (_RUN if path.endswith(("runs/create", "runs/get")) else
            _EXPERIMENT if "experiments/get" in path else
            b'{"metrics": []}' if path.endswith("get-history") else b"{}")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
