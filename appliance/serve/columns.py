"""Rows that arrive as named columns (tensors), fed to ONNX without a detour through records.

The Open Inference Protocol sends one tensor per input; the V2 adapter
(``appliance.serve.v2``) names them by the model's columns. Scoring checks each
column against the model's input of that column (its element kind and its
per-row shape) and casts it in one numpy call; the records the prediction log
keeps are built once, from whole columns. A missing value is NaN in a float
column (as ``null`` is on the predict route); infinities are refused.
"""

from __future__ import annotations

import math
from typing import Any

from appliance.errors import TooLarge, UnprocessableInput
from appliance.serve.feeds import MAX_ROWS, REQUEST_ID, ROWS, new_request_ids
from appliance.serve.sessions import Input, LoadedModel

_FLOATS = frozenset({"float", "double", "float16"})
_NUMPY = {"float": "float32", "double": "float64", "float16": "float16", "int8": "int8",
          "int16": "int16", "int32": "int32", "int64": "int64", "uint8": "uint8",
          "uint16": "uint16", "uint32": "uint32", "uint64": "uint64", "bool": "bool"}


class ColumnRecords:
    """``columns``: column name -> array of ``n`` rows (``[n]``, ``[n, 1]`` or ``[n, ...]``)."""

    places = ROWS

    def __init__(self, columns: dict[str, Any], request_ids: list[str] | None = None) -> None:
        if not columns:
            raise UnprocessableInput("send at least one input column")
        lengths = {name: int(a.shape[0]) if a.ndim else -1 for name, a in columns.items()}
        n = next(iter(lengths.values()))
        if len(set(lengths.values())) != 1 or n < 1:
            raise UnprocessableInput(
                "every input needs the same number of rows (its first dimension), at least 1",
                detail={"rows": lengths})
        if n > MAX_ROWS:
            raise TooLarge(f"at most {MAX_ROWS} rows a request; score bigger files with "
                           "`appliance predict`", detail={"rows": n})
        if request_ids is not None and len(request_ids) != n:
            raise UnprocessableInput(f"{REQUEST_ID} holds {len(request_ids)} values for {n} rows",
                                     detail={"field": REQUEST_ID})
        self.columns = columns
        self.n = n
        self.request_ids = request_ids or new_request_ids(n)
        self._rows: list[ColumnRow] | None = None
        self._values: list[list[Any]] | None = None

    def __len__(self) -> int:
        return self.n

    def raw(self) -> list[ColumnRow]:
        """The rows, each reading its values from the columns when asked: a sticky canary
        key reads one value; the prediction log's writer thread asks ``to_record`` off the
        request path (building 10,000 dicts cost about as much as scoring them)."""
        if self._rows is None:
            self._rows = [ColumnRow(self, i) for i in range(self.n)]
        return self._rows

    def values(self) -> list[list[Any]]:
        """Column by column, plain values (NaN as None); built once, on first use."""
        if self._values is None:  # two threads building it at once build the same lists
            values = []
            for a in self.columns.values():
                flat = a.reshape(self.n) if a.ndim == 1 or a.shape[1:] == (1,) else a
                listed = flat.tolist()
                if flat.dtype.kind == "f" and _any_nan(flat, listed):
                    listed = _nan_to_none(listed)
                values.append(listed)
            self._values = values
        return self._values

    def feeds(self, loaded: LoadedModel) -> dict[str, Any]:
        """ONNX feeds for ``loaded``, or 422 naming the column."""
        by_name = {inp.column: inp for inp in loaded.inputs}
        extra = sorted(set(self.columns) - set(by_name))
        if extra:
            raise UnprocessableInput(f"unknown input {extra[0]!r}; {loaded.model} "
                                     f"v{loaded.version} takes {sorted(by_name)}",
                                     detail={"field": extra[0]})
        feeds: dict[str, Any] = {}
        for inp in loaded.inputs:
            array = self.columns.get(inp.column)
            if array is None:
                raise UnprocessableInput(f"missing input {inp.column!r}",
                                         detail={"field": inp.column})
            feeds[inp.name] = _feed(inp, array, self.n)
        return feeds


class ColumnRow:
    """Row ``i`` of a ``ColumnRecords``, as the prediction log and canary routing read it."""

    __slots__ = ("_i", "_of")

    def __init__(self, of: ColumnRecords, i: int) -> None:
        self._of, self._i = of, i

    def get(self, key: str, default: Any = None) -> Any:
        names = list(self._of.columns)
        if key not in self._of.columns:
            return default
        return self._of.values()[names.index(key)][self._i]

    def to_record(self) -> dict[str, Any]:
        i = self._i
        return {name: column[i] for name, column in
                zip(self._of.columns, self._of.values(), strict=True)}


def _feed(inp: Input, array: Any, n: int) -> Any:
    import numpy as np

    def bad(message: str) -> UnprocessableInput:
        return UnprocessableInput(f"input {inp.column!r} {message}"[:400],
                                  detail={"field": inp.column})

    row_shape = tuple(array.shape[1:])
    if inp.scalar:
        if row_shape not in ((), (1,)):
            raise bad(f"has shape {list(array.shape)}; it takes [{n}] or [{n}, 1]")
    elif row_shape != inp.shape:
        raise bad(f"has shape {list(array.shape)}; it takes {[n, *inp.shape]}")
    kind = array.dtype.kind
    if inp.kind == "string":
        if kind != "O":
            raise bad(f"is text (BYTES); got {array.dtype.name}")
        out = array
    elif inp.kind in _FLOATS:
        if kind not in "fiu":
            raise bad(f"is a number ({inp.kind}); got {_name(array)}")
        out = array.astype(_NUMPY[inp.kind], copy=False)
        if kind == "f" and _any_inf(out):
            raise bad("holds an infinity")
    elif inp.kind == "bool":
        if kind != "b":
            raise bad(f"is true/false (BOOL); got {_name(array)}")
        out = array
    elif inp.kind in _NUMPY:
        if kind not in "iu":
            raise bad(f"is an integer ({inp.kind}); got {_name(array)}")
        info = np.iinfo(_NUMPY[inp.kind])
        if array.size and (array.min() < info.min or array.max() > info.max):
            raise bad(f"holds a value out of the range of {inp.kind}")
        out = array.astype(_NUMPY[inp.kind], copy=False)
    else:
        raise bad(f"is {inp.kind}; this model cannot be fed tensors")
    shape = (n,) if inp.shape == () else (n, *inp.shape)
    return np.ascontiguousarray(out.reshape(shape))


def _name(array: Any) -> str:
    return "text (BYTES)" if array.dtype.kind == "O" else array.dtype.name


_SMALL = 64  # below this many values, a Python scan beats a numpy call's fixed cost


def _any_nan(array: Any, listed: list[Any]) -> bool:
    if array.size < _SMALL:
        return any(v != v for v in listed)  # NaN is the one value unequal to itself
    import numpy as np

    return bool(np.isnan(array).any())


def _any_inf(array: Any) -> bool:
    if array.size < _SMALL:
        return any(math.isinf(v) for v in array.reshape(-1).tolist())
    import numpy as np

    return bool(np.isinf(array).any())


def _nan_to_none(values: list[Any]) -> list[Any]:
    return [None if isinstance(v, float) and v != v else v for v in values]
