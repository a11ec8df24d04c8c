"""Training warnings travel from the trainer child to the run, the model version, every card
format and the console's Runs and Models pages (they used to be computed and then lost)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from appliance.client import ApplianceClient

from .console_testing import MODELS_PAGE, RUNS_PAGE, log_in, open_page, texts

DATASET = "ui_train_warned"
JOB = f"""
name: ui-warned
dataset: {DATASET}
target: label
features: {{exclude: [id]}}
model: {{kind: sklearn.linear_model.LogisticRegression, params: {{}}}}
split: {{test_size: 0.25, seed: 7}}
metric: accuracy
"""
NULL_TARGETS = "3 rows without a target value were left out"
CONSTANT = "column 'site' has a single value (oslo)"
RARE = "class 'c' of the target has only 2 of"


def csv() -> bytes:
    """80 labelled rows (classes a, b and a rare c), 3 rows without a label, a constant column."""
    rows = ["id,x,site,label"]
    for i in range(83):
        label = "" if i >= 80 else ("c" if i < 2 else "ab"[i % 2])
        rows.append(f"{i},{(i % 2) * 2 + i / 100},oslo,{label}")
    return ("\n".join(rows) + "\n").encode()


@pytest.fixture(scope="module")
def warned(live_server: Any, admin_api: ApplianceClient) -> dict[str, Any]:
    assert live_server.drop(DATASET, "warned.csv", csv())["outcome"] == "accepted"
    run = admin_api.post("/runs", json={"job": JOB})
    deadline = time.monotonic() + 120
    while (run := admin_api.get(f"/runs/{run['id']}"))["status"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, run
        time.sleep(0.2)
    assert run["status"] == "succeeded", run["error"]
    return dict(run)


def has_all(warnings: list[str]) -> bool:
    text = "\n".join(warnings)
    return NULL_TARGETS in text and CONSTANT in text and RARE in text


def test_training_warnings_are_kept_on_the_run_the_version_and_the_card(
        warned: dict[str, Any], admin_api: ApplianceClient) -> None:
    assert has_all(warned["warnings"]), warned["warnings"]
    listed = admin_api.get("/runs", experiment="ui-warned")["items"][0]
    assert listed["warnings"] == warned["warnings"]
    number = warned["model_version"]["version"]
    version = admin_api.get(f"/models/ui-warned/versions/{number}")
    assert version["warnings"] == warned["warnings"]
    card = admin_api.get(f"/models/ui-warned/versions/{number}/card")
    assert card["training_warnings"] == warned["warnings"]
    md = admin_api.get(f"/models/ui-warned/versions/{number}/card", format="md")
    section = md.split("## Training warnings", 1)[1].split("##", 1)[0]
    assert NULL_TARGETS in section and CONSTANT in section and RARE in section


def test_runs_page_shows_the_run_training_warnings(warned: dict[str, Any], live_server: Any,
                                                   console: AppTest) -> None:
    at = open_page(log_in(console, "admin", live_server.admin_password), RUNS_PAGE)
    at.selectbox(key="runs_experiment").select("ui-warned").run()
    at.selectbox(key="runs_detail").select(warned["id"]).run()
    boxes = [w for w in texts(at.warning) if w.startswith("Training warned")]
    assert len(boxes) == 1 and NULL_TARGETS in boxes[0] and RARE in boxes[0], texts(at.warning)


def test_models_page_shows_the_version_training_warnings(warned: dict[str, Any],
                                                         live_server: Any,
                                                         console: AppTest) -> None:
    at = open_page(log_in(console, "admin", live_server.admin_password), MODELS_PAGE)
    at.selectbox(key="model").select("ui-warned").run()
    boxes = [w for w in texts(at.warning) if w.startswith("Training warned")]
    assert len(boxes) == 1 and CONSTANT in boxes[0], texts(at.warning)
    md = [m for m in texts(at.markdown) if m.startswith("# Model card: ui-warned")]
    assert md and NULL_TARGETS in md[0]
