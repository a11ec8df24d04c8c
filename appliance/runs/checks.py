"""The checks a run's inputs pass before anything is written: names, params, tags,
metric points (the key and value rules are ``appliance.domain.runkeys``) and artifact
paths."""

from __future__ import annotations

import datetime as dt
from typing import Any

from appliance.domain import runkeys as rules
from appliance.errors import InvalidInput

_ARTIFACT_NAME_MAX = 200
_ARTIFACT_PATH_MAX = 1000


def check_artifact_path(path: object) -> str:
    """A relative artifact path: '/'-separated names, none empty, '.' or '..'."""
    if not isinstance(path, str) or not path or len(path) > _ARTIFACT_PATH_MAX:
        raise InvalidInput(f"invalid artifact path {str(path)[:100]!r}",
                           detail={"field": "path"})
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\\" in path or "\x00" in path \
            or any(len(p) > _ARTIFACT_NAME_MAX for p in parts) \
            or any(ord(c) < 32 for c in path) or ":" in parts[0]:
        raise InvalidInput(f"invalid artifact path {path[:100]!r}: a relative path of "
                           "names, no '..', no empty or absolute parts",
                           detail={"field": "path"})
    return path


def check_name(name: object, field: str = "name") -> str:
    if not isinstance(name, str) or not rules.KEY.fullmatch(name):
        raise InvalidInput(f"invalid run {field} {name!r}", detail={"field": field})
    return name


def params(params: dict[str, Any]) -> dict[str, str]:
    if not isinstance(params, dict):
        raise InvalidInput("params must be an object")
    if len(params) > rules.MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {rules.MAX_BATCH} params")
    return {rules.check_key("param", k): rules.check_param_value(k, v) for k, v in params.items()}


def tags(tags: dict[str, Any]) -> dict[str, str]:
    if not isinstance(tags, dict):
        raise InvalidInput("tags must be an object")
    return {rules.check_key("tag", k): rules.check_param_value(k, v) for k, v in tags.items()}


def points(metrics: list[dict[str, Any]]) -> list[tuple[str, int, float, dt.datetime]]:
    if len(metrics) > rules.MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {rules.MAX_BATCH} metric points")
    out = []
    now = dt.datetime.now(dt.UTC)
    for i, m in enumerate(metrics):
        if not isinstance(m, dict):
            raise InvalidInput(f"metric entry {i} is not an object", detail={"index": i})
        key = rules.check_key("metric", m.get("key"))
        value = rules.check_metric_value(key, m.get("value"))
        step = m.get("step", 0)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise InvalidInput(f"metric {key!r} entry {i}: step must be a whole number >= 0",
                               detail={"index": i})
        ts = m.get("ts")
        stamp = now
        if ts is not None:
            try:
                stamp = (dt.datetime.fromtimestamp(ts, dt.UTC) if isinstance(ts, int | float)
                         else dt.datetime.fromisoformat(str(ts)))
            except (ValueError, OverflowError, OSError):
                raise InvalidInput(f"metric {key!r} entry {i}: bad timestamp {ts!r}",
                                   detail={"index": i}) from None
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.UTC)
        out.append((key, step, value, stamp))
    return out
