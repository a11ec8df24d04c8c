"""Explanations served: the routes and the CLI against trained models, and hostile input.

One appliance per module (in-process, a real DuckDB file): customers ingested and churn
trained as XGBoost, explained by exact TreeSHAP by default and by sampling Shapley over
its ONNX model on request (the path every other model kind takes; tests/train/
test_explain.py checks it on a linear model).
"""

from __future__ import annotations

import io
import json
import math
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import logged_in, make_settings, train_and_wait
from cli_testing import invoke
from fastapi.testclient import TestClient
from served_model import churn_records

from appliance.demo import make_customers

XGB_JOB = """
name: churn
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: xgboost.XGBClassifier, params: {n_estimators: 30, max_depth: 3}}
split: {test_size: 0.25, seed: 7}
metric: roc_auc
"""


class Served:
    """The module's appliance; ``offline()`` closes it so the CLI can open the store."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.app: Any = None
        self.client: TestClient
        self.open()

    def open(self) -> None:
        from appliance.api.app import create_app
        from appliance.runtime import build

        self.app = build(make_settings(self.home))
        self.app.serving.log.start()
        self.client = TestClient(create_app(self.app)).__enter__()
        logged_in(self.client)

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.app.close()

    @contextmanager
    def offline(self) -> Iterator[Path]:
        self.close()
        try:
            yield self.home
        finally:
            self.open()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = Served(tmp_path_factory.mktemp("explain") / "home")
    try:
        c = s.client
        data = make_customers(400, seed=4).write_csv().encode()
        assert c.post("/api/v1/datasets/customers/files", params={"filename": "c.csv"},
                      content=data, headers={"Content-Type": "application/octet-stream"}
                      ).status_code == 201
        deadline = time.monotonic() + 30
        while c.get("/api/v1/datasets/customers/versions/1").json()["summary_status"] != "ready":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        train_and_wait(c, XGB_JOB)
        yield s
    finally:
        s.close()


def predict(served: Served, model: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    resp = served.client.post(f"/api/v1/models/{model}/predict", json=rows)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def assert_adds_up(e: dict[str, Any]) -> None:
    total = e["base_value"] + sum(c["contribution"] for c in e["contributions"])
    assert total == pytest.approx(e["score"], abs=1e-6)
    sizes = [abs(c["contribution"]) for c in e["contributions"]]
    assert sizes == sorted(sizes, reverse=True)


def test_explain_logged_request_of_xgboost_is_exact_tree_shap(served: Served) -> None:
    rows = churn_records(3)
    answer = predict(served, "churn", rows)
    rid = answer["request_ids"][1]
    resp = served.client.get(f"/api/v1/predictions/{rid}/explanation")
    assert resp.status_code == 200, resp.text
    e = resp.json()
    assert (e["model"], e["version"], e["request_id"]) == ("churn", answer["version"], rid)
    assert e["method"] == "tree_shap" and e["output"] == "margin"
    assert e["explained_class"] == 1
    assert_adds_up(e)
    # the margin's sigmoid is the probability the served ONNX model answered
    assert 1 / (1 + math.exp(-e["score"])) == pytest.approx(
        answer["probabilities"][1]["1"], abs=1e-5)
    assert e["probability"] == pytest.approx(answer["probabilities"][1]["1"], abs=1e-6)
    assert e["prediction"] == answer["predictions"][1]
    features = {c["feature"]: c for c in e["contributions"]}
    assert set(features) == set(rows[1])      # plan's one-hot columns summed back to plan
    assert features["plan"]["value"] == rows[1]["plan"]


def test_explain_posted_rows_by_sampling_shapley_over_onnx(served: Served) -> None:
    rows = churn_records(2, seed=7)
    sampled = {"method": "sampling_shapley"}
    resp = served.client.post("/api/v1/models/churn/explain", json=rows, params=sampled)
    assert resp.status_code == 200, resp.text
    items = resp.json()
    answer = predict(served, "churn", rows)
    assert len(items) == 2
    for e, proba in zip(items, answer["probabilities"], strict=True):
        assert e["method"] == "sampling_shapley" and e["output"] == "probability"
        assert e["request_id"] is None and e["seed"] == 0 and e["background_rows"] > 0
        assert_adds_up(e)
        assert e["score"] == pytest.approx(proba["1"], abs=1e-6)
    again = served.client.post("/api/v1/models/churn/explain", json=rows[0],
                               params=sampled).json()
    assert again[0]["contributions"] == items[0]["contributions"]  # seeded: same answer
    exact = served.client.post("/api/v1/models/churn/explain", json=rows[0]).json()[0]
    top = exact["contributions"][0]
    same = next(c for c in items[0]["contributions"] if c["feature"] == top["feature"])
    assert math.copysign(1, same["contribution"]) == math.copysign(1, top["contribution"])


def test_explain_posted_csv_rows(served: Served) -> None:
    import polars as pl

    body = pl.DataFrame(churn_records(2, seed=9)).write_csv().encode()
    resp = served.client.post("/api/v1/models/churn/explain", content=body,
                              params={"version": 1}, headers={"content-type": "text/csv"})
    assert resp.status_code == 200, resp.text
    assert [e["method"] for e in resp.json()] == ["tree_shap", "tree_shap"]


def test_viewer_can_read_an_explanation(served: Served) -> None:
    c = served.client
    c.post("/api/v1/users", json={"username": "vera", "password": "a-long-viewer-pass",
                                  "role": "viewer"})
    token = c.post("/api/v1/auth/token", json={"username": "vera",
                                                "password": "a-long-viewer-pass"}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    rid = predict(served, "churn", churn_records(1))["request_ids"][0]
    resp = c.get(f"/api/v1/predictions/{rid}/explanation", headers=headers)
    assert resp.status_code == 200, resp.text
    resp = c.post("/api/v1/models/churn/explain", json=churn_records(1), headers=headers)
    assert resp.status_code == 200, resp.text


def test_recent_requests_list_the_newest_answered_first(served: Served) -> None:
    rows = [{**r, "request_id": f"recent-{i}"} for i, r in enumerate(churn_records(3))]
    for row in rows:
        predict(served, "churn", [row])
    resp = served.client.get("/api/v1/predictions", params={"model": "churn", "limit": 3})
    assert resp.status_code == 200, resp.text
    recent = resp.json()
    assert [r["request_id"] for r in recent] == ["recent-2", "recent-1", "recent-0"]
    assert all(r["version"] == 1 and r["prediction"] in (0, 1) for r in recent)
    assert served.client.get("/api/v1/predictions",
                             params={"model": "nope"}).status_code == 404


def test_explain_unknown_request_id_is_404(served: Served) -> None:
    resp = served.client.get("/api/v1/predictions/no-such-request/explanation")
    assert resp.status_code == 404
    assert resp.json()["error"]["type"] == "not_found"
    assert "no-such-request" in resp.json()["error"]["message"]


def test_explain_request_id_too_long_is_refused(served: Served) -> None:
    resp = served.client.get(f"/api/v1/predictions/{'x' * 101}/explanation")
    assert resp.status_code == 400
    assert resp.json()["error"]["detail"]["field"] == "request_id"


def test_explain_request_of_another_model_is_404(served: Served) -> None:
    rid = predict(served, "churn", churn_records(1))["request_ids"][0]
    resp = served.client.get(f"/api/v1/predictions/{rid}/explanation",
                             params={"model": "uploaded"})
    assert resp.status_code == 404


def test_explain_uploaded_onnx_version_says_it_has_nothing_to_explain_with(
        served: Served) -> None:
    c = served.client
    onnx = c.get("/api/v1/models/churn/versions/1/onnx").content
    resp = c.post("/api/v1/models/uploaded/versions", content=onnx,
                  headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 201, resp.text
    resp = c.post("/api/v1/models/uploaded/explain", json=churn_records(1),
                  params={"version": 1})
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["detail"]["reason"] == "no_explainer"
    assert "ONNX file" in resp.json()["error"]["message"]


def register_with_run(served: Served, name: str, artifacts: tuple[str, ...]) -> None:
    """``name`` v1: churn's ONNX as a scikit-learn version whose run kept only ``artifacts``
    of churn's run (none: a version trained before explanations existed)."""
    from appliance.domain.principal import SYSTEM
    from appliance.store.tables import RunRow

    app = served.app
    source = str(app.registry.version("churn", 1).run_id)
    run = app.runs.queue(RunRow(name=name, kind="train", status="queued", experiment=name,
                                params={}, tags={}, metrics={}), by=SYSTEM)
    for path in artifacts:
        app.runs.add_artifact_at(str(run.id), path,
                                 io.BytesIO(app.runs.artifact_bytes(source, path)))
    app.registry.register(model=name, onnx_bytes=app.registry.onnx_bytes("churn", 1),
                          flavor="sklearn", task="classification",
                          run_id=uuid.UUID(str(run.id)), by=SYSTEM)


