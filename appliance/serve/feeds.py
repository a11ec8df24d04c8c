"""Request rows -> ONNX feeds, or 422 naming the first bad field and where it is.

Rows are records keyed by column. Every input column must be there with the
right type and nothing else may be (besides an optional ``request_id``).
Missing values are ``null``: NaN for a number, ``""`` for text.

Two paths. The appliance's own exports (one value a row per input, of kinds
float, double, int64 and string) are checked and converted table-wise: one
pass collects the Python types present, numpy converts the whole table at once
(:func:`scalar_feeds`). Anything else (a model from elsewhere with a vector
input ``[batch, k]``, a rank-1 input, int32 or bool inputs) is checked value by
value (:func:`tensor_feeds`): a vector input takes a nested list of the row's
shape, or, when its upload named ``features``, one field per feature; a model
with one input also takes bare rows (``[[5.1, 3.5, 1.4, 0.2], ...]``).

Where a row is: JSON and Parquet rows count from 0 (``row 0`` is the first
record); CSV rows are named by their line in the body, counting the header as
line 1 (see ``appliance.serve.csvbody``). ``detail.row`` always counts from 0.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

from appliance.errors import TooLarge, UnprocessableInput
from appliance.serve.sessions import UNKNOWN, Input, LoadedModel

MAX_ROWS = 10_000
REQUEST_ID = "request_id"


class Places:
    """How an error names row ``i``: JSON and Parquet rows count from 0."""

    def name(self, i: int) -> str:
        return f"row {i} (counting from 0)"

    def detail(self, i: int) -> dict[str, Any]:
        return {"row": i}


ROWS = Places()


def bad(places: Places, i: int, message: str, **detail: Any) -> UnprocessableInput:
    return UnprocessableInput(f"{places.name(i)}: {message}"[:500],
                              detail={**places.detail(i), **detail})


def rows_of(records: Any) -> list[Any]:
    """The request's rows (objects, or lists for a one-input model), checked for count."""
    rows = [records] if isinstance(records, dict) else records
    if not isinstance(rows, list) or not rows:
        raise UnprocessableInput("send a JSON object, or an array of objects keyed by column")
    if len(rows) > MAX_ROWS:
        raise TooLarge(f"at most {MAX_ROWS} rows a request; score bigger files with "
                       "`appliance predict`", detail={"rows": len(rows)})
    return rows


def feeds_for(loaded: LoadedModel, rows: list[Any], places: Places = ROWS
              ) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    """(ONNX feeds, request ids, the rows as records) for ``rows``, or 422."""
    if loaded.fast:
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise bad(places, i, "is not an object")
        feeds, request_ids = scalar_feeds(loaded, rows, places)
        return feeds, request_ids, rows
    return tensor_feeds(loaded, rows, places)


# -- the appliance's own exports: table-wise ------------------------------------------

_NUMBER_TYPES = frozenset({int, float, type(None)})
_TEXT_TYPES = frozenset({str, type(None)})
_INTS = {int}
_INT_TYPES = frozenset({int, type(None)})  # a float in an int64 input is checked slowly


def _request_ids(rows: list[dict[str, Any]], expected: frozenset[str], places: Places
                 ) -> list[str]:
    with_id = expected | {REQUEST_ID}
    request_ids: list[str] = []
    fresh: list[int] = []  # rows that need a new id, filled at once
    for i, row in enumerate(rows):
        keys = row.keys()
        if keys == expected:  # the common case: exactly the signature, no request id
            fresh.append(i)
            request_ids.append("")
            continue
        if keys != with_id:
            extra = keys - with_id
            if extra:
                name = sorted(extra)[0]
                raise bad(places, i, f"unknown field {name!r}", field=name)
            missing = expected - keys
            if missing:
                name = sorted(missing)[0]
                raise bad(places, i, f"missing field {name!r}", field=name)
        rid = row.get(REQUEST_ID)
        if rid is not None and (not isinstance(rid, str) or not 0 < len(rid) <= 100):
            raise bad(places, i, "request_id must be a string of 1-100 characters",
                      field=REQUEST_ID)
        if rid:
            request_ids.append(rid)
        else:
            fresh.append(i)
            request_ids.append("")
    for i, rid in zip(fresh, new_request_ids(len(fresh)), strict=True):
        request_ids[i] = rid
    return request_ids


def new_request_ids(n: int) -> list[str]:
    """``n`` random version-4 UUIDs as 32 hex digits (``uuid.uuid4().hex``); many at once
    from one read of the OS's randomness (a read per id cost 10 us each on 10k rows)."""
    if n < 16:
        return [uuid.uuid4().hex for _ in range(n)]
    import os

    import numpy as np

    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.tobytes().hex()
    return [text[i:i + 32] for i in range(0, 32 * n, 32)]


