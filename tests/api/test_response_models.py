"""Every JSON route of the data and governance routers documents what it answers.

The OpenAPI entry of each route names a model (or a list of models, or a choice
of them) with its fields, never an open ``object``: a client generated from the
schema knows the shape of ``Dataset``, ``Run``, ``Token`` and the rest. Routes
that answer files or text are listed apart, so a new route is noticed either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import make_settings
from fastapi.routing import APIRoute

from appliance.api.routers import backups, datasets, governance, lineage, runs, system

ROUTERS = {"datasets": datasets, "runs": runs, "lineage": lineage, "governance": governance,
           "system": system, "backups": backups}
# routes whose answer is not JSON: bytes or Prometheus text
NOT_JSON = {("GET", "/api/v1/runs/{run_id}/artifacts/{name}"), ("GET", "/metrics")}


@pytest.fixture(scope="module")
def openapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from appliance.api.app import create_app
    from appliance.runtime import build

    home: Path = tmp_path_factory.mktemp("openapi") / "home"
    appliance = build(make_settings(home))
    try:
        yield create_app(appliance).openapi()
    finally:
        appliance.close()


def _routes(router_name: str) -> list[tuple[str, str]]:
    router = ROUTERS[router_name].router
    return sorted((method, route.path) for route in router.routes if isinstance(route, APIRoute)
                  for method in route.methods if (method, route.path) not in NOT_JSON)


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = doc
    for part in ref.removeprefix("#/").split("/"):
        found = found[part]
    return found


def _names_its_fields(schema: dict[str, Any], doc: dict[str, Any]) -> bool:
    schema = _resolve(schema, doc)
    if schema.get("type") == "array":
        return _names_its_fields(schema["items"], doc)
    choices = schema.get("oneOf") or schema.get("anyOf")
    if choices:
        return all(_names_its_fields(c, doc) for c in choices)
    return schema.get("type") == "object" and bool(schema.get("properties"))


@pytest.mark.parametrize("router_name", sorted(ROUTERS))
def test_openapi_entry_of_every_json_route_names_its_response_model(
        openapi: dict[str, Any], router_name: str) -> None:
    routes = _routes(router_name)
    assert routes, router_name
    for method, path in routes:
        op = openapi["paths"][path][method.lower()]
        answered = [code for code in op["responses"] if code.startswith("2")]
        assert answered, (method, path)
        for code in answered:
            schema = op["responses"][code]["content"]["application/json"]["schema"]
            assert _names_its_fields(schema, openapi), (method, path, code, schema)


def test_openapi_lists_both_shapes_of_a_backup_entry(openapi: dict[str, Any]) -> None:
    items = openapi["paths"]["/api/v1/backups"]["get"]["responses"]["200"]["content"][
        "application/json"]["schema"]["items"]
    names = {c["$ref"].rsplit("/", 1)[-1] for c in items["oneOf"]}
    assert names == {"Backup", "BackupProblem"}
    assert items["discriminator"]["propertyName"] == "complete"
