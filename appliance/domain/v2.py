"""The Open Inference Protocol (KServe V2) as the appliance answers it: typed shapes.

Names follow the protocol's own JSON (``metadata_server_response``,
``metadata_model_response``, ``metadata_tensor``); datatypes are the V2 names
(``FP32``, ``INT64``, ``BYTES``...). Pure: no numpy, no HTTP.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# ONNX element type (as ``appliance.serve.sessions`` names it) -> V2 datatype
V2_OF_KIND: dict[str, str] = {
    "float": "FP32", "double": "FP64", "float16": "FP16", "bool": "BOOL", "string": "BYTES",
    "int8": "INT8", "int16": "INT16", "int32": "INT32", "int64": "INT64",
    "uint8": "UINT8", "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64",
}
# V2 datatype -> numpy dtype name of one element (BYTES has no fixed size)
NUMPY_OF_V2: dict[str, str] = {
    "BOOL": "bool", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32",
    "UINT64": "uint64", "INT8": "int8", "INT16": "int16", "INT32": "int32", "INT64": "int64",
    "FP16": "float16", "FP32": "float32", "FP64": "float64", "BYTES": "object",
}
EXTENSIONS = ("binary_tensor_data",)
PREDICTIONS = "predictions"
PROBABILITIES = "probabilities"
REQUEST_ID = "request_id"


class ServerMetadata(BaseModel):
    """``GET /v2``: who answers and which protocol extensions it speaks."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: str
    extensions: list[str]


class TensorMetadata(BaseModel):
    """One input or output: its name, V2 datatype and shape (-1 where any size goes)."""

    model_config = ConfigDict(frozen=True)

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """``GET /v2/models/{name}[/versions/{v}]``: a model version's tensors."""

    model_config = ConfigDict(frozen=True)

    name: str
    versions: list[str] = Field(description="the version that answers (a number, as text)")
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class Liveness(BaseModel):
    model_config = ConfigDict(frozen=True)

    live: bool


class Readiness(BaseModel):
    model_config = ConfigDict(frozen=True)

    ready: bool
