"""Compare two OpenAPI documents of the appliance: what a client relies on must not change.

    scripts/openapi-diff [BEFORE.json [AFTER.json]]

BEFORE defaults to tests/fixtures/openapi-before-structure.json (the API as it
was before issue 10's restructuring); AFTER defaults to the live document of
this checkout (the app built in-process on a scratch home). Prints every
difference, the allowed ones and the breaking ones, and exits 1 if any is
breaking. tests/api/test_openapi_compat.py runs the same comparison.

What a client relies on, and so must stay: every path and method, each
operation's id and security, every parameter (name, location, required,
schema, style), the request body (required, media types, schema), every status
code with its media types and headers. Schemas are compared with ``$ref``
resolved (a model may move or be renamed, its shape may not) and without
documentation (``title``, ``description``, ``example(s)``), and ``required``
lists as sets.

What may change: descriptions, summaries, tags and titles; new paths and new
methods (routes added later); new optional parameters; new optional properties of a
request body (an old client's body still validates); new components; and a response schema that said
little may say more: ``{}`` (anything) may become any schema, an open object
(``additionalProperties``, no ``properties``) any object whose values fit, an
array of X an array of something X allows, and a union (``anyOf``/``oneOf``)
fits when every alternative does (an object may not become "object or null").
A response schema that was already specific must stay as it was.
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT = REPO / "tests" / "fixtures" / "openapi-before-structure.json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
_DOC_KEYS = frozenset({"title", "description", "example", "examples"})
# Keys whose value is a mapping of names to schemas (the names are data, not documentation).
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_OPERATION_KEYS = ("operationId", "security")


@dataclass
class Diff:
    """The differences between two documents: ``breaking`` ones fail the compatibility test."""

    breaking: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    kept: int = 0
    before_operations: int = 0
    after_operations: int = 0

    @property
    def ok(self) -> bool:
        return not self.breaking

    def lines(self) -> list[str]:
        out = [f"operations: {self.before_operations} before, {self.after_operations} after, "
               f"{self.kept} kept unchanged in contract",
               f"breaking differences: {len(self.breaking)}"]
        out += [f"  ! {line}" for line in self.breaking]
        out.append(f"allowed differences: {len(self.allowed)}")
        out += [f"  {line}" for line in self.allowed]
        return out


def live_document() -> dict[str, Any]:
    """The OpenAPI document of this checkout's app, built in-process on a scratch home."""
    from appliance.api.app import create_app
    from appliance.config import Settings
    from appliance.runtime import build

    with tempfile.TemporaryDirectory(prefix="openapi-") as scratch:
        appliance = build(Settings(home=Path(scratch) / "home", api_docs=True))
        try:
            return create_app(appliance).openapi()
        finally:
            appliance.close()


def compare(before: dict[str, Any], after: dict[str, Any]) -> Diff:
    """Every contract difference from ``before`` to ``after``, sorted into breaking and allowed."""
    diff = Diff()
    old_ops, new_ops = _operations(before), _operations(after)
    diff.before_operations, diff.after_operations = len(old_ops), len(new_ops)
    for key in sorted(set(new_ops) - set(old_ops)):
        diff.allowed.append(f"+ route {_where(key)}")
    for key in sorted(old_ops):
        if key not in new_ops:
            diff.breaking.append(f"route {_where(key)} is gone")
            continue
        found = len(diff.breaking)
        _compare_operation(_where(key), old_ops[key], new_ops[key], before, after, diff)
        diff.kept += len(diff.breaking) == found
    old_security = before.get("components", {}).get("securitySchemes", {})
    new_security = after.get("components", {}).get("securitySchemes", {})
    if _strip(old_security) != _strip(new_security):
        diff.breaking.append("components.securitySchemes changed: "
                             f"{_short(old_security)} -> {_short(new_security)}")
    old_schemas = set(before.get("components", {}).get("schemas", {}))
    for name in sorted(set(after.get("components", {}).get("schemas", {})) - old_schemas):
        diff.allowed.append(f"+ component {name}")
    return diff


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(path, method): op for path, item in doc.get("paths", {}).items()
            for method, op in item.items() if method in METHODS}


