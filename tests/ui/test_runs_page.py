"""The Runs page against a live API: server-side paging, filters and sort; compare; detail.

Runs are external runs made through the API (POST /runs, POST /runs/{id}/log,
PATCH /runs/{id}), so the page does not depend on training. The live server is
shared with other test modules, so every check narrows to this module's
experiment and takes its expected values from the API itself.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from appliance.client import ApplianceClient

from .console_testing import (
    MODELS_PAGE,
    RUNS_PAGE,
    assert_clean,
    charts,
    console_lib,
    has_key,
    log_in,
    new_console,
    open_page,
    table,
    tables,
    texts,
)

EXPERIMENT = "ui_runs"
STEPS = 5
ARTIFACT = b"\x00\x01 binary notes \xff"


def start(api: ApplianceClient, name: str, params: dict[str, Any]) -> dict[str, Any]:
    run: dict[str, Any] = api.post("/runs", json={"name": name, "experiment": EXPERIMENT,
                                                  "params": params, "tags": {"team": "ui"}})
    return run


def log_curve(api: ApplianceClient, run_id: str, i: int) -> None:
    points = []
    for step in range(STEPS):
        points.append({"key": "loss", "value": 1.0 / (step + 1) + i / 100, "step": step})
        points.append({"key": "accuracy", "value": 0.5 + i * 0.04 + step / 100, "step": step})
    api.post(f"/runs/{run_id}/log", json={"metrics": points})


@pytest.fixture(scope="module")
def tracked(admin_api: ApplianceClient) -> dict[str, dict[str, Any]]:
    """13 runs of one experiment: the 2 oldest failed, 10 succeeded, the newest still running."""
    runs: dict[str, dict[str, Any]] = {}
    for i in range(2):  # oldest: not on the first page of the newest-first list
        run = start(admin_api, f"ui-failed-{i}", {"lr": 1.0})
        admin_api.patch(f"/runs/{run['id']}", json={"status": "failed", "error": "loss diverged"})
        runs[run["name"]] = run
    for i in range(10):
        run = start(admin_api, f"ui-run-{i:02d}", {"lr": round(0.01 * (i + 1), 2), "depth": i % 3 + 2})
        log_curve(admin_api, run["id"], i)
        if i == 4:
            admin_api.request("POST", f"/runs/{run['id']}/artifacts", params={"name": "notes.bin"},
                              content=ARTIFACT)
        admin_api.patch(f"/runs/{run['id']}", json={"status": "succeeded"})
        runs[run["name"]] = run
    live = start(admin_api, "ui-live", {"lr": 0.5})
    admin_api.post(f"/runs/{live['id']}/log", json={"metrics": [{"key": "loss", "value": 0.9}]})
    runs["ui-live"] = live
    return runs


def api_page(api: ApplianceClient, **query: Any) -> dict[str, Any]:
    out: dict[str, Any] = api.get("/runs", experiment=EXPERIMENT, **query)
    return out


def open_runs(console: AppTest, live_server: Any, *, limit: int = 10, **inputs: str) -> AppTest:
    """The Runs page as admin, narrowed to this module's experiment."""
    at = open_page(log_in(console, "admin", live_server.admin_password), RUNS_PAGE)
    at.selectbox(key="runs_experiment").select(EXPERIMENT)
    for key, value in inputs.items():
        at.text_input(key=key).input(value)
    at.selectbox(key="runs_limit").select(limit)
    return at.run()


def shown_runs(at: AppTest) -> list[str]:
    return list(table(at, "name", "status", "kind", "experiment")["name"])


def count_line(at: AppTest) -> str:
    lines = [t for t in texts(at.markdown) if "runs match" in t]
    assert len(lines) == 1, texts(at.markdown)
    return lines[0]


# -- empty appliance ------------------------------------------------------------------


def test_empty_appliance_runs_and_models_pages_say_what_to_do(
    server_factory: Any, monkeypatch: pytest.MonkeyPatch
):
    empty = server_factory()
    monkeypatch.setenv("APPLIANCE_API_URL", empty.url)
    at = open_page(log_in(new_console(), "admin", empty.admin_password), RUNS_PAGE)

    assert_clean(at)
    assert texts(at.title) == ["Runs"]
    assert any(t.startswith("No runs yet") and "appliance train jobs/churn.yaml" in t
               and "appliance.client" in t for t in texts(at.info))
    assert not at.dataframe
    assert not has_key(at.multiselect, "runs_compare")

    at.text_input(key="runs_q").input("nothing-like-this").run()
    assert_clean(at)
    assert any(t.startswith("No runs match these filters") for t in texts(at.info))

    at = open_page(at, MODELS_PAGE)
    assert_clean(at)
    assert texts(at.title) == ["Models"]
    assert any(t.startswith("No models yet") and "appliance train" in t
               and "/api/v1/models/<name>/versions" in t for t in texts(at.info))
    assert not at.dataframe


