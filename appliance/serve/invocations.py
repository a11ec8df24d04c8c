"""MLflow's scoring protocol (``mlflow models serve``'s ``/invocations``) over predict.

A JSON body holds exactly one of MLflow's four keys, as its scoring server
reads them (``mlflow.pyfunc.scoring_server``), plus optionally ``params``
(accepted and ignored: the appliance's models take none):

- ``dataframe_split``: ``{"columns": [...], "data": [[...], ...], "index"?}``
- ``dataframe_records``: ``[{column: value}, ...]``
- ``instances``: records, a dict of columns (``{column: [values]}``), or rows
  (lists, for a model of one tensor input)
- ``inputs``: the same as ``instances`` (TF-serving's columnar name)

CSV and Parquet bodies are read as the predict route reads them. Every body
becomes the predict route's records, scored by ``PredictionService.predict``
with the alias ``APPLIANCE_COMPAT_ALIAS`` (canary, shadow, log, metrics
included), and answered as MLflow does: ``{"predictions": [...]}``.
"""

from __future__ import annotations

from typing import Any

from appliance.domain.registry import CHAMPION
from appliance.domain.serving import Invocation
from appliance.errors import InvalidInput
from appliance.serve.service import PredictionService

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
PARAMS = "params"


def records_of(payload: Any) -> Any:
    """The predict route's records from an MLflow JSON body, or ``InvalidInput``."""
    if not isinstance(payload, dict):
        raise InvalidInput("the body must be a JSON object with one of the keys "
                           f"{', '.join(FORMATS)}")
    keys = [k for k in payload if k in FORMATS]
    other = sorted(set(payload) - set(FORMATS) - {PARAMS})
    if len(keys) != 1 or other:
        raise InvalidInput(f"the body must have exactly one of {', '.join(FORMATS)} (and "
                           f"optionally params); got {sorted(payload)[:10]}",
                           detail={"keys": sorted(payload)[:10]})
    params = payload.get(PARAMS)
    if params is not None and not isinstance(params, dict):
        raise InvalidInput("params must be an object")
    key = keys[0]
    data = payload[key]
    if key == "dataframe_split":
        return _split(data)
    if key == "dataframe_records":
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InvalidInput("dataframe_records must be a list of objects keyed by column")
        return data
    return _tensors(key, data)


def _split(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise InvalidInput("dataframe_split must be {\"columns\": [...], \"data\": [[...]]}")
    columns = data.get("columns")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise InvalidInput("dataframe_split needs \"columns\": the column names")
    rows = data["data"]
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InvalidInput(f"dataframe_split row {i} (counting from 0) must be a list of "
                               f"{len(columns)} values", detail={"row": i})
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _tensors(key: str, data: Any) -> Any:
    if isinstance(data, dict):  # columnar: {column: [values]} or one record of scalars
        lists = [v for v in data.values() if isinstance(v, list)]
        if not lists:
            return [data]
        lengths = {len(v) for v in data.values() if isinstance(v, list)}
        if len(lists) != len(data) or len(lengths) != 1:
            raise InvalidInput(f"{key} as columns needs a list of the same length for "
                               "every column")
        names = list(data)
        return [dict(zip(names, row, strict=True)) for row in zip(*data.values(), strict=True)]
    if isinstance(data, list):
        return data  # records, or rows for a one-input model: predict's own checks apply
    raise InvalidInput(f"{key} must be a list of records or rows, or an object of columns")


class InvocationService:
    def __init__(self, serving: PredictionService, *, alias: str = CHAMPION) -> None:
        self.serving = serving
        self.alias = alias

    def default_model(self) -> str:
        """The model ``/invocations`` scores: the only one registered."""
        names = [m.name for m in self.serving.sessions.registry.list_models()]
        if len(names) != 1:
            raise InvalidInput(
                f"{len(names)} models are registered; /invocations answers only when there is "
                "exactly one: post to /api/v1/models/{name}/invocations",
                detail={"models": names[:20]})
        return names[0]

    def invoke(self, model: str | None, records: Any) -> Invocation:
        """Score parsed records (``records_of``, or a CSV/Parquet body) as MLflow answers."""
        name = model if model is not None else self.default_model()
        answer = self.serving.predict(name, records, alias=self.alias)
        return Invocation(predictions=answer["predictions"])
