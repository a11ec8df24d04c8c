"""The training child: ``python -m appliance.train.child.worker``.

One job per process. The protocol, over the child's stdin/stdout, JSON lines only
(never pickle)::

    parent -> one request line: {"job": {...} | "job_yaml": "...", "parquet_path": ...,
                                 "out_dir": ..., "champion_onnx"?: ..., "memory_mb"?: N,
                                 "parent_pid"?: N}
    child  -> {"progress": {"stage": "load", "fraction": 0.02}}      zero or more
    child  -> {"result": {...}}                                       exactly one, then exit 0

The result is :func:`appliance.train.child.run.run_job`'s dict; any exception becomes
``{"result": {"ok": false, "error": {"type": "internal", "message": ...}}}``.
Library prints go to stderr: the protocol keeps a private copy of stdout.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import IO, Any

from appliance.childproc import claim_stdout, emit, limit_memory, watch_parent

MAX_REQUEST_BYTES = 4 << 20


def _emit(channel: IO[bytes], message: dict[str, Any]) -> None:
    emit(channel, json.dumps(message, allow_nan=False, default=str))


def _failure(exc: BaseException, memory_mb: int | None = None) -> dict[str, Any]:
    from appliance.train.child.run import empty_result

    result = empty_result()
    message = "the training process ran out of memory" if isinstance(exc, MemoryError) \
        else f"{type(exc).__name__}: {exc}"[:2000]
    if memory_mb and (isinstance(exc, MemoryError) or "failed to map segment" in str(exc)):
        message += f" (its address-space cap is {memory_mb} MB; raise memory_mb)"
    result["error"] = {"type": "internal", "message": message,
                       "traceback": traceback.format_exc()[-4000:]}
    return result


def serve_one(stdin: IO[bytes], channel: IO[bytes]) -> int:
    line = stdin.readline(MAX_REQUEST_BYTES + 1)
    memory_mb: int | None = None
    try:
        if len(line) > MAX_REQUEST_BYTES:
            raise ValueError(f"the request line is over {MAX_REQUEST_BYTES} bytes")
        request = json.loads(line)
        if not isinstance(request, dict):
            raise ValueError("the request must be a JSON object")
        if request.get("parent_pid"):
            watch_parent(int(request["parent_pid"]))
        if request.get("memory_mb"):
            memory_mb = int(request["memory_mb"])
            limit_memory(memory_mb)

        from appliance.train.child.run import run_job

        result = run_job(request, lambda stage, fraction: _emit(
            channel, {"progress": {"stage": stage, "fraction": round(float(fraction), 4)}}))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:   # report every failure as a result line
        result = _failure(exc, memory_mb)
    try:
        _emit(channel, {"result": result})
    except ValueError as exc:   # a value JSON cannot carry: still answer with one line
        _emit(channel, {"result": _failure(exc)})
    return 0


def main() -> int:
    # one thread per library: reproducible results, and little address space under RLIMIT_AS
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    channel = claim_stdout()   # stray prints from libraries go to stderr, never into the protocol
    return serve_one(sys.stdin.buffer, channel)


if __name__ == "__main__":
    sys.exit(main())