# -- paging, filters and sort: all on the server ----------------------------------------


def test_runs_page_pages_on_the_server_and_shows_the_total(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, tracked: dict[str, Any]
):
    at = open_runs(console, live_server, limit=10)

    assert_clean(at)
    assert texts(at.title) == ["Runs"]
    first = api_page(admin_api, limit=10, offset=0)
    assert first["total"] == len(tracked) == 13
    assert count_line(at).startswith("**13** runs match · page 1 of 2 · showing 1 to 10")
    assert shown_runs(at) == [r["name"] for r in first["items"]]
    assert shown_runs(at)[0] == "ui-live"  # newest first by default
    runs = table(at, "name", "status", "metric:accuracy", "metric:loss").set_index("name")
    assert runs.loc["ui-run-09", "metric:accuracy"] == pytest.approx(0.5 + 9 * 0.04 + 0.04)
    assert runs.loc["ui-run-09", "status"] == "succeeded"

    at.number_input(key="runs_page").set_value(2).run()
    assert_clean(at)
    second = api_page(admin_api, limit=10, offset=10)
    assert count_line(at).startswith("**13** runs match · page 2 of 2 · showing 11 to 13")
    assert shown_runs(at) == [r["name"] for r in second["items"]]
    assert {"ui-failed-0", "ui-failed-1"} <= set(shown_runs(at))


def test_runs_page_filters_on_the_server(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, tracked: dict[str, Any]
):
    at = open_runs(console, live_server, limit=10)
    at.selectbox(key="runs_status").select("failed").run()

    # the failed runs are the two oldest: not on page 1 of the unfiltered list, so
    # finding them proves the page asked the server, not filtered what it had
    assert not at.exception
    assert api_page(admin_api, status="failed")["total"] == 2
    assert count_line(at).startswith("**2** runs match · page 1 of 1")
    assert sorted(shown_runs(at)) == ["ui-failed-0", "ui-failed-1"]
    assert set(table(at, "name", "status")["status"]) == {"failed"}

    at.selectbox(key="runs_status").select("(any)")
    at.text_input(key="runs_q").input("ui-run-0").run()
    assert_clean(at)
    assert count_line(at).startswith("**10** runs match")
    assert all(name.startswith("ui-run-0") for name in shown_runs(at))

    at.text_input(key="runs_tag").input("team:nobody").run()
    assert any(t.startswith("No runs match these filters") for t in texts(at.info))


def test_runs_page_sorts_by_a_metric_on_the_server(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, tracked: dict[str, Any]
):
    at = open_runs(console, live_server, limit=25)
    assert at.text_input(key="runs_sort_metric").disabled  # until "a metric" is chosen
    at.selectbox(key="runs_sort").select("metric").run()
    at.text_input(key="runs_sort_metric").input("accuracy")
    at.selectbox(key="runs_order").select("ascending").run()

    assert_clean(at)
    expected = api_page(admin_api, sort="metric:accuracy", limit=25)["items"]
    assert shown_runs(at) == [r["name"] for r in expected]
    accuracy = table(at, "name", "metric:accuracy")["metric:accuracy"].dropna().tolist()
    assert len(accuracy) == 10 and accuracy == sorted(accuracy)
    assert shown_runs(at)[0] == "ui-run-00"


# -- compare and detail -----------------------------------------------------------------