def scalar_feeds(loaded: LoadedModel, rows: list[dict[str, Any]], places: Places = ROWS
                 ) -> tuple[dict[str, Any], list[str]]:
    """The float inputs are checked and converted together; only when something is
    wrong is the table walked value by value (``_refuse``), to name the first bad
    field the way a reader would look."""
    import numpy as np

    request_ids = _request_ids(rows, loaded.columns, places)
    floats, columns = loaded.float_inputs, loaded.float_columns
    table = [[row[c] for c in columns] for row in rows]
    number_types: set[type] = set()
    for values in table:
        number_types.update(map(type, values))
    texts = {inp.column: [row[inp.column] for row in rows] for inp in loaded.text_inputs}
    ints = {inp.column: [row[inp.column] for row in rows] for inp in loaded.int_inputs}
    if not number_types <= _NUMBER_TYPES \
            or any(not set(map(type, v)) <= _TEXT_TYPES for v in texts.values()) \
            or any(not set(map(type, v)) <= _INT_TYPES for v in ints.values()):
        _refuse(loaded, rows, places)  # raises, naming the first bad field
    try:
        matrix = np.array(table, dtype=np.float64).reshape(len(rows), len(floats))  # None: nan
    except OverflowError:  # an integer too big for a float
        _refuse(loaded, rows, places)
        raise
    if number_types != _INTS and not _all_finite(matrix):
        bad_cells = ~np.isfinite(matrix)
        for i, j in zip(*np.nonzero(bad_cells.T)[::-1], strict=True):  # column by column
            if table[i][j] is not None:
                raise bad(places, int(i), f"field {columns[j]!r} is not finite ({table[i][j]})",
                          field=columns[j])

    feeds: dict[str, Any] = {}
    # one contiguous [n, 1] block per input, taken by indexing (a reshape each costs more)
    single = matrix.T.astype(np.float32, order="C")[:, :, None]
    double = np.ascontiguousarray(matrix.T)[:, :, None] if loaded.has_double else None
    for j, inp in enumerate(floats):
        source = double if inp.kind == "double" and double is not None else single
        feeds[inp.name] = source[j]
    for inp in loaded.text_inputs:
        values = texts[inp.column]
        feeds[inp.name] = np.array([v if v is not None else "" for v in values],
                                   dtype=object).reshape(-1, 1)
    for inp in loaded.int_inputs:
        feeds[inp.name] = np.asarray([0 if v is None else v for v in ints[inp.column]],
                                     dtype=np.int64).reshape(-1, 1)
    return feeds, request_ids


_SMALL = 64  # below this many cells a Python scan beats numpy's fixed cost per call


def _all_finite(matrix: Any) -> bool:
    if matrix.size < _SMALL:
        return all(map(math.isfinite, matrix.ravel().tolist()))
    import numpy as np

    return bool(np.isfinite(matrix).all())


def _refuse(loaded: LoadedModel, rows: list[dict[str, Any]], places: Places) -> None:
    """Raise 422 for the first bad value, input by input and row by row."""
    for inp in loaded.inputs:
        for i, row in enumerate(rows):
            problem = _scalar_problem(inp.kind, row[inp.column])
            if problem is not None:
                raise bad(places, i, f"field {inp.column!r} {problem}", field=inp.column)


# -- anything else: value by value --------------------------------------------------

