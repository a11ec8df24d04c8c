"""The REST API stays compatible: the live OpenAPI document keeps the contract of the snapshot.

tests/fixtures/openapi-before-structure.json is the document as it was before
issue 10 restructured the code. Every path, method, parameter, request body and
status code in it must still be there, the same; response schemas may only say
more than they did (``{}`` or an open object becoming a model), and routes,
components and descriptions may be added. The rules live in
scripts/openapi_diff.py, which also prints the diff for people
(``scripts/openapi-diff``); the second half of this file pins those rules.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT = REPO / "tests" / "fixtures" / "openapi-before-structure.json"


def _load_diff_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("openapi_diff", REPO / "scripts" / "openapi_diff.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("openapi_diff", module)
    spec.loader.exec_module(module)
    return module


openapi_diff = _load_diff_module()


@pytest.fixture(scope="module")
def snapshot() -> dict[str, Any]:
    return json.loads(SNAPSHOT.read_text())


def test_live_openapi_document_keeps_every_route_parameter_body_and_status(
        appliance_app: Any, snapshot: dict[str, Any]) -> None:
    from appliance.api.app import create_app

    live = create_app(appliance_app).openapi()
    diff = openapi_diff.compare(snapshot, live)

    assert diff.breaking == [], "\n".join(diff.lines())
    assert diff.kept == diff.before_operations == 70


# -- the rules, pinned on edited copies of the snapshot ------------------------------------

def _op(doc: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    return doc["paths"][path][method]


def _json_schema(op: dict[str, Any], status: str) -> dict[str, Any]:
    return op["responses"][status]["content"]["application/json"]


def test_compare_snapshot_with_itself_finds_nothing(snapshot: dict[str, Any]) -> None:
    diff = openapi_diff.compare(snapshot, copy.deepcopy(snapshot))

    assert (diff.breaking, diff.allowed) == ([], [])


def test_compare_removed_route_is_breaking(snapshot: dict[str, Any]) -> None:
    after = copy.deepcopy(snapshot)
    del after["paths"]["/api/v1/datasets/{name}"]["get"]

    assert openapi_diff.compare(snapshot, after).breaking == ["route GET /api/v1/datasets/{name} is gone"]


def test_compare_added_route_is_allowed(snapshot: dict[str, Any]) -> None:
    after = copy.deepcopy(snapshot)
    after["paths"]["/api/v1/things"] = {"get": _op(snapshot, "get", "/api/v1/datasets")}

    diff = openapi_diff.compare(snapshot, after)

    assert diff.breaking == []
    assert diff.allowed == ["+ route GET /api/v1/things"]


@pytest.mark.parametrize("edit", ["required", "schema", "removed", "added", "location"])
def test_compare_changed_parameter_is_breaking(snapshot: dict[str, Any], edit: str) -> None:
    after = copy.deepcopy(snapshot)
    params = _op(after, "get", "/api/v1/runs")["parameters"]
    limit = next(p for p in params if p["name"] == "limit")
    if edit == "required":
        limit["required"] = True
    elif edit == "schema":
        limit["schema"]["maximum"] = 10
    elif edit == "removed":
        params.remove(limit)
    elif edit == "added":
        params.append({"in": "query", "name": "extra", "required": True, "schema": {"type": "string"}})
    else:
        limit["in"] = "header"

    breaking = openapi_diff.compare(snapshot, after).breaking

    assert len(breaking) >= 1
    assert all(line.startswith("GET /api/v1/runs: ") for line in breaking)


def test_compare_changed_request_body_model_is_breaking(snapshot: dict[str, Any]) -> None:
    after = copy.deepcopy(snapshot)
    after["components"]["schemas"]["RunCreate"]["required"] = ["name"]

    breaking = openapi_diff.compare(snapshot, after).breaking

    assert breaking and all("request body changed" in line for line in breaking)
    assert any(line.startswith("POST /api/v1/runs:") for line in breaking)


def test_compare_request_body_model_renamed_with_the_same_shape_is_allowed(
        snapshot: dict[str, Any]) -> None:
    """A body model moved to the domain under another name: same fields, same JSON."""
    after = copy.deepcopy(snapshot)
    schemas = after["components"]["schemas"]
    schemas["RunCreateBody"] = {**schemas.pop("RunCreate"), "title": "RunCreateBody",
                                "description": "Start a run."}
    body = _op(after, "post", "/api/v1/runs")["requestBody"]["content"]["application/json"]
    body["schema"] = {"$ref": "#/components/schemas/RunCreateBody"}

    diff = openapi_diff.compare(snapshot, after)

    assert diff.breaking == []
    assert diff.allowed == ["+ component RunCreateBody"]


def test_compare_request_body_gaining_an_optional_property_is_allowed_and_a_required_one_is_not(
        snapshot: dict[str, Any]) -> None:
    after = copy.deepcopy(snapshot)
    schema = after["components"]["schemas"]["RunCreate"]
    schema["properties"]["note"] = {"type": "string", "title": "Note"}

    diff = openapi_diff.compare(snapshot, after)

    assert diff.breaking == []
    assert "+ POST /api/v1/runs: request body property 'note' (optional)" in diff.allowed
    schema["required"] = [*schema.get("required", []), "note"]
    assert any("request body changed" in line
               for line in openapi_diff.compare(snapshot, after).breaking)


def test_compare_added_optional_parameter_is_allowed_and_a_required_one_is_not(
        snapshot: dict[str, Any]) -> None:
    after = copy.deepcopy(snapshot)
    params = _op(after, "get", "/api/v1/runs").setdefault("parameters", [])
    params.append({"name": "experiment_id", "in": "query", "required": False,
                   "schema": {"type": "string"}})
    params.append({"name": "must", "in": "query", "required": True, "schema": {"type": "string"}})

    diff = openapi_diff.compare(snapshot, after)

    assert diff.allowed == ["+ GET /api/v1/runs: query parameter 'experiment_id' (optional)"]
    assert diff.breaking == ["GET /api/v1/runs: query parameter 'must' was added, required"]


def test_compare_removed_or_added_status_code_is_breaking(snapshot: dict[str, Any]) -> None:
    after = copy.deepcopy(snapshot)
    created = _op(after, "post", "/api/v1/users")["responses"]
    created["200"] = created.pop("201")

    breaking = openapi_diff.compare(snapshot, after).breaking

    assert breaking == ["POST /api/v1/users 200: status code was added",
                        "POST /api/v1/users 201: status code is gone"]


def test_compare_response_model_over_an_open_object_is_allowed(snapshot: dict[str, Any]) -> None:
    after = copy.deepcopy(snapshot)
    after["components"]["schemas"]["Dataset"] = {
        "type": "object", "title": "Dataset", "description": "A dataset.",
        "properties": {"name": {"type": "string"}, "versions": {"type": "integer"}},
        "required": ["name", "versions"]}
    _json_schema(_op(after, "get", "/api/v1/datasets/{name}"), "200")["schema"] = {
        "$ref": "#/components/schemas/Dataset"}
    _json_schema(_op(after, "get", "/api/v1/datasets"), "200")["schema"] = {
        "type": "array", "items": {"$ref": "#/components/schemas/Dataset"}}
    _json_schema(_op(after, "get", "/metrics"), "200")["schema"] = {"type": "string"}
    _json_schema(_op(after, "get", "/api/v1/backups"), "200")["schema"] = {
        "type": "array", "items": {"oneOf": [{"$ref": "#/components/schemas/Dataset"},
                                             {"type": "object", "properties": {}}]}}

    diff = openapi_diff.compare(snapshot, after)

    assert diff.breaking == []
    assert diff.allowed == [
        "+ response schema GET /api/v1/backups 200 application/json: "
        "array of object -> array of oneOf[Dataset, object]",
        "+ response schema GET /api/v1/datasets 200 application/json: array of object -> array of Dataset",
        "+ response schema GET /api/v1/datasets/{name} 200 application/json: object -> Dataset",
        "+ response schema GET /metrics 200 application/json: any -> string",
        "+ component Dataset",
    ]


@pytest.mark.parametrize(("path", "method", "schema"), [
    # an open object may not become a list, nor an optional object (null was never an answer)
    ("/api/v1/datasets/{name}", "get", {"type": "array", "items": {}}),
    ("/api/v1/datasets/{name}", "get", {"anyOf": [{"type": "object"}, {"type": "null"}]}),
    # a list of open objects may not become a list of strings
    ("/api/v1/datasets", "get", {"type": "array", "items": {"type": "string"}}),
    # the alias map {str: int} may not become {str: str}
    ("/api/v1/models/{name}/aliases", "get", {"type": "object", "additionalProperties": {"type": "string"}}),
    # an already specific schema (list of TokenInfo) may not lose or gain a field
    ("/api/v1/sessions", "get", {"type": "array", "items": {"type": "object", "properties": {}}}),
])
def test_compare_response_schema_that_contradicts_the_old_one_is_breaking(
        snapshot: dict[str, Any], path: str, method: str, schema: dict[str, Any]) -> None:
    after = copy.deepcopy(snapshot)
    _json_schema(_op(after, method, path), "200")["schema"] = schema

    breaking = openapi_diff.compare(snapshot, after).breaking

    assert len(breaking) == 1
    assert breaking[0].startswith(f"response schema changed, not refined: {method.upper()} {path} 200")


def test_compare_descriptions_titles_and_tags_are_allowed_to_change(snapshot: dict[str, Any]) -> None:
    after = copy.deepcopy(snapshot)
    op = _op(after, "get", "/api/v1/runs")
    op["description"] = "Runs, newest first."
    op["tags"] = ["tracking"]
    for param in op["parameters"]:
        param["description"] = "documented now"
        param["schema"]["title"] = "Renamed"
    after["components"]["schemas"]["HTTPValidationError"]["description"] = "Bad input."

    diff = openapi_diff.compare(snapshot, after)

    assert diff.breaking == []
    assert diff.allowed == ["~ description GET /api/v1/runs", "~ tags GET /api/v1/runs"]


def test_compare_changed_security_is_breaking(snapshot: dict[str, Any]) -> None:
    after = copy.deepcopy(snapshot)
    _op(after, "get", "/api/v1/datasets")["security"] = []

    assert openapi_diff.compare(snapshot, after).breaking == [
        'GET /api/v1/datasets: security [{"HTTPBearer": []}] -> []']


def test_compare_property_named_description_is_not_documentation(snapshot: dict[str, Any]) -> None:
    """Only schema keywords are documentation; a field called ``title`` is data."""
    after = copy.deepcopy(snapshot)
    schema = after["components"]["schemas"]["WebhookCreate"]
    schema["properties"] = {**schema["properties"], "description": {"type": "string"}}

    diff = openapi_diff.compare(snapshot, after)

    # seen as a property (an optional one may be added), not dropped as documentation
    assert any("request body property 'description' (optional)" in line
               for line in diff.allowed), diff.allowed
    schema["required"] = [*schema.get("required", []), "description"]
    breaking = openapi_diff.compare(snapshot, after).breaking
    assert breaking and all("request body changed" in line for line in breaking)


def test_diff_script_prints_the_diff_and_fails_on_a_breaking_one(
        snapshot: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    after = copy.deepcopy(snapshot)
    del after["paths"]["/healthz"]
    (tmp_path / "after.json").write_text(json.dumps(after))

    code = openapi_diff.main([str(SNAPSHOT), str(tmp_path / "after.json")])

    out = capsys.readouterr().out
    assert code == 1
    assert "  ! route GET /healthz is gone" in out
    assert out.rstrip().endswith("NOT compatible")
