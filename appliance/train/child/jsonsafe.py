"""Turn results into strict JSON values: numpy scalars to Python, NaN/inf to null."""

from __future__ import annotations

import math
from typing import Any


def jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", 1) == 0:   # a numpy scalar
        return jsonable(item())
    tolist = getattr(value, "tolist", None)
    if callable(tolist):                                      # a numpy array
        return jsonable(tolist())
    return str(value)