def _where(key: tuple[str, str]) -> str:
    return f"{key[1].upper()} {key[0]}"


def _compare_operation(where: str, old: dict[str, Any], new: dict[str, Any],
                       before: dict[str, Any], after: dict[str, Any], diff: Diff) -> None:
    for key in _OPERATION_KEYS:
        if old.get(key) != new.get(key):
            diff.breaking.append(f"{where}: {key} {_short(old.get(key))} -> {_short(new.get(key))}")
    for key in ("summary", "description", "tags"):
        if old.get(key) != new.get(key):
            diff.allowed.append(f"~ {key} {where}")
    old_params = {(p["in"], p["name"]): p for p in old.get("parameters", [])}
    new_params = {(p["in"], p["name"]): p for p in new.get("parameters", [])}
    for loc, name in sorted(set(old_params) | set(new_params)):
        label = f"{where}: {loc} parameter {name!r}"
        if (loc, name) not in new_params:
            diff.breaking.append(f"{label} is gone")
        elif (loc, name) not in old_params:
            if new_params[loc, name].get("required"):
                diff.breaking.append(f"{label} was added, required")
            else:  # an old client never sends it: still compatible
                diff.allowed.append(f"+ {label} (optional)")
        else:
            was = _strip(_resolve(old_params[loc, name], before))
            now = _strip(_resolve(new_params[loc, name], after))
            if was != now:
                diff.breaking.append(f"{label} changed: {_short(was)} -> {_short(now)}")
    was = _strip(_resolve(old.get("requestBody"), before))
    now = _strip(_resolve(new.get("requestBody"), after))
    if was != now:
        added = _added_optional_properties(was, now)
        if added is None:
            diff.breaking.append(f"{where}: request body changed: {_short(was)} -> {_short(now)}")
        else:  # every body an old client sends still validates, and means the same
            diff.allowed += [f"+ {where}: request body property {name!r} (optional)"
                             for name in added]
    _compare_responses(where, old.get("responses", {}), new.get("responses", {}),
                       before, after, diff)


def _added_optional_properties(old: Any, new: Any) -> list[str] | None:
    """The properties ``new`` adds to ``old``'s objects when that is all it changes (none of
    them required, every old property and constraint as it was); None when it changes more."""
    if old == new:
        return []
    if isinstance(old, dict) and isinstance(new, dict):
        if "properties" in old and "properties" in new:
            if set(old.get("required", [])) != set(new.get("required", [])):
                return None
            if set(old["properties"]) - set(new["properties"]):
                return None
            added = sorted(set(new["properties"]) - set(old["properties"]))
            for name in old["properties"]:
                inner = _added_optional_properties(old["properties"][name],
                                                   new["properties"][name])
                if inner is None:
                    return None
                added += [f"{name}.{sub}" for sub in inner]
            rest = _added_optional_properties(
                {k: v for k, v in old.items() if k not in ("properties", "required")},
                {k: v for k, v in new.items() if k not in ("properties", "required")})
            return None if rest is None else added + rest
        if set(old) != set(new):
            return None
        found: list[str] = []
        for key in old:
            inner = _added_optional_properties(old[key], new[key])
            if inner is None:
                return None
            found += inner
        return found
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        found = []
        for a, b in zip(old, new, strict=True):
            inner = _added_optional_properties(a, b)
            if inner is None:
                return None
            found += inner
        return found
    return None