_NUMPY = {"float": "float32", "double": "float64", "float16": "float16", "int8": "int8",
          "int16": "int16", "int32": "int32", "int64": "int64", "uint8": "uint8",
          "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "bool": "bool"}
_FLOATS = frozenset({"float", "double", "float16"})


def _scalar_problem(kind: str, v: Any) -> str | None:
    """Why ``v`` cannot be one value of an input of ``kind`` (None: it can; null is missing)."""
    if v is None:
        return None if kind in _FLOATS or kind in ("string", "int64") else "must not be null"
    if kind == "string":
        return None if isinstance(v, str) else f"must be text, got {type(v).__name__}"
    if kind == "bool":
        return None if isinstance(v, bool) else f"must be true or false, got {type(v).__name__}"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return f"must be a number, got {type(v).__name__}"
    if kind not in _FLOATS and not isinstance(v, int):
        return f"must be an integer, got {v!r}"[:200]
    try:
        finite = math.isfinite(v)
    except OverflowError:  # an integer too big for a float
        finite = False
    if not finite:
        return f"is not finite ({v})"[:200]
    return None


def _value_problem(inp: Input, v: Any, shape: tuple[int, ...]) -> str | None:
    if not shape:
        return _scalar_problem(inp.kind, v)
    if not isinstance(v, list) or len(v) != shape[0]:
        got = f"a list of {len(v)}" if isinstance(v, list) else type(v).__name__
        return f"must be a list of {shape[0]} values, got {got}"
    for x in v:
        problem = _value_problem(inp, x, shape[1:])
        if problem is not None:
            return problem
    return None


def _value_of(inp: Input, row: dict[str, Any]) -> Any:
    if inp.features is not None and inp.column not in row:
        return [row[f] for f in inp.features]
    return row[inp.column]


def _fields(inp: Input, row: dict[str, Any]) -> Iterator[str]:
    """The record fields ``inp`` reads from this row."""
    if inp.features is not None and inp.column not in row:
        yield from inp.features
    else:
        yield inp.column


def tensor_feeds(loaded: LoadedModel, rows: list[Any], places: Places = ROWS
                 ) -> tuple[dict[str, Any], list[str], list[dict[str, Any]]]:
    import numpy as np

    for inp in loaded.inputs:
        if inp.kind not in _NUMPY and inp.kind != "string":
            raise UnprocessableInput(f"input {inp.name!r} is {inp.kind}; this model cannot be "
                                     "fed from records", detail={"field": inp.name})
        if UNKNOWN in inp.shape:
            raise UnprocessableInput(f"input {inp.name!r} has a dimension of no fixed size "
                                     "after the batch; this model cannot be fed from records",
                                     detail={"field": inp.name})
    records: list[dict[str, Any]] = []
    request_ids: list[str] = []
    only = loaded.inputs[0] if len(loaded.inputs) == 1 else None
    for i, row in enumerate(rows):
        if isinstance(row, list) and only is not None:
            row = {only.column: row}
        if not isinstance(row, dict):
            raise bad(places, i, "is not an object")
        wanted = {REQUEST_ID}
        for inp in loaded.inputs:
            wanted.update(_fields(inp, row))
        extra = sorted(set(row) - wanted)
        if extra:
            raise bad(places, i, f"unknown field {extra[0]!r}", field=extra[0])
        missing = sorted(wanted - set(row) - {REQUEST_ID})
        if missing:
            raise bad(places, i, f"missing field {missing[0]!r}", field=missing[0])
        rid = row.get(REQUEST_ID)
        if rid is not None and (not isinstance(rid, str) or not 0 < len(rid) <= 100):
            raise bad(places, i, "request_id must be a string of 1-100 characters",
                      field=REQUEST_ID)
        request_ids.append(rid or uuid.uuid4().hex)
        records.append(row)

    feeds: dict[str, Any] = {}
    for inp in loaded.inputs:
        shape = () if inp.scalar else inp.shape
        values = []
        for i, row in enumerate(records):
            v = _value_of(inp, row)
            problem = _value_problem(inp, v, shape)
            if problem is not None:
                fields = list(_fields(inp, row))
                field = fields[0] if len(fields) == 1 else inp.column
                raise bad(places, i, f"field {field!r} {problem}", field=field)
            values.append(v)
        if inp.kind == "string":
            array = np.array(_nulls(values, ""), dtype=object)
        elif inp.kind in _FLOATS:
            array = np.array(_nulls(values, math.nan), dtype=np.float64).astype(_NUMPY[inp.kind])
        else:
            array = _integers(inp, _nulls(values, 0))
        feeds[inp.name] = array.reshape((len(records), *inp.shape))
    return feeds, request_ids, records


def _nulls(values: list[Any], fill: Any) -> list[Any]:
    """Nested values with every None replaced by ``fill``."""
    return [fill if v is None else _nulls(v, fill) if isinstance(v, list) else v for v in values]


def _integers(inp: Input, values: list[Any]) -> Any:
    """An integer or bool array of ``inp``'s kind; 422 for a value outside its range."""
    import numpy as np

    dtype = np.dtype(_NUMPY[inp.kind])
    if dtype == np.bool_:
        return np.array(values, dtype=dtype)
    info = np.iinfo(dtype)
    try:
        wide = np.array(values, dtype=np.int64 if info.min < 0 else np.uint64)
    except OverflowError:
        wide = None
    if wide is None or (wide.size and (wide.min() < info.min or wide.max() > info.max)):
        raise UnprocessableInput(f"input {inp.name!r}: a value is out of the range of "
                                 f"{inp.kind} ({info.min} to {info.max})",
                                 detail={"field": inp.column})
    return wide.astype(dtype)