def test_explain_version_trained_before_explanations_says_retrain(served: Served) -> None:
    register_with_run(served, "old", ())
    resp = served.client.post("/api/v1/models/old/explain", json=churn_records(1),
                              params={"version": 1})
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"]["detail"]["reason"] == "no_explainer"
    assert "retrain" in resp.json()["error"]["message"]


def test_explain_version_without_booster_samples_and_refuses_tree_shap(served: Served) -> None:
    register_with_run(served, "sampled", ("explain/background.parquet",))
    resp = served.client.post("/api/v1/models/sampled/explain", json=churn_records(1),
                              params={"version": 1})
    assert resp.status_code == 200, resp.text
    assert resp.json()[0]["method"] == "sampling_shapley"
    resp = served.client.post("/api/v1/models/sampled/explain", json=churn_records(1),
                              params={"version": 1, "method": "tree_shap"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["detail"]["field"] == "method"


@pytest.mark.parametrize(("body", "status", "field"), [
    ([{"age": 1}], 422, "plan"),                         # a missing column
    ([{**churn_records(1)[0], "tenure_months": "long"}], 422, "tenure_months"),
    ([], 422, None),
])
def test_explain_posted_rows_hostile_bodies_are_refused(served: Served, body: Any, status: int,
                                                        field: str | None) -> None:
    resp = served.client.post("/api/v1/models/churn/explain", json=body)
    assert resp.status_code == status, resp.text
    if field is not None:
        assert field in resp.json()["error"]["message"] or \
            resp.json()["error"]["detail"].get("field") is not None


def test_explain_too_many_rows_is_413(served: Served) -> None:
    resp = served.client.post("/api/v1/models/churn/explain", json=churn_records(101))
    assert resp.status_code == 413


def test_model_card_carries_global_importances(served: Served) -> None:
    card = served.client.get("/api/v1/models/churn/versions/1/card").json()
    imp = card["importances"]
    assert imp["native_kind"] == "total_gain" and imp["metric"] == "roc_auc"
    assert {f["feature"] for f in imp["features"]} >= {"tenure_months", "plan"}
    assert imp["features"][0]["feature"] == "tenure_months"   # what churn depends on most
    text = served.client.get("/api/v1/models/churn/versions/1/card",
                             params={"format": "md"}).text
    assert "## Feature importance" in text


def test_cli_explain_request_and_file_as_table_and_json(served: Served,
                                                        tmp_path: Path) -> None:
    rid = predict(served, "churn", churn_records(1, seed=3))["request_ids"][0]
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(churn_records(2, seed=5)))
    with served.offline() as home:
        table = invoke(home, "explain", rid)
        assert table.exit_code == 0, table.output
        assert "tree_shap" in table.output and "contribution" in table.output
        out = invoke(home, "explain", rid, "--json")
        assert out.exit_code == 0, out.output
        assert json.loads(out.output)["request_id"] == rid
        many = invoke(home, "explain", "--model", "churn@champion", str(rows), "--json",
                      "--method", "sampling_shapley")
        assert many.exit_code == 0, many.output
        assert [e["method"] for e in json.loads(many.output)] == ["sampling_shapley"] * 2
        missing = invoke(home, "explain", "nope")
        assert missing.exit_code == 2 and "no prediction was logged" in missing.output


def test_an_erasure_drops_every_explainer_built_before_it(served: Served) -> None:
    from appliance.domain.principal import Principal
    from appliance.domain.privacy import Condition, ErasureRequest
    from appliance.domain.roles import Role

    app = served.app
    version = app.registry.aliases("churn")["champion"]
    built = app.explain.explainer("churn", version)
    assert app.explain.explainer("churn", version) is built  # kept
    # an erasure rewrites run artifacts (the background sample among them): on this host
    # directly, on the others through the change feed (Topic.erasure)
    app.erasure.erase(ErasureRequest(where=[Condition(column="customer_id", value=-424242)]),
                      by=Principal("ops", Role.admin))
    assert app.explain._explainers == {}
    rebuilt = app.explain.explainer("churn", version)
    assert rebuilt is not built and app.explain.explainer("churn", version) is rebuilt
