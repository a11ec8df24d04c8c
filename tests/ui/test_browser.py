"""Smoke test of the real console: `streamlit run ui/Home.py` driven by headless Chromium.

Uses Debian's Chromium (/usr/bin/chromium): Playwright's own browser download
cannot run here. CI installs the package; the test is skipped only without it.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .console_testing import servable_onnx, tiny_onnx, upload_onnx

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
DATASET = "ui_browser"
CSV = b"id,score,colour\n1,0.5,red\n2,0.75,blue\n3,0.25,red\n"
RUN = "ui-browser-run"
MODEL = "ui_browser_model"
SERVED = "ui_browser_served"  # serves requests: the Serving and Monitoring charts

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Debian's Chromium at {CHROMIUM}"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"streamlit did not become healthy:\n{log.read_text()}")


@pytest.fixture(scope="module")
def console_url(live_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The console as the lead runs it, talking to the live API, with a little of everything."""
    live_server.drop(DATASET, "scores.csv", CSV)
    with live_server.client() as api:
        run = api.post("/runs", json={"name": RUN, "experiment": "ui_browser",
                                      "params": {"lr": 0.1}, "tags": {"from": "browser"}})
        api.post(f"/runs/{run['id']}/log", json={"metrics": [
            {"key": "loss", "value": 1.0 / (step + 1), "step": step} for step in range(4)]})
        api.patch(f"/runs/{run['id']}", json={"status": "succeeded"})
        upload_onnx(api, MODEL, tiny_onnx(1.0))
        upload_onnx(api, MODEL, tiny_onnx(2.0))
        api.put(f"/models/{MODEL}/aliases/champion", json={"version": 1, "reason": "browser"})
        upload_onnx(api, SERVED, servable_onnx(1.0))
        api.put(f"/models/{SERVED}/aliases/champion", json={"version": 1, "reason": "browser"})
        answer = api.post(f"/models/{SERVED}/predict", json=[{"x": float(i)} for i in range(20)])
        api.post(f"/models/{SERVED}/feedback", json=[
            {"request_id": rid, "label": float(i) + 1.5}
            for i, rid in enumerate(answer["request_ids"][:10])])
    port = free_port()
    log = tmp_path_factory.mktemp("console") / "streamlit.log"
    env = {**os.environ, "APPLIANCE_API_URL": live_server.url}
    command = [
        sys.executable, "-m", "streamlit", "run", str(ROOT / "ui" / "Home.py"),
        "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def page(console_url: str) -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    # the console redraws a whole page per interaction; on 2 loaded cores that can take
    # longer than expect()'s 5 s default, which made this test fail only under load
    expect.set_options(timeout=30_000)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        tab = browser.new_page(viewport={"width": 1400, "height": 1600})
        tab.set_default_timeout(30_000)
        yield tab
        browser.close()


def assert_no_exception(page: Any) -> None:
    page.wait_for_timeout(1000)  # let the script run finish drawing
    boxes = page.locator('[data-testid="stException"]')
    assert boxes.count() == 0, boxes.all_inner_texts()


def open_from_sidebar(page: Any, label: str, heading: str) -> None:
    from playwright.sync_api import expect

    page.locator('[data-testid="stSidebarNav"] a', has_text=label).click()
    expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()


def pick_model(page: Any, name: str) -> None:
    """Choose ``name`` in the page's "Model" select box."""
    page.locator('[data-testid="stSelectbox"]', has_text="Model").first.click()
    page.get_by_role("option", name=name, exact=True).click()
    page.wait_for_timeout(500)


def expect_charts_drawn(page: Any, at_least: int) -> None:
    """Vega-Lite really drew ``at_least`` charts (an invalid spec draws nothing)."""
    from playwright.sync_api import expect

    charts = page.locator('[data-testid="stVegaLiteChart"]')
    expect(charts.nth(at_least - 1)).to_be_visible()
    for i in range(at_least):
        expect(charts.nth(i).locator("canvas, svg").first).to_be_visible()


def test_console_pages_render_in_chromium(page: Any, console_url: str, live_server: Any):
    from playwright.sync_api import expect

    page.goto(console_url)
    page.get_by_role("textbox", name="Username").fill("admin")
    page.get_by_role("textbox", name="Password").fill(live_server.admin_password)
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("heading", name="Appliance", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Recent ingests")).to_be_visible()
    expect(page.locator('[data-testid="stMetric"]')).to_have_count(6)
    expect(page.get_by_text("Signed in as")).to_be_visible()
    assert_no_exception(page)

    open_from_sidebar(page, "Datasets", "Datasets")
    expect(page.get_by_role("heading", name="Versions", exact=True)).to_be_visible()
    expect(page.get_by_role("tab", name="Report")).to_be_visible()
    assert_no_exception(page)
    for tab in ("Schema", "Summary", "Contract", "Lineage", "Ingests"):
        page.get_by_role("tab", name=tab).click()
        assert_no_exception(page)

    open_from_sidebar(page, "Audit", "Audit log")
    page.get_by_role("button", name="Verify chain").click()
    expect(page.get_by_text("The audit chain is intact")).to_be_visible()
    assert_no_exception(page)

    open_from_sidebar(page, "Runs", "Runs")
    page.get_by_role("textbox", name="Name contains").fill(RUN)
    page.get_by_role("textbox", name="Name contains").press("Enter")
    expect(page.get_by_text("1 run matches")).to_be_visible()
    expect(page.get_by_role("heading", name=f"{RUN} · succeeded")).to_be_visible()
    assert_no_exception(page)
    for tab in ("Params", "Tags", "Environment", "Artifacts", "Children", "Logs", "Metrics"):
        page.get_by_role("tab", name=tab).click()
        assert_no_exception(page)
    expect(page.locator('[data-testid="stVegaLiteChart"]').first).to_be_visible()

    open_from_sidebar(page, "Models", "Models")
    pick_model(page, MODEL)  # other modules register models on the shared server too
    page.get_by_role("tab", name="Model card").click()
    expect(page.get_by_role("heading", name="Alias history")).to_be_visible()
    assert_no_exception(page)
    expect(page.get_by_role("heading", name=f"Model card: {MODEL} v2")).to_be_visible()
    for tab in ("Signature and checks", "Download"):
        page.get_by_role("tab", name=tab).click()
        assert_no_exception(page)
    expect(page.get_by_role("button", name="Promote")).to_be_visible()  # admin
    with page.expect_download() as download:
        page.get_by_role("button", name="Download ONNX").click()
    assert download.value.suggested_filename == f"{MODEL}-v2.onnx"
    assert Path(download.value.path()).read_bytes() == tiny_onnx(2.0)  # exact bytes, not text
    assert_no_exception(page)

    open_from_sidebar(page, "Serving", "Serving")
    pick_model(page, SERVED)
    expect(page.get_by_role("heading", name="Aliases and routing")).to_be_visible()
    expect(page.get_by_role("heading", name="Live traffic")).to_be_visible()
    expect(page.get_by_text("Champion traffic: all to v1.")).to_be_visible()
    expect(page.get_by_role("button", name="Apply routing")).to_have_count(0)  # no change yet
    expect_charts_drawn(page, 2)  # latency p50/p99 and requests/s
    assert_no_exception(page)

    open_from_sidebar(page, "Monitoring", "Monitoring")
    pick_model(page, SERVED)
    expect(page.get_by_role("heading", name="Drift", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Live metrics from labels")).to_be_visible()
    expect(page.get_by_role("heading", name="Alerts", exact=True)).to_be_visible()
    expect(page.get_by_text(f"No drift report for {SERVED} yet")).to_be_visible()
    expect(page.get_by_role("button", name="Run drift check now")).to_be_visible()  # admin
    expect_charts_drawn(page, 2)  # rmse and label coverage
    assert_no_exception(page)

    open_from_sidebar(page, "Jobs", "Jobs")
    expect(page.get_by_role("heading", name="Schedules")).to_be_visible()
    page.locator('[data-testid="stSelectbox"]', has_text="Job").first.click()
    page.get_by_role("option", name=re.compile(r"^housekeeping\.checkpoint")).click()
    page.get_by_role("button", name="Run now").click()  # admin
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    expect_charts_drawn(page, 1)  # run durations: only there once the queued run finished
    assert_no_exception(page)

    open_from_sidebar(page, "Lineage", "Lineage")
    page.get_by_text("Node id", exact=True).click()
    box = page.get_by_role("textbox", name="Node id")
    box.fill(f"model:{SERVED}@1")
    box.press("Enter")
    expect(page.get_by_role("heading", name="Edges")).to_be_visible()
    expect(page.locator('[data-testid="stGraphVizChart"] svg').first).to_be_visible()
    assert_no_exception(page)

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()


FAIR = "ui-browser-fair"
FAIR_JOB = f"""
name: {FAIR}
dataset: ui_browser_people
target: churned
features: {{exclude: [customer_id]}}
model: {{kind: LogisticRegression, params: {{}}}}
split: {{test_size: 0.25, seed: 7}}
metric: roc_auc
fairness: {{sensitive: [gender], max_demographic_parity_difference: 0.9}}
"""


def test_models_page_shows_a_fairness_card_not_an_outage_in_chromium(
        page: Any, console_url: str, live_server: Any) -> None:
    """The tour's own step: a model trained with `fairness:` (its Markdown card was a 500, and
    the page then showed "API is not reachable" while the API was fine)."""
    from appliance_test_support import train_and_wait
    from playwright.sync_api import expect

    from appliance.demo import make_customers

    live_server.drop("ui_browser_people", "people.csv",
                     make_customers(300, seed=11).write_csv().encode())
    with httpx.Client(base_url=live_server.url, timeout=60) as api:
        token = api.post("/api/v1/auth/token", json={
            "username": "admin", "password": live_server.admin_password}).json()["access_token"]
        api.headers["Authorization"] = f"Bearer {token}"
        train_and_wait(api, FAIR_JOB)

    page.goto(console_url)  # a new page load is a new session: log in
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
    page.get_by_role("textbox", name="Username").fill("admin")
    page.get_by_role("textbox", name="Password").fill(live_server.admin_password)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text("Signed in as")).to_be_visible()
    open_from_sidebar(page, "Models", "Models")
    pick_model(page, FAIR)
    expect(page.get_by_role("heading", name=f"Model card: {FAIR} v1")).to_be_visible()
    expect(page.get_by_role("heading", name="Fairness")).to_be_visible()
    expect(page.get_by_role("cell", name="female", exact=True).first).to_be_visible()
    assert_no_exception(page)
    assert page.get_by_text("not reachable").count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0
