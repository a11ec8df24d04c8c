"""``appliance explain``: why a logged request, or the rows of a file, got their scores."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from appliance.cli.backend import call
from appliance.cli.common import Home, fail
from appliance.cli.output import Json, record, rows, show, text
from appliance.errors import InvalidInput

MAX_FILE_BYTES = 5 * 1024 * 1024
_BAR = 24


def explain(
    target: Annotated[str, typer.Argument(
        help="A logged request id; with --model, a JSON or CSV file of rows to explain.")],
    model: Annotated[str | None, typer.Option(
        "--model", help="MODEL, MODEL@ALIAS or MODEL@vN: explain the rows of the file TARGET "
                        "with it.")] = None,
    method: Annotated[Method | None, typer.Option(
        help="tree_shap or sampling_shapley (default: tree_shap where the model has a "
             "booster).")] = None,
    as_json: Json = False,
    home: Home = None,
) -> None:
    """Per-feature contributions behind a logged prediction, or behind rows of a file."""
    if model is None:
        out = call(home, lambda backend: backend.explain_request(target, _value(method)))
        show(out, as_json, explanation)
        return
    name, _, ref = model.partition("@")
    alias, version = (None, int(ref[1:])) if ref.startswith("v") and ref[1:].isdigit() \
        else (ref or None, None)
    body = _rows(Path(target))
    answers = call(home, lambda backend: backend.explain_rows(name, body, alias, version,
                                                              _value(method)))
    show(answers, as_json, lambda items: [x for e in items for x in explanation(e)])


class Method(StrEnum):
    tree_shap = "tree_shap"
    sampling_shapley = "sampling_shapley"


def _value(method: Method | None) -> str | None:
    return None if method is None else method.value


def _rows(path: Path) -> list[dict[str, Any]] | bytes:
    """A file's rows: JSON (an object or an array of them) as records, CSV as its bytes."""
    if not path.is_file():
        fail(InvalidInput(f"{path} is not a file"))
    if path.stat().st_size > MAX_FILE_BYTES:
        fail(InvalidInput(f"{path} is over {MAX_FILE_BYTES >> 20} MB; explain a few rows"))
    data = path.read_bytes()
    if path.suffix.lower() != ".json":
        return data
    try:
        doc = json.loads(data)
    except ValueError as exc:
        fail(InvalidInput(f"{path} is not JSON: {exc}"))
    if isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        fail(InvalidInput(f"{path} must hold an object or an array of objects keyed by column"))
    return doc


def explanation(e: dict[str, Any]) -> list[Any]:
    """A header record, then the contributions with a bar each (largest first)."""
    head = record(e, title=f"{e['model']} v{e['version']}: {e['method']}",
                  fields=["request_id", "prediction", "probability", "explained_class",
                          "output", "base_value", "score", "duration_ms"])
    items = e.get("contributions") or []
    scale = max((abs(c["contribution"]) for c in items), default=0.0) or 1.0
    table = rows([{**c, "": _bar(c["contribution"], scale)} for c in items],
                 ["feature", "value", "contribution", ""],
                 title=f"contributions ({e['output']}: base {e['base_value']:.4g} + sum = "
                       f"{e['score']:.4g})")
    return [head, table, text("")]


def _bar(value: float, scale: float) -> str:
    n = round(_BAR * abs(value) / scale)
    return ("+" if value >= 0 else "-") * max(n, 0)