def test_runs_page_compares_two_runs_side_by_side(
    console: AppTest, live_server: Any, tracked: dict[str, Any]
):
    a, b = tracked["ui-run-02"], tracked["ui-run-07"]
    at = open_runs(console, live_server, limit=25)
    at.multiselect(key="runs_compare").select(a["id"]).select(b["id"]).run()

    assert_clean(at)
    label_a, label_b = f"ui-run-02 · {a['id'][:8]}", f"ui-run-07 · {b['id'][:8]}"
    params = table(at, "param", label_a, label_b).set_index("param")
    assert params.loc["lr", label_a] == "0.03" and params.loc["lr", label_b] == "0.08"
    metrics = table(at, "metric", label_a, label_b).set_index("metric")
    assert metrics.loc["accuracy", label_b] == pytest.approx(0.5 + 7 * 0.04 + 0.04)
    compare_charts = [c for c in charts(at) if label_a in {r.get("run") for r in chart_rows(c)}]
    assert {chart_title(c) for c in compare_charts} == {"accuracy", "loss"}
    for chart in compare_charts:
        rows = chart_rows(chart)
        assert {r["run"] for r in rows} == {label_a, label_b}  # one line per run
        assert sorted({r["step"] for r in rows}) == list(range(STEPS))

    # the selection survives a change of page
    at.selectbox(key="runs_limit").select(10).run()
    at.number_input(key="runs_page").set_value(2).run()
    assert_clean(at)
    assert at.multiselect(key="runs_compare").value == [a["id"], b["id"]]
    assert tables(at, "param", label_a, label_b)


def test_runs_page_shows_a_running_run_with_progress(
    console: AppTest, live_server: Any, tracked: dict[str, Any]
):
    at = open_runs(console, live_server)  # newest first: ui-live is the default detail

    assert_clean(at)
    assert "ui-live · running" in texts(at.subheader)
    bars = list(at.get("progress"))
    assert len(bars) == 1
    params = tables(at, "param", "value")
    assert any("lr" in set(df["param"]) for df in params)


def test_runs_page_shows_run_detail(
    console: AppTest, live_server: Any, tracked: dict[str, Any]
):
    run = tracked["ui-run-04"]
    at = open_runs(console, live_server)
    at.selectbox(key="runs_detail").select(run["id"]).run()

    assert_clean(at)
    assert "ui-run-04 · succeeded" in texts(at.subheader)
    assert not list(at.get("progress"))
    assert any("has not produced a model version" in t for t in texts(at.caption))
    kv = {df.columns[0]: df.set_index(df.columns[0])["value"] for df in tables(at, "value")}
    assert kv["param"]["lr"] == "0.05" and kv["param"]["depth"] == "3"
    assert kv["tag"]["team"] == "ui"
    assert kv["metric"]["loss"] == pytest.approx(1.0 / STEPS + 0.04)
    assert {chart_title(c) for c in charts(at)} == {"accuracy", "loss"}
    artifacts = table(at, "name", "size_bytes", "sha256")
    assert list(artifacts["name"]) == ["notes.bin"]
    assert list(artifacts["size_bytes"]) == [len(ARTIFACT)]
    assert [b.label for b in at.get("download_button")] == ["Download notes.bin"]


def test_console_fetches_an_artifact_as_exact_bytes(
    admin_api: ApplianceClient, tracked: dict[str, Any]
):
    path = f"/runs/{tracked['ui-run-04']['id']}/artifacts/notes.bin"
    assert console_lib().fetch_bytes(admin_api, path) == ARTIFACT


def test_runs_page_shows_why_a_run_failed(
    console: AppTest, live_server: Any, tracked: dict[str, Any]
):
    run = tracked["ui-failed-0"]
    at = open_runs(console, live_server)
    at.selectbox(key="runs_status").select("failed").run()
    at.selectbox(key="runs_detail").select(run["id"]).run()

    assert not at.exception
    assert "ui-failed-0 · failed" in texts(at.subheader)
    assert texts(at.error) == ["The run failed: loss diverged"]


def test_runs_page_for_a_viewer(console: AppTest, viewer: tuple[str, str], tracked: dict[str, Any]):
    at = open_page(log_in(console, *viewer), RUNS_PAGE)
    at.selectbox(key="runs_experiment").select(EXPERIMENT).run()

    assert_clean(at)
    assert count_line(at).startswith("**13** runs match")


# -- chart helpers ------------------------------------------------------------------------


def chart_spec(chart: Any) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(chart.proto.spec)
    return spec


def chart_title(chart: Any) -> str:
    title = chart_spec(chart).get("title")
    return str(title.get("text") if isinstance(title, dict) else title)


def chart_rows(chart: Any) -> list[dict[str, Any]]:
    """The data rows of an Altair chart, wherever Streamlit put them."""
    rows: list[dict[str, Any]] = []
    for values in chart_spec(chart).get("datasets", {}).values():
        rows += values
    for dataset in chart.proto.datasets:
        rows += _arrow_rows(dataset.data.data)
    if chart.proto.data.data:
        rows += _arrow_rows(chart.proto.data.data)
    return rows


def _arrow_rows(data: bytes) -> list[dict[str, Any]]:
    import pyarrow as pa

    return pa.ipc.open_stream(data).read_all().to_pylist()
