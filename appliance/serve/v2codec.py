"""Open Inference Protocol (V2) request and response bodies <-> typed tensors.

A request is JSON (``{"id"?, "parameters"?, "inputs": [...], "outputs"?: [...]}``),
optionally followed by raw tensor bytes: the binary tensor extension. Then the
``Inference-Header-Content-Length`` header says where the JSON ends, and each
binary input says its size in ``parameters.binary_data_size``; the chunks follow
the JSON in the order of those inputs, and must fill the rest of the body
exactly. Numbers are little-endian; a ``BYTES`` element is a 4-byte
little-endian length and then its bytes. Every size is checked against the
body before anything is allocated; anything malformed is ``InvalidInput``
(400 on the V2 paths) naming the tensor.

A response carries each output as JSON ``data`` or, when the request asked for
it (``binary_data`` per output, or ``binary_data_output`` for all), as bytes
after the JSON, with ``Inference-Header-Content-Length`` set.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, NamedTuple

from appliance.domain.v2 import NUMPY_OF_V2
from appliance.errors import InvalidInput, TooLarge

MAX_ELEMENTS = 64 * 1024 * 1024  # per tensor; the body cap bounds binary data sooner
SMALL = 64  # elements: binary tensors this small decode to Python values, not numpy


class Tensor(NamedTuple):  # a named tuple: built 20 times a one-row request, cheaply
    """One decoded input: its V2 name, datatype and shape, and its values.

    ``values`` is the flat row-major list of the JSON ``data`` (checked against
    the datatype), or of binary data of at most SMALL elements; a bigger binary
    tensor is a numpy array of ``shape`` (BYTES: an object array of str). Small
    requests never pay numpy's cost per call; ``array`` converts when a caller
    needs one.
    """

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: Any

    @property
    def binary(self) -> bool:
        """The values are a numpy array (a binary tensor of more than SMALL elements)."""
        return not isinstance(self.values, list)

    def array(self) -> Any:
        import numpy as np

        if self.binary:
            return self.values
        return np.array(self.values, dtype=NUMPY_OF_V2[self.datatype]).reshape(self.shape)


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool | None  # None: as the request's ``binary_data_output`` says


@dataclass(frozen=True)
class InferRequest:
    id: str | None
    inputs: tuple[Tensor, ...]
    outputs: tuple[RequestedOutput, ...] | None  # None: every output
    binary_output: bool  # the request's ``binary_data_output`` (default for every output)


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    values: list[Any]  # flat, row-major
    binary: bool
    parameters: dict[str, Any] | None = None


@dataclass(frozen=True)
class InferAnswer:
    model_name: str
    model_version: str
    id: str | None
    outputs: tuple[OutputTensor, ...]

    def encode(self) -> tuple[bytes, int | None]:
        """(body, JSON header length when binary outputs follow it, else None)."""
        outputs: list[dict[str, Any]] = []
        chunks: list[bytes] = []
        for out in self.outputs:
            entry: dict[str, Any] = {"name": out.name, "datatype": out.datatype,
                                     "shape": list(out.shape)}
            parameters = dict(out.parameters or {})
            if out.binary:
                raw = _to_bytes(out.datatype, out.values)
                parameters["binary_data_size"] = len(raw)
                chunks.append(raw)
            else:
                entry["data"] = _to_json(out.datatype, out.values)
            if parameters:
                entry["parameters"] = parameters
            outputs.append(entry)
        head: dict[str, Any] = {"model_name": self.model_name,
                                "model_version": self.model_version}
        if self.id is not None:
            head["id"] = self.id
        head["outputs"] = outputs
        header = json.dumps(head, separators=(",", ":")).encode()
        if not chunks:
            return header, None
        return b"".join([header, *chunks]), len(header)


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """The typed request, or ``InvalidInput`` naming what is wrong."""
    head_bytes, binary = _split(body, header_length)
    try:
        head = json.loads(head_bytes)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the inference request header is not JSON: {exc}"[:300]) from exc
    if not isinstance(head, dict):
        raise InvalidInput("the inference request is a JSON object with \"inputs\"")
    rid = head.get("id")
    if rid is not None and not isinstance(rid, str):
        raise InvalidInput("\"id\" must be a string")
    params = _params(head.get("parameters"), "the request")
    binary_output = params.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise InvalidInput("parameters.binary_data_output must be true or false")
    entries = head.get("inputs")
    if not isinstance(entries, list) or not entries:
        raise InvalidInput("\"inputs\" must be a non-empty list of tensors")
    offset = 0
    tensors: list[Tensor] = []
    plain = _plain_json
    for i, entry in enumerate(entries):
        tensor = plain(entry)  # the common case first, without the full checks' calls
        if tensor is None:
            tensor, used = _input(entry, i, binary, offset)
            offset += used
        tensors.append(tensor)
    if offset != len(binary):
        raise InvalidInput(f"the body holds {len(binary)} bytes after the JSON header but the "
                           f"inputs' binary_data_size add up to {offset}",
                           detail={"binary_bytes": len(binary), "declared": offset})
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise InvalidInput("an input name appears twice")
    return InferRequest(rid, tuple(tensors), _outputs(head.get("outputs")), binary_output)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    text = header_length.strip()
    if not text.isdigit() or not 0 < int(text) <= len(body):
        raise InvalidInput(f"Inference-Header-Content-Length is {header_length[:30]!r}; it must "
                           f"be a whole number from 1 to the body's {len(body)} bytes",
                           detail={"header": "Inference-Header-Content-Length"})
    n = int(text)
    return body[:n], body[n:]


def _params(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidInput(f"parameters of {where} must be an object")
    return raw


def _input(entry: Any, i: int, binary: bytes, offset: int) -> tuple[Tensor, int]:
    """Input ``i`` and the binary bytes it took."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise InvalidInput(f"input {i} must be an object with a \"name\"", detail={"input": i})
    name = entry["name"]

    def bad(message: str) -> InvalidInput:
        return InvalidInput(f"input {name!r}: {message}"[:400], detail={"input": name})

    datatype = entry.get("datatype")
    if datatype not in NUMPY_OF_V2:
        raise bad(f"datatype {str(datatype)[:20]!r} is not one of {sorted(NUMPY_OF_V2)}")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not shape or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise bad("shape must be a non-empty list of whole numbers >= 0")
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise TooLarge(f"input {name!r}: shape {shape[:8]} holds {count} elements; at most "
                       f"{MAX_ELEMENTS}", detail={"input": name})
    size = _params(entry.get("parameters"), f"input {name!r}").get("binary_data_size")
    if size is None:
        if "data" not in entry:
            raise bad("has neither \"data\" nor parameters.binary_data_size")
        return Tensor(name, datatype, tuple(shape), _from_json(entry["data"], datatype, shape,
                                                               bad)), 0
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise bad("binary_data_size must be a whole number >= 0")
    if "data" in entry:
        raise bad("has both \"data\" and binary_data_size")
    if offset + size > len(binary):
        raise bad(f"binary_data_size {size} runs past the end of the body "
                  f"({len(binary) - offset} bytes left)")
    chunk = binary[offset:offset + size]
    return Tensor(name, datatype, tuple(shape),
                  _from_bytes(chunk, datatype, shape, count, bad)), size


