"""Runs: tracked training jobs, search trials and notebook runs.

Paging, filtering and sorting all happen on the server (``GET /api/v1/runs``);
this page only draws the page it gets back. Selected runs are compared side
by side with their metric histories, and one run is shown in detail.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any
from urllib.parse import quote

import console_lib as lib
import console_views as views
import pandas as pd
import streamlit as st

from appliance.client import ApplianceClient

ANY = "(any)"
STATUSES = ["queued", "running", "succeeded", "failed", "interrupted"]
ACTIVE = ("queued", "running")
KINDS = ["train", "trial", "external"]
SORTS = {"created_at": "created", "name": "name", "status": "status", "metric": "a metric"}
ORDERS = ["descending", "ascending"]
PAGE_SIZES = [10, 25, 50, 100, 200]
DEFAULT_PAGE_SIZE = 25
RUN_COLUMNS = ["name", "status", "kind", "experiment", "dataset", "dataset_version", "progress"]
TAIL_COLUMNS = ["created_at", "duration_s", "created_by", "id"]
ARTIFACT_COLUMNS = ["name", "size_bytes", "sha256"]
REFRESH_SECONDS = 3

# st.session_state keys
PAGE = "runs_page"
COMPARE = "runs_compare"
LABELS = "runs_labels"  # run id -> label, for runs selected on other pages
DETAIL = "runs_detail"

EMPTY_HINT = (
    "No runs yet: run `appliance train jobs/churn.yaml` (or put a job file into the jobs "
    "folder), or log from a notebook with `appliance.client` "
    "(`POST /api/v1/runs` with a name, then `POST /api/v1/runs/<id>/log`)."
)
NO_MATCH = "No runs match these filters: clear a filter or the name search to see more."


# -- the list: filters, sort and paging, all on the server ------------------------


def first_page() -> None:
    st.session_state[PAGE] = 1


def query(experiments: list[str]) -> dict[str, Any]:
    """The filter and sort widgets, as the query of ``GET /runs`` (None = not set);
    ``experiments``: the names to pick from (``GET /experiments``)."""
    c = st.columns(6)
    status = c[0].selectbox("Status", [ANY, *STATUSES], key="runs_status", on_change=first_page)
    kind = c[1].selectbox("Kind", [ANY, *KINDS], key="runs_kind", on_change=first_page)
    experiment = c[2].selectbox("Experiment", [ANY, *experiments], key="runs_experiment",
                                on_change=first_page,
                                help="Experiments group runs: a job's runs, or an MLflow "
                                     "client's experiment (docs/compat/mlflow.md).")
    dataset = c[3].text_input("Dataset", key="runs_dataset", on_change=first_page)
    tag = c[4].text_input("Tag (key:value)", key="runs_tag", on_change=first_page)
    q = c[5].text_input("Name contains", key="runs_q", on_change=first_page)
    s = st.columns(4)
    sort_by = s[0].selectbox("Sort by", list(SORTS), format_func=SORTS.__getitem__,
                             key="runs_sort", on_change=first_page)
    metric = s[1].text_input("Metric key", key="runs_sort_metric", on_change=first_page,
                             disabled=sort_by != "metric", placeholder="e.g. accuracy")
    order = s[2].selectbox("Order", ORDERS, key="runs_order", on_change=first_page)
    trials = s[2].checkbox("Show search trials", key="runs_trials", on_change=first_page,
                           help="A hyperparameter search's trial runs; they are also listed "
                                "on their parent run.")
    limit = s[3].selectbox("Runs per page", PAGE_SIZES, index=PAGE_SIZES.index(DEFAULT_PAGE_SIZE),
                           key="runs_limit", on_change=first_page)
    field = sort_by
    if sort_by == "metric":
        if metric.strip():
            field = f"metric:{metric.strip()}"
        else:
            st.caption("Enter the metric key to sort by; until then runs are sorted by time.")
            field = "created_at"
    return {
        "status": None if status == ANY else status,
        "kind": None if kind == ANY else kind,
        "experiment": None if experiment == ANY else experiment,
        "dataset": dataset.strip() or None,
        "tag": tag.strip() or None,
        "q": q.strip() or None,
        "top_level": None if trials else True,
        "sort": ("-" if order == "descending" else "") + field,
        "limit": int(limit),
    }


def fetch_page(client: ApplianceClient, params: dict[str, Any]) -> tuple[dict[str, Any], int] | None:
    """One page of runs and the number of pages; a page past the end falls back to the last."""
    limit = params["limit"]

    def get(page: int) -> dict[str, Any] | None:
        answer: dict[str, Any] | None = lib.fetch(
            lambda: client.get("/runs", **params, offset=(page - 1) * limit))
        return answer

    page = max(1, int(st.session_state.get(PAGE) or 1))
    answer = get(page)
    if answer is None:
        return None
    pages = max(1, math.ceil(answer["total"] / limit))
    if page > pages:
        page = pages
        answer = get(page)
        if answer is None:
            return None
    st.session_state[PAGE] = page  # before the widget is drawn: allowed
    return answer, pages


def filtered(params: dict[str, Any]) -> bool:
    return any(params[k] for k in ("status", "kind", "experiment", "dataset", "tag", "q"))


def label(run: dict[str, Any]) -> str:
    return f"{run.get('name')} · {str(run.get('id'))[:8]}"


def progress_text(run: dict[str, Any]) -> str | None:
    progress = run.get("progress")
    if not progress or run.get("status") not in ACTIVE:
        return None
    fraction = progress.get("fraction")
    share = f" {fraction:.0%}" if isinstance(fraction, int | float) else ""
    return f"{progress.get('stage') or run.get('status')}{share}"


def runs_table(runs: list[dict[str, Any]]) -> None:
    rows, metric_columns = views.with_metrics(
        [{**r, "progress": progress_text(r)} for r in runs])
    views.table(views.frame(rows, RUN_COLUMNS + metric_columns + TAIL_COLUMNS), colour_by="status")


def show_list(client: ApplianceClient) -> list[dict[str, Any]] | None:
    known = lib.fetch(lambda: client.get("/experiments")) or []
    params = query([e["name"] for e in known])
    fetched = fetch_page(client, params)
    if fetched is None:
        return None
    answer, pages = fetched
    total, runs = answer["total"], answer["items"]
    if total == 0:
        st.info(NO_MATCH if filtered(params) else EMPTY_HINT)
        return None
    page_column, count_column = st.columns([1, 3])
    page = page_column.number_input("Page", min_value=1, max_value=pages, step=1, key=PAGE)
    first = (int(page) - 1) * params["limit"] + 1
    matches = "run matches" if total == 1 else "runs match"
    count_column.markdown(f"**{total}** {matches} · page {int(page)} of {pages} · "
                          f"showing {first} to {first + len(runs) - 1}")
    runs_table(runs)
    return runs


# -- compare ------------------------------------------------------------------------


def pick_compare(runs: list[dict[str, Any]]) -> list[str]:
    """Runs to compare: chosen on this page, kept while paging and filtering."""
    labels: dict[str, str] = st.session_state.setdefault(LABELS, {})
    labels.update({r["id"]: label(r) for r in runs})
    here = [r["id"] for r in runs]
    chosen = st.session_state.get(COMPARE, [])
    options = here + [i for i in chosen if i not in here]
    picked: list[str] = st.multiselect(
        "Compare runs", options, format_func=lambda i: labels.get(i, i), key=COMPARE,
        help="Runs stay selected when you change page or filters.",
        placeholder="Choose runs to compare their params and metrics")
    return picked


def side_by_side(details: list[dict[str, Any]], field: str, what: str) -> pd.DataFrame:
    keys = sorted({k for d in details for k in (d.get(field) or {})})
    rows = [{what: k, **{label(d): (d.get(field) or {}).get(k) for d in details}} for k in keys]
    return views.frame(rows, [what, *[label(d) for d in details]])


def metric_points(client: ApplianceClient, runs: list[dict[str, Any]]) -> pd.DataFrame:
    """Every metric point of ``runs``, one row per point, labelled by run."""
    frames = []
    for run in runs:
        points = lib.fetch(partial(client.get, f"/runs/{run['id']}/metrics"))
        if points:
            df = pd.DataFrame.from_records(points, columns=["key", "step", "value", "ts"])
            df["run"] = label(run)
            frames.append(df)
    if not frames:
        return pd.DataFrame(columns=["key", "step", "value", "ts", "run"])
    return pd.concat(frames, ignore_index=True)


def metric_charts(points: pd.DataFrame) -> None:
    keys = sorted(points["key"].unique())
    if not keys:
        st.caption("No metric points were logged for these runs.")
        return
    for column, key in zip(st.columns(2) * len(keys), keys, strict=False):
        with column:
            views.metric_history_chart(points[points["key"] == key], key)


def show_compare(client: ApplianceClient, run_ids: list[str]) -> None:
    if not run_ids:
        st.caption("Select runs above to compare their params, metrics and metric histories.")
        return
    details = [d for rid in run_ids
               if (d := lib.fetch(partial(client.get, f"/runs/{rid}"))) is not None]
    if not details:
        return
    params_column, metrics_column = st.columns(2)
    with params_column:
        st.markdown("**Params**")
        views.table(side_by_side(details, "params", "param"))
    with metrics_column:
        st.markdown("**Metrics** (latest value)")
        views.table(side_by_side(details, "metrics", "metric"))
    metric_charts(metric_points(client, details))


# -- one run ------------------------------------------------------------------------


def pick_detail(runs: list[dict[str, Any]]) -> str:
    ids = [r["id"] for r in runs]
    if st.session_state.get(DETAIL) not in ids:
        st.session_state.pop(DETAIL, None)  # the run left this page: show the first one
    labels = {r["id"]: label(r) for r in runs}
    run_id: str = st.selectbox("Run", ids, format_func=labels.__getitem__, key=DETAIL)
    return run_id


def show_progress(run: dict[str, Any]) -> None:
    progress = run.get("progress") or {}
    fraction = progress.get("fraction")
    value = min(1.0, max(0.0, float(fraction))) if isinstance(fraction, int | float) else 0.0
    stage = progress.get("stage") or ("waiting for a worker" if run["status"] == "queued"
                                      else "no progress reported")
    st.progress(value, text=f"{run['status']}: {stage} ({value:.0%})")


def show_model_version(run: dict[str, Any]) -> None:
    produced = run.get("model_version")
    if produced:
        st.markdown(f"Produced model version **{produced['model']} v{produced['version']}**: "
                    "open it on the Models page.")
    else:
        st.caption("This run has not produced a model version.")


def key_values(values: dict[str, Any], what: str) -> None:
    if not values:
        st.caption(f"No {what} recorded.")
        return
    views.table(views.frame([{what: k, "value": v} for k, v in sorted(values.items())],
                            [what, "value"]))


def show_artifacts(client: ApplianceClient, run: dict[str, Any]) -> None:
    artifacts = run.get("artifacts") or []
    if not artifacts:
        st.caption("No artifacts stored. Upload one with `POST /api/v1/runs/<id>/artifacts?name=`.")
        return
    views.table(views.frame(artifacts, ARTIFACT_COLUMNS))
    for i, artifact in enumerate(artifacts):
        path = f"/runs/{run['id']}/artifacts/{quote(artifact['name'], safe='')}"
        st.download_button(f"Download {artifact['name']}", data=partial(lib.fetch_bytes, client, path),
                           file_name=artifact["name"], mime="application/octet-stream",
                           key=f"artifact_{i}_{artifact['sha256'][:12]}")


def show_children(children: list[dict[str, Any]]) -> None:
    if not children:
        st.caption("No child runs (a job's search trials appear here).")
        return
    rows, metric_columns = views.with_metrics(children)
    views.table(views.frame(rows, ["name", "status", *metric_columns, "duration_s", "id"]),
                colour_by="status")


def show_run_body(client: ApplianceClient, run_id: str, refreshing: bool = False) -> None:
    run = lib.fetch(lambda: client.get(f"/runs/{run_id}"))
    if run is None:
        return
    if refreshing and run["status"] not in ACTIVE:
        st.rerun()  # it just finished: redraw the whole page (the list too) and stop refreshing
    st.subheader(f"{run['name']} · {run['status']}")
    dataset = (f"dataset {run['dataset']} v{run.get('dataset_version')}" if run.get("dataset")
               else "no dataset")
    duration = f"{run['duration_s']:.1f}s" if run.get("duration_s") is not None else "-"
    seed = f" · seed {run['seed']}" if run.get("seed") is not None else ""
    st.caption(f"{run['kind']} run · experiment {run.get('experiment')} · {dataset}{seed} · "
               f"by {run.get('created_by')} · created "
               f"{run.get('created_at')} · duration {duration} · id `{run['id']}`")
    if run["status"] in ACTIVE:
        show_progress(run)
    if run.get("error"):
        st.error(f"The run {run['status']}: {run['error']}")
    views.training_warnings(run.get("warnings") or [], "in this run")
    show_model_version(run)
    tabs = st.tabs(["Metrics", "Params", "Tags", "Environment", "Artifacts", "Children", "Logs"])
    with tabs[0]:
        key_values(run.get("metrics") or {}, "metric")
        metric_charts(metric_points(client, [run]))
    with tabs[1]:
        key_values(run.get("params") or {}, "param")
    with tabs[2]:
        key_values(run.get("tags") or {}, "tag")
    with tabs[3]:
        if run.get("environment"):
            st.json(run["environment"])
        else:
            st.caption("No environment recorded.")
        if run.get("spec"):
            with st.expander("Job spec"):
                spec = run["spec"]
                if isinstance(spec, str):
                    st.code(spec, language="yaml")
                else:
                    st.json(spec)
    with tabs[4]:
        show_artifacts(client, run)
    with tabs[5]:
        show_children(run.get("children") or [])
    with tabs[6]:
        if run.get("logs"):
            st.code(run["logs"])
        else:
            st.caption("No logs.")


def show_run(client: ApplianceClient, run: dict[str, Any]) -> None:
    """The run's detail; redrawn every few seconds while it is queued or running."""
    if run.get("status") in ACTIVE:
        st.fragment(show_run_body, run_every=REFRESH_SECONDS)(client, run["id"], refreshing=True)
    else:
        show_run_body(client, run["id"])


def main() -> None:
    client = lib.open_page("Runs")
    runs = show_list(client)
    if not runs:
        return
    st.subheader("Compare")
    show_compare(client, pick_compare(runs))
    st.subheader("Run detail")
    run_id = pick_detail(runs)
    show_run(client, next(r for r in runs if r["id"] == run_id))


main()
