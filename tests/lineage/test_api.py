"""GET /api/v1/lineage/{node} over the real app: a walk, its options and its refusals."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from appliance.api.app import create_app
from appliance.client import ApplianceClient

CSV = b"id,age\n1,34\n2,51\n3,29\n"


@pytest.fixture
def ingested(api: TestClient) -> dict[str, Any]:
    resp = api.post("/api/v1/datasets/people/files", params={"filename": "people.csv"},
                    content=CSV, headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 201, resp.text
    out: dict[str, Any] = resp.json()
    return out


def test_a_dataset_version_walks_up_to_its_file_and_down_to_its_dataset(
    api: TestClient, ingested: dict[str, Any],
) -> None:
    resp = api.get("/api/v1/lineage/dataset:people@1")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) >= {"node", "nodes", "edges", "truncated", "upstream", "downstream"}
    file_node = f"file:{ingested['sha256']}"
    assert {n["id"]: n["kind"] for n in body["nodes"]} == {
        "dataset:people@1": "dataset", file_node: "file", "dataset:people": "dataset"}
    assert {(e["src"], e["relation"], e["dst"]) for e in body["edges"]} == {
        (file_node, "ingested_as", "dataset:people@1"),
        ("dataset:people@1", "version_of", "dataset:people")}
    assert all(set(e) == {"src", "dst", "relation", "created_at"} for e in body["edges"])
    assert body["upstream"][0]["src"] == file_node  # the one-hop lists stay
    assert body["downstream"][0]["dst"] == "dataset:people"


def test_direction_and_depth_are_query_options(api: TestClient, ingested: dict[str, Any]) -> None:
    node = f"file:{ingested['sha256']}"
    up = api.get(f"/api/v1/lineage/{node}", params={"direction": "up"}).json()
    assert [n["id"] for n in up["nodes"]] == [node] and up["edges"] == []
    down = api.get(f"/api/v1/lineage/{node}", params={"direction": "down", "depth": 1}).json()
    assert {n["id"] for n in down["nodes"]} == {node, "dataset:people@1"}
    assert down["direction"] == "down" and down["depth"] == 1


@pytest.mark.parametrize("params", [{"depth": 11}, {"depth": 0}, {"depth": "x"},
                                    {"direction": "sideways"}, {"limit": 0}, {"limit": 5000}])
def test_out_of_range_options_are_refused(api: TestClient, params: dict[str, Any]) -> None:
    resp = api.get("/api/v1/lineage/dataset:people@1", params=params)
    assert resp.status_code == 422
    assert resp.json()["error"]["type"] == "invalid_input"


@pytest.mark.parametrize("node", [
    "customers", "dataset:Customers@1", "dataset:a@1;drop", "shell:whoami", "run:not-a-uuid",
    "file:abc", "dataset:a@1%00", "x" * 300, "dataset:%E2%80%AEa@1", "model:churn@1%20or%201=1",
    "alias:churn:champion%23", "predictions:churn@1:today..tomorrow",
])
def test_a_malformed_node_is_a_400_that_names_the_kinds(api: TestClient, node: str) -> None:
    resp = api.get(f"/api/v1/lineage/{node}")
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_input"
    assert "dataset:<name>@<n>" in error["message"]


def test_a_node_with_a_slash_matches_no_route(api: TestClient) -> None:
    resp = api.get("/api/v1/lineage/dataset:..%2F..%2Fetc%2Fpasswd")
    assert resp.status_code == 404


def test_a_well_formed_node_nothing_was_recorded_about_is_a_404(api: TestClient) -> None:
    resp = api.get("/api/v1/lineage/dataset:nothing@9")
    assert resp.status_code == 404
    assert resp.json()["error"] == {"type": "not_found", "detail": None,
                                    "message": "no lineage for 'dataset:nothing@9': "
                                               "nothing was recorded about it"}


def test_lineage_needs_a_token(appliance_app: Any) -> None:
    with TestClient(create_app(appliance_app)) as anonymous:
        resp = anonymous.get("/api/v1/lineage/dataset:people@1")
    assert resp.status_code == 401
    assert resp.json()["error"]["type"] == "unauthenticated"


def test_the_client_quotes_the_node_and_passes_the_options() -> None:
    seen: list[httpx.URL] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"node": "x"})

    with ApplianceClient("http://appliance", token="t",
                         transport=httpx.MockTransport(answer)) as client:
        client.lineage("model:churn@2", direction="down", depth=5)
        client.lineage("dataset:a b@1")
    assert seen[0].path == "/api/v1/lineage/model:churn@2"
    assert dict(seen[0].params) == {"direction": "down", "depth": "5"}
    assert seen[1].raw_path.decode() == f"/api/v1/lineage/{quote('dataset:a b@1', safe=':@')}"
