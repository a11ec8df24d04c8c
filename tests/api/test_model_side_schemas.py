"""The model-side routers (models, serving, monitor, alerts) document every JSON answer.

Each route's success response names a schema of the appliance's own (``$ref`` to a
component with properties, or an array of them), so the OpenAPI document describes
what the route answers; before, these answers were bare objects.
"""

from __future__ import annotations

from typing import Any

import pytest

from appliance.api.routers import alerts, models, monitor, serving

# routes whose answers are not JSON objects: files, Markdown is the card's other format
NOT_JSON = {("GET", "/api/v1/models/{name}/versions/{number}/onnx")}
# an open mapping documented as such: alias -> version number
PLAIN = {("GET", "/api/v1/models/{name}/aliases"): {"type": "object",
                                                    "additionalProperties": {"type": "integer"}}}


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from appliance_test_support import make_settings

    from appliance.api.app import create_app
    from appliance.runtime import build

    app = build(make_settings(tmp_path_factory.mktemp("openapi") / "home"))
    try:
        return create_app(app).openapi()
    finally:
        app.close()


def _routes(router: Any) -> list[tuple[str, str]]:
    return [(method, route.path) for route in router.routes for method in route.methods
            if method != "HEAD"]


def _success_schema(spec: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    responses = spec["paths"][path][method.lower()]["responses"]
    (code,) = [c for c in responses if c.startswith("2")]
    return dict(responses[code]["content"]["application/json"]["schema"])


def _component(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref") or schema.get("items", {}).get("$ref")
    assert ref and ref.startswith("#/components/schemas/"), schema
    return dict(spec["components"]["schemas"][ref.rsplit("/", 1)[1]])


def _check_router(spec: dict[str, Any], router: Any) -> set[str]:
    named = set()
    for method, path in _routes(router):
        if (method, path) in NOT_JSON:
            continue
        schema = _success_schema(spec, method, path)
        if (method, path) in PLAIN:
            assert {k: schema[k] for k in PLAIN[(method, path)]} == PLAIN[(method, path)]
            continue
        component = _component(spec, schema)
        assert component["type"] == "object" and component["properties"], (method, path)
        named.add(component["title"])
    return named


def test_models_routes_declare_response_schemas(spec: dict[str, Any]) -> None:
    named = _check_router(spec, models.router)
    assert {"Model", "ModelDetail", "ModelVersion", "ModelCard", "AliasEvent", "AliasPointer",
            "AliasChange"} <= named
    version = spec["components"]["schemas"]["ModelVersion"]["properties"]
    assert "gate" in version and "created_at" in version


def test_serving_routes_declare_response_schemas(spec: dict[str, Any]) -> None:
    named = _check_router(spec, serving.router)
    assert {"Prediction", "Feedback", "LivePerformance", "ModelRouting"} <= named


def test_monitor_routes_declare_response_schemas(spec: dict[str, Any]) -> None:
    named = _check_router(spec, monitor.router)
    assert {"DriftReport", "Traffic", "LiveMetrics"} <= named


def test_alerts_routes_declare_response_schemas(spec: dict[str, Any]) -> None:
    named = _check_router(spec, alerts.router)
    assert {"Alert", "Webhook"} <= named
