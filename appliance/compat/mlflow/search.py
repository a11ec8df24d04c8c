"""MLflow's search grammar for runs and experiments: ``metrics.auc > 0.8 AND
params.depth = '3'``, ``attributes.status = 'FINISHED'``, ``tags.team LIKE 'ml%'``, and
``order_by`` clauses (``metrics.auc DESC``). Parsed into comparisons and evaluated on the
translated runs (an appliance holds thousands of runs, not millions)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.compat.mlflow import wire
from appliance.errors import InvalidInput

_ENTITY = {
    "metric": "metrics", "metrics": "metrics",
    "param": "params", "params": "params", "parameter": "params", "parameters": "params",
    "tag": "tags", "tags": "tags",
    "attribute": "attributes", "attributes": "attributes", "attr": "attributes",
    "run": "attributes",
}
_ATTRIBUTES = {"run_id", "run_name", "status", "start_time", "end_time", "user_id",
               "artifact_uri", "lifecycle_stage", "name", "experiment_id", "created",
               "creation_time", "last_update_time", "source_run_id", "model_id",
               "model_type"}
_CLAUSE = re.compile(
    r"""\s*(?:(?P<entity>\w+)\.)?(?P<key>`[^`]+`|"[^"]+"|[\w.\-/]+)\s*
        (?P<op>!=|<=|>=|=|<|>|(?i:not\s+in)|(?i:in)|(?i:ilike)|(?i:like))\s*
        (?P<value>'(?:[^']|'')*'|"[^"]*"|\((?:[^)]*)\)|-?[\d.]+(?:e-?\d+)?)\s*""",
    re.VERBOSE,
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Comparison:
    entity: str   # metrics | params | tags | attributes
    key: str
    op: str
    value: str | float | tuple[str, ...]


def parse_filter(text: str | None, *, default_entity: str = "attributes") -> list[Comparison]:
    if not text or not text.strip():
        return []
    out = []
    for part in _split_and(text):
        m = _CLAUSE.fullmatch(part)
        if m is None:
            raise InvalidInput(f"invalid filter clause {part.strip()!r}",
                               detail={"field": "filter"})
        entity = _ENTITY.get((m["entity"] or default_entity).lower())
        key = m["key"].strip('`"')
        if entity is None or (entity == "attributes" and key not in _ATTRIBUTES):
            raise InvalidInput(f"invalid filter key {m.group(0).strip()!r}: use metrics.<key>, "
                               "params.<key>, tags.<key> or attributes.<name>",
                               detail={"field": "filter"})
        out.append(Comparison(entity, key, " ".join(m["op"].upper().split()),
                              _value(m["value"])))
    return out


def _split_and(text: str) -> list[str]:
    """Split on AND outside quotes."""
    parts, start, quote = [], 0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        else:
            m = _AND.match(text, i)
            if m:
                parts.append(text[start:i])
                start = i = m.end()
                continue
        i += 1
    parts.append(text[start:])
    return parts


def _value(raw: str) -> str | float | tuple[str, ...]:
    if raw.startswith("("):
        return tuple(v.strip().strip("'\"") for v in raw[1:-1].split(",") if v.strip())
    if raw[0] in "'\"":
        return raw[1:-1].replace("''", "'")
    return float(raw)


def matches(c: Comparison, actual: str | float | None) -> bool:
    if actual is None:
        return False
    if c.op in ("IN", "NOT IN"):
        inside = str(actual) in (c.value if isinstance(c.value, tuple) else (str(c.value),))
        return inside if c.op == "IN" else not inside
    if c.op in ("LIKE", "ILIKE"):
        pattern = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch)
                          for ch in str(c.value))
        return re.fullmatch(pattern, str(actual), re.IGNORECASE if c.op == "ILIKE" else 0) \
            is not None
    left: str | float = actual
    right: str | float = c.value if not isinstance(c.value, tuple) else ""
    if isinstance(actual, float) or isinstance(right, float):
        try:
            left, right = float(actual), float(right)
        except ValueError:
            return False
    else:
        left, right = str(actual), str(right)
    return bool(_OPS[c.op](left, right))


_OPS: dict[str, Callable[[object, object], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
}


def run_value(run: wire.Run, entity: str, key: str) -> str | float | None:
    if entity == "metrics":
        return next((m.value for m in run.data.metrics if m.key == key), None)
    if entity in ("params", "tags"):
        pairs = run.data.params if entity == "params" else run.data.tags
        return next((p.value for p in pairs if p.key == key), None)
    if key in ("start_time", "end_time"):
        stamp = getattr(run.info, key)
        return float(stamp) if stamp is not None else None
    if key == "created":
        return float(run.info.start_time) if run.info.start_time is not None else None
    if key == "name":
        return run.info.run_name
    value = getattr(run.info, key, None)
    return str(value) if value is not None else None


def filter_runs(runs: Sequence[wire.Run], text: str | None) -> list[wire.Run]:
    clauses = parse_filter(text)
    return [r for r in runs if all(matches(c, run_value(r, c.entity, c.key)) for c in clauses)]


_ORDER = re.compile(r"\s*(?:(?P<entity>\w+)\.)?(?P<key>`[^`]+`|\"[^\"]+\"|[\w.\-/]+)"
                    r"(?:\s+(?P<dir>asc|desc))?\s*", re.IGNORECASE)


def order_runs(runs: list[wire.Run], order_by: Sequence[str]) -> list[wire.Run]:
    """Sorted by the clauses (missing values last), then newest start, then run id."""
    out = sorted(runs, key=lambda r: r.info.run_id)
    out.sort(key=lambda r: -(r.info.start_time or 0))
    for clause in reversed(list(order_by)):
        m = _ORDER.fullmatch(clause)
        entity = _ENTITY.get((m["entity"] or "attributes").lower()) if m else None
        if m is None or entity is None:
            raise InvalidInput(f"invalid order_by clause {clause!r}",
                               detail={"field": "order_by"})
        key, desc = m["key"].strip('`"'), (m["dir"] or "asc").lower() == "desc"
        present = [r for r in out if run_value(r, entity, key) is not None]
        missing = [r for r in out if run_value(r, entity, key) is None]
        present.sort(key=lambda r: _sortable(run_value(r, entity, key)), reverse=desc)
        out = present + missing
    return out


def _sortable(v: str | float | None) -> tuple[int, float, str]:
    return (0, v, "") if isinstance(v, float) else (1, 0.0, str(v))