_PLAIN_KEYS = frozenset({"name", "datatype", "shape", "data"})


def _plain_json(entry: Any) -> Tensor | None:
    """The common case, checked in one pass: ``{"name", "datatype", "shape", "data"}`` with
    flat data of the datatype's Python types and no parameters; else None (the full
    checks then say what is wrong)."""
    if type(entry) is not dict or entry.keys() != _PLAIN_KEYS:
        return None
    name, datatype, shape, data = entry["name"], entry["datatype"], entry["shape"], entry["data"]
    allowed = _JSON_TYPES.get(datatype) if type(name) is str and type(datatype) is str else None
    if allowed is None or type(shape) is not list or type(data) is not list or not shape:
        return None
    count = 1
    for d in shape:
        if type(d) is not int or d < 0:
            return None
        count *= d
    if len(data) != count or not set(map(type, data)) <= allowed:
        return None
    return Tensor(name, datatype, tuple(shape), data)


def _from_bytes(chunk: bytes, datatype: str, shape: list[int], count: int, bad: Any) -> Any:
    import numpy as np

    if datatype == "BYTES":
        items: list[str] = []
        pos = 0
        while pos < len(chunk):
            if len(items) == count or pos + 4 > len(chunk):
                raise bad(f"its {len(chunk)} bytes hold more than {count} BYTES elements")
            (n,) = struct.unpack_from("<I", chunk, pos)
            if pos + 4 + n > len(chunk):
                raise bad(f"BYTES element {len(items)} runs past its data")
            try:
                items.append(chunk[pos + 4:pos + 4 + n].decode())
            except UnicodeDecodeError:
                raise bad(f"BYTES element {len(items)} is not UTF-8 text") from None
            pos += 4 + n
        if len(items) != count:
            raise bad(f"holds {len(items)} BYTES elements; shape {shape} needs {count}")
        return items if count <= SMALL else np.array(items, dtype=object).reshape(shape)
    dtype = np.dtype(NUMPY_OF_V2[datatype]).newbyteorder("<")
    if len(chunk) != count * dtype.itemsize:
        raise bad(f"binary_data_size is {len(chunk)} bytes; shape {shape} of {datatype} needs "
                  f"{count * dtype.itemsize}")
    if count <= SMALL:  # a few values: plain Python ones, as JSON data would give
        return list(struct.unpack(f"<{count}{_STRUCT[datatype]}", chunk))
    return np.frombuffer(chunk, dtype=dtype).reshape(shape)


