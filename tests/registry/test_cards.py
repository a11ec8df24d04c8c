"""Model cards in every format (JSON, Markdown), with and without fairness and search.

The Markdown card once answered 500 whenever the job had a ``fairness:`` block:
the renderer read the per-group table as a mapping while training stores it as
a list. These tests build cards from what training really stores.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from appliance_test_support import train_and_wait

from appliance.demo import make_customers
from appliance.domain.cards import ModelCard
from appliance.domain.registry import ModelVersion, VersionStatus
from appliance.registry.cards import build_card, render_markdown
from appliance.train.child.fairness import fairness_report

FAIRNESS = "fairness: {sensitive: [gender, region], max_demographic_parity_difference: 0.9}"
SEARCH = "search: {n_iter: 2, params: {max_depth: [2, 3]}}"
JOB = """
name: %(name)s
description: Predict which customers leave next month.
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: xgboost.XGBClassifier, params: {n_estimators: 10, max_depth: 3}}
split: {test_size: 0.25, seed: 7}
metric: roc_auc
%(extra)s
"""
COMBOS = {"plain": "", "fairness": FAIRNESS, "search": SEARCH,
          "fairness_search": FAIRNESS + "\n" + SEARCH}


def real_fairness(groups: dict[str, list[str]]) -> dict[str, Any]:
    """A fairness report of the exact shape training stores on a version."""
    rng = np.random.default_rng(0)
    n = len(next(iter(groups.values())))
    return fairness_report(task="classification", n_classes=2, y_true=rng.integers(0, 2, n),
                           y_pred=rng.integers(0, 2, n), groups=pd.DataFrame(groups),
                           max_dp=0.5, max_eo=None)


def card_with(fairness: dict[str, Any] | None, *, trials: int = 0,
              warnings: list[str] | None = None) -> ModelCard:
    run = {"params": {"estimator": "xgboost.XGBClassifier"},
           "children": [{"kind": "trial"} for _ in range(trials)]}
    version = ModelVersion(
        model="churn", number=3, status=VersionStatus.ready, run_id=None, task="classification",
        flavor="xgboost", onnx_sha256="0" * 64, onnx_size=1, signature=None,
        metrics={"roc_auc": 0.81234}, fairness=fairness,
        parity={"passed": True, "rows_checked": 10, "max_abs_diff": 1e-7, "tolerance": 1e-5},
        gate=None, warnings=[], dataset=None, dataset_version=None, aliases=[],
        created_by="ann", created_at=dt.datetime(2026, 11, 27, tzinfo=dt.UTC))
    return build_card(model="churn", version=version, run=run, purpose="why", limitations=[],
                      contract_version=2, lineage=[], promotions=[], warnings=warnings)


def test_render_markdown_card_with_stored_fairness_shows_the_group_table() -> None:
    fairness = real_fairness({"gender": ["female", "male"] * 20,
                              "region": ["north"] * 20 + ["south"] * 20})
    md = render_markdown(card_with(fairness))
    assert "## Fairness" in md and "Sensitive columns: `gender`, `region`." in md
    assert "| gender | region | accuracy | count | selection_rate |" in md
    assert "| female | north |" in md and "| male | south |" in md
    assert "demographic parity difference" in md and "(limit 0.5)" in md


def test_render_markdown_card_escapes_group_values_from_the_data() -> None:
    fairness = real_fairness({"plan": ["a|b", "line\nbreak"] * 10})
    md = render_markdown(card_with(fairness))
    assert "| a\\|b |" in md and "| line break |" in md
    assert "\nbreak" not in md


def test_render_markdown_card_reads_the_older_mapping_shape_of_groups() -> None:
    fairness = {"by_group": {"gender": {"female": {"accuracy": 0.8}, "male": {"accuracy": 0.7}}}}
    md = render_markdown(card_with(fairness))
    assert "| female | 0.8 |" in md and "| male | 0.7 |" in md


@pytest.mark.parametrize("fairness", [None, {}], ids=["none", "empty"])
def test_render_markdown_card_without_fairness_says_so(fairness: Any) -> None:
    assert "No sensitive columns were named in the job file." in render_markdown(
        card_with(fairness))


def test_render_markdown_card_lists_training_warnings_and_search() -> None:
    card = card_with(None, trials=4, warnings=["3 rows without a target value were left out"])
    md = render_markdown(card)
    assert card.training_warnings == ["3 rows without a target value were left out"]
    assert card.model_dump()["search"] == {"trials": 4}
    assert "## Training warnings\n\n- 3 rows without a target value were left out" in md
    assert "Hyperparameter search: 4 trials" in md
    assert "## Training warnings\n\nNone." in render_markdown(card_with(None))


@pytest.fixture(scope="module")
def trained(live_server: Any) -> dict[str, Any]:
    """One model per combination of fairness and search, trained by a real server."""
    import httpx

    with httpx.Client(base_url=live_server.url, timeout=60) as c:
        token = c.post("/api/v1/auth/token", json={
            "username": "admin", "password": live_server.admin_password}).json()
        c.headers["Authorization"] = f"Bearer {token['access_token']}"
        if c.get("/api/v1/datasets/customers").status_code == 404:
            csv = make_customers(400, seed=5).write_csv().encode()
            resp = c.post("/api/v1/datasets/customers/files", params={"filename": "cards.csv"},
                          content=csv, headers={"Content-Type": "application/octet-stream"})
            assert resp.status_code == 201, resp.text
        deadline = time.monotonic() + 60
        while c.get("/api/v1/datasets/customers").json().get("current_version") is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        runs = {combo: train_and_wait(c, JOB % {"name": f"cards-{combo.replace('_', '-')}",
                                                "extra": extra})
                for combo, extra in COMBOS.items()}
        return {"token": token["access_token"], "runs": runs}


@pytest.mark.parametrize("combo", list(COMBOS))
@pytest.mark.parametrize("fmt", ["json", "md"])
def test_get_model_card_answers_every_format_with_and_without_fairness_and_search(
        live_server: Any, trained: dict[str, Any], combo: str, fmt: str) -> None:
    import httpx

    name = f"cards-{combo.replace('_', '-')}"
    resp = httpx.get(f"{live_server.url}/api/v1/models/{name}/versions/1/card",
                     params={"format": fmt}, timeout=60,
                     headers={"Authorization": f"Bearer {trained['token']}"})
    assert resp.status_code == 200, resp.text
    with_fairness, with_search = "fairness" in combo, "search" in combo
    if fmt == "md":
        assert resp.headers["content-type"].startswith("text/markdown")
        md = resp.text
        assert md.startswith(f"# Model card: {name} v1")
        assert ("| gender | region | accuracy |" in md) is with_fairness
        assert ("Hyperparameter search: 2 trials" in md) is with_search
        return
    card = resp.json()
    assert card["model"] == name and card["version"] == 1
    assert (card["fairness"] is not None) is with_fairness
    if with_fairness:
        assert {tuple(sorted(g["group"])) for g in card["fairness"]["by_group"]} == {
            ("gender", "region")}
    assert card["search"] == ({"trials": 2} if with_search else None)
    assert isinstance(card["training_data"]["contract_version"], int)  # the data's contract
    assert isinstance(card["training_warnings"], list)


def test_get_model_card_refuses_an_unknown_format(live_server: Any,
                                                  trained: dict[str, Any]) -> None:
    import httpx

    resp = httpx.get(f"{live_server.url}/api/v1/models/cards-plain/versions/1/card",
                     params={"format": "pdf"},
                     headers={"Authorization": f"Bearer {trained['token']}"})
    assert resp.status_code == 422
