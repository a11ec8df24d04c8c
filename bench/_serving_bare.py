"""The bare limit for bench/serving.py: FastAPI + onnxruntime and nothing else.

Not part of the appliance. ``bench/serving.py`` runs it as::

    BENCH_ONNX=/path/model.onnx uvicorn --app-dir bench _serving_bare:app --workers 1

It loads one ONNX file (as exported by ``appliance.train.child.export``: one
``[None, 1]`` input per raw column, outputs ``label`` and ``probabilities``)
into one onnxruntime session (intra-op threads = 1) and answers
``POST /predict`` with a JSON list of records, in the same response shape as
our predict route: ``{"model", "version", "predictions", "probabilities",
"request_ids"}``. No auth, no signature check, no logging, no metrics: what is
left is the floor of an HTTP + JSON + onnxruntime route on this stack.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI, Request, Response

_options = ort.SessionOptions()
_options.intra_op_num_threads = 1
_options.inter_op_num_threads = 1
_session = ort.InferenceSession(os.environ["BENCH_ONNX"], _options,
                                providers=["CPUExecutionProvider"])
_meta = _session.get_modelmeta().custom_metadata_map
_columns: dict[str, str] = json.loads(_meta.get("appliance.columns", "{}"))
_classes: list[Any] = json.loads(_meta.get("appliance.classes", "[0, 1]"))
_inputs = [(i.name, _columns.get(i.name, i.name), i.type == "tensor(string)")
           for i in _session.get_inputs()]
_class_keys = [str(c) for c in _classes]

app = FastAPI()


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict")
async def predict(request: Request) -> Response:
    records = json.loads(await request.body())
    if isinstance(records, dict):
        records = [records]
    feeds = {}
    for name, column, is_string in _inputs:
        if is_string:
            feeds[name] = np.array([[r[column]] for r in records], dtype=object)
        else:
            feeds[name] = np.array([[r[column]] for r in records], dtype=np.float32)
    labels, proba = _session.run(None, feeds)
    out = {
        "model": "bench",
        "version": 1,
        "predictions": [_classes[i] for i in labels.tolist()],
        "probabilities": [dict(zip(_class_keys, row, strict=True)) for row in proba.tolist()],
        "request_ids": [uuid.uuid4().hex for _ in records],
    }
    return Response(json.dumps(out), media_type="application/json")