_STRUCT = {"BOOL": "?", "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q", "INT8": "b",
           "INT16": "h", "INT32": "i", "INT64": "q", "FP16": "e", "FP32": "f", "FP64": "d"}


_INTS = frozenset({int})
_JSON_TYPES: dict[str, frozenset[type]] = {
    "BOOL": frozenset({bool}), "BYTES": frozenset({str}),
    "FP16": frozenset({int, float}), "FP32": frozenset({int, float}),
    "FP64": frozenset({int, float}),
}


def _from_json(data: Any, datatype: str, shape: list[int], bad: Any) -> list[Any]:
    """The flat values, checked: count, Python types, and the range of integer types."""
    flat = _flatten(data, bad)
    count = math.prod(shape)
    if len(flat) != count:
        raise bad(f"data holds {len(flat)} values; shape {shape} needs {count}")
    allowed = _JSON_TYPES.get(datatype, _INTS)
    kinds = set(map(type, flat))
    if not kinds <= allowed:
        wrong = sorted(k.__name__ for k in kinds - allowed)
        raise bad(f"{datatype} data cannot hold {', '.join(wrong)} values")
    if allowed == _INTS and flat:
        import numpy as np

        info = np.iinfo(NUMPY_OF_V2[datatype])
        if min(flat) < info.min or max(flat) > info.max:
            raise bad(f"a value is out of the range of {datatype}")
    return flat


def _flatten(data: Any, bad: Any) -> list[Any]:
    """Row-major values of a flat or nested list."""
    if not isinstance(data, list):
        raise bad("data must be a list")
    if not any(isinstance(x, list) for x in data):
        return data
    out: list[Any] = []
    stack = [iter(data)]
    while stack:
        for x in stack[-1]:
            if isinstance(x, list):
                stack.append(iter(x))
                break
            out.append(x)
        else:
            stack.pop()
    return out


def _outputs(raw: Any) -> tuple[RequestedOutput, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidInput("\"outputs\" must be a list of {\"name\", \"parameters\"?}")
    out = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise InvalidInput(f"output {i} must be an object with a \"name\"",
                               detail={"output": i})
        binary = _params(entry.get("parameters"), f"output {entry['name']!r}").get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise InvalidInput(f"output {entry['name']!r}: binary_data must be true or false")
        out.append(RequestedOutput(entry["name"], binary))
    return tuple(out)


def _to_bytes(datatype: str, values: list[Any]) -> bytes:
    import numpy as np

    if datatype == "BYTES":
        if values and all(type(x) is str and x.isascii() for x in values):
            sizes = set(map(len, values))
            if len(sizes) == 1:  # request ids: one size, packed by numpy in one go
                return _packed(values, sizes.pop())
        encoded = [x if isinstance(x, bytes) else str(x).encode() for x in values]
        sizes = set(map(len, encoded))
        if len(sizes) == 1:
            return _packed(encoded, sizes.pop())
        return b"".join(struct.pack("<I", len(x)) + x for x in encoded)
    dtype = np.dtype(NUMPY_OF_V2[datatype]).newbyteorder("<")
    return np.asarray(values, dtype=dtype).tobytes()


def _packed(values: list[Any], size: int) -> bytes:
    """BYTES elements all ``size`` bytes long (ASCII text or bytes): length, then data."""
    import numpy as np

    packed = np.empty(len(values), dtype=[("n", "<u4"), ("b", f"S{size}")])
    packed["n"] = size
    packed["b"] = values
    return packed.tobytes()


def _to_json(datatype: str, values: list[Any]) -> list[Any]:
    if datatype == "BYTES":
        return [x if isinstance(x, str) else x.decode() if isinstance(x, bytes) else str(x)
                for x in values]
    return values
