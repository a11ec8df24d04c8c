"""Smoke test of the real console: `streamlit run ui/Home.py` driven by headless Chromium.

Uses Debian's Chromium (/usr/bin/chromium): Playwright's own browser download
cannot run here. CI installs the package; the test is skipped only without it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .console_testing import tiny_onnx, upload_onnx

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
DATASET = "ui_browser"
CSV = b"id,score,colour\n1,0.5,red\n2,0.75,blue\n3,0.25,red\n"
RUN = "ui-browser-run"
MODEL = "ui_browser_model"

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
    from playwright.sync_api import sync_playwright

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

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