def _compare_responses(where: str, old: dict[str, Any], new: dict[str, Any],
                       before: dict[str, Any], after: dict[str, Any], diff: Diff) -> None:
    for status in sorted(set(old) | set(new)):
        label = f"{where} {status}"
        if status not in new:
            diff.breaking.append(f"{label}: status code is gone")
            continue
        if status not in old:
            diff.breaking.append(f"{label}: status code was added")
            continue
        if _strip(_resolve(old[status].get("headers"), before)) != \
                _strip(_resolve(new[status].get("headers"), after)):
            diff.breaking.append(f"{label}: response headers changed")
        old_media, new_media = old[status].get("content", {}), new[status].get("content", {})
        if set(old_media) != set(new_media):
            diff.breaking.append(f"{label}: media types {sorted(old_media)} -> {sorted(new_media)}")
            continue
        for media in sorted(old_media):
            raw_old = old_media[media].get("schema", {})
            raw_new = new_media[media].get("schema", {})
            was = _strip(_resolve(raw_old, before))
            now = _strip(_resolve(raw_new, after))
            if was == now:
                continue
            change = f"{label} {media}: {_describe(raw_old)} -> {_describe(raw_new)}"
            if _refines(was, now):
                diff.allowed.append(f"+ response schema {change}")
            else:
                diff.breaking.append(f"response schema changed, not refined: {change}")


def _refines(old: Any, new: Any) -> bool:
    """Whether ``new`` (resolved, stripped) says more than ``old`` without contradicting it."""
    if old == {} or old == new:
        return True
    if not isinstance(old, dict) or not isinstance(new, dict):
        return False
    for union in ("anyOf", "oneOf"):  # every alternative must fit what was promised
        if isinstance(new.get(union), list) and new[union] and union not in old:
            return all(_refines(old, alternative) for alternative in new[union])
    if old.get("type") == "array":
        return new.get("type") == "array" and _refines(old.get("items", {}), new.get("items", {}))
    if old.get("type") == "object" and not old.get("properties") and new.get("type") == "object":
        values = old.get("additionalProperties", True)
        if values is True or values == {}:
            return True
        if not isinstance(values, dict):
            return False
        more = new.get("additionalProperties")
        parts = list(new.get("properties", {}).values())
        parts += [more] if isinstance(more, dict) else []
        return more is not True and all(_refines(values, part) for part in parts)
    return False


def _resolve(node: Any, doc: dict[str, Any], seen: frozenset[str] = frozenset()) -> Any:
    """``node`` with every local ``$ref`` replaced by what it points at (cycles cut)."""
    if isinstance(node, list):
        return [_resolve(item, doc, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        if ref in seen:
            return {"$recursive": ref.rsplit("/", 1)[-1]}
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return _resolve({**target, **rest}, doc, seen | {ref})
    return {key: _resolve(value, doc, seen) for key, value in node.items()}


def _strip(node: Any) -> Any:
    """``node`` without documentation keys, ``required`` lists in order; names of properties kept."""
    if isinstance(node, list):
        return [_strip(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DOC_KEYS:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _strip(schema) for name, schema in value.items()}
        elif key == "required" and isinstance(value, list):
            out[key] = sorted(value)
        else:
            out[key] = _strip(value)
    return out


def _describe(schema: Any) -> str:
    """A few words for a schema as written: ``any``, ``object``, ``array of Dataset``."""
    if not isinstance(schema, dict) or not schema:
        return "any"
    if "$ref" in schema:
        return str(schema["$ref"]).rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"array of {_describe(schema.get('items', {}))}"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return f"{key}[" + ", ".join(_describe(s) for s in schema[key]) + "]"
    if schema.get("type") == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"object of {_describe(schema['additionalProperties'])}"
    return str(schema.get("type", "schema"))


def _short(value: Any, limit: int = 160) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__)
        return 0
    if len(argv) > 2:
        print("usage: scripts/openapi-diff [BEFORE.json [AFTER.json]]", file=sys.stderr)
        return 2
    before_path = Path(argv[0]) if argv else SNAPSHOT
    before = json.loads(before_path.read_text())
    if len(argv) == 2:
        after, after_name = json.loads(Path(argv[1]).read_text()), argv[1]
    else:
        sys.path.insert(0, str(REPO))
        after, after_name = live_document(), "the live app of this checkout"
    print(f"OpenAPI diff: {before_path} -> {after_name}")
    diff = compare(before, after)
    print("\n".join(diff.lines()))
    print("compatible" if diff.ok else "NOT compatible")
    return 0 if diff.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
