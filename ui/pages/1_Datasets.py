"""Datasets: versions, validation reports, column summaries, contracts and lineage."""

from __future__ import annotations

from typing import Any

import console_lib as lib
import console_views as views
import streamlit as st
from console_rows import show_rows

from appliance.client import ApplianceClient

DATASET_COLUMNS = ["name", "versions", "current_version", "latest_version", "contract_version",
                   "rows", "created_at"]
VERSION_COLUMNS = ["number", "status", "warnings", "rows", "contract_version", "report_headline",
                   "source_file", "created_at", "sha256"]
WARNING_COLUMNS = ["column", "check", "failing_rows", "sample_values", "message"]
WARNING_STYLE = "background-color: #fff3cd; color: #856404"
SOFT_HINT = ("Warnings come from the contract's soft checks (expected ranges, a small rise in "
             "nulls, a few unseen categories, duplicate rows): the version was kept. Harden a "
             "range by adding `in_range` to the column in the contract.")
SUMMARY_COLUMNS = ["name", "dtype", "count", "nulls", "n_unique", "min", "max", "mean", "std"]
EDGE_COLUMNS = ["src", "relation", "dst", "at"]
EMPTY_HINT = (
    "No datasets yet. Drop a CSV, Parquet or JSON-lines file into `data/inbox/<dataset>/` "
    "(under `$APPLIANCE_HOME`), e.g. `data/inbox/customers/2024-06.csv`: the first file "
    "creates the dataset and infers its contract."
)


# -- pickers --------------------------------------------------------------------


def pick_dataset(datasets: list[dict[str, Any]]) -> str:
    st.subheader("All datasets")
    views.table(views.frame(datasets, DATASET_COLUMNS))
    names = [d["name"] for d in datasets]
    name: str = st.selectbox("Dataset", names, key="dataset")
    return name


def pick_version(name: str, versions: list[dict[str, Any]]) -> int:
    """Versions come newest first, so the newest is the default."""
    labels = {v["number"]: f"v{v['number']} · {v['status']}" + warning_badge(v) for v in versions}
    number: int = st.selectbox(
        "Version", list(labels), format_func=labels.__getitem__, key=f"version_{name}"
    )
    return number


# -- one version ------------------------------------------------------------------


def warning_badge(version: dict[str, Any]) -> str:
    n = int(version.get("warnings") or 0)
    return f" · ⚠ {n} warning{'s' if n != 1 else ''}" if n else ""


def show_report(client: ApplianceClient, detail: dict[str, Any]) -> None:
    report: dict[str, Any] = detail.get("report") or {}
    rows, against = report.get("rows", detail.get("rows")), report.get("contract_version")
    warnings = report.get("warnings") or []
    if report.get("passed") and warnings:
        st.warning(f"Validation passed with {len(warnings)} warning(s): {rows} rows against "
                   f"contract v{against}.")
    elif report.get("passed"):
        st.success(f"Validation passed: {rows} rows against contract v{against}.")
    else:
        failures = report.get("failures", [])
        st.error(f"Validation failed: {len(failures)} failing check(s) on {rows} rows "
                 f"against contract v{against}.")
        views.failures_table(failures)
    if warnings:
        warnings_table(warnings)
    if detail.get("status") == "rejected" and lib.has_role("operator"):
        revalidate_button(client, detail["dataset"], detail["number"])


def warnings_table(warnings: list[dict[str, Any]]) -> None:
    """Soft-check warnings of a validation report, every cell in amber."""
    st.markdown(f"**Warnings** ({len(warnings)})")
    st.caption(SOFT_HINT)
    df = views.frame(warnings, WARNING_COLUMNS)
    df["column"] = df["column"].fillna("(whole file)")  # the duplicate-row check names no column
    st.dataframe(df.style.map(lambda _: WARNING_STYLE), hide_index=True, width="stretch")


def revalidate_button(client: ApplianceClient, name: str, number: int) -> None:
    def revalidated(detail: dict[str, Any]) -> str:
        return f"Re-validated v{number} against the current contract: {detail['status']}."

    st.button(
        "Re-validate",
        key="revalidate",
        help="Check this version again against the current contract.",
        on_click=lib.attempt,
        args=(lambda: client.revalidate(name, number), revalidated),
    )


def show_schema(detail: dict[str, Any]) -> None:
    views.table(views.frame(detail.get("columns", []), ["name", "dtype"]))


def show_summary(summary: list[dict[str, Any]], status: str = "ready") -> None:
    if not summary:
        st.info("The column summary is being computed; reload in a moment."
                if status == "pending" else "No column summary for this version.")
        return
    df = views.frame(summary, SUMMARY_COLUMNS)
    df[["min", "max"]] = df[["min", "max"]].astype("string")  # numbers or text, per column
    views.table(df)
    views.nulls_chart(summary)
    for column, stats in zip(st.columns(3) * len(summary), summary, strict=False):
        with column:
            show_column_chart(stats)


def show_column_chart(stats: dict[str, Any]) -> None:
    name = str(stats.get("name"))
    st.markdown(f"**{name}** `{stats.get('dtype')}` · {stats.get('nulls')} nulls")
    if stats.get("histogram"):
        views.histogram_chart(stats["histogram"], name)
    elif stats.get("top_values"):
        views.top_values_chart(stats["top_values"], name)
    else:
        st.caption("no chart for this column")


def show_contract(client: ApplianceClient, name: str) -> None:
    contract = lib.fetch(lambda: client.contract(name))
    if contract is None:
        return
    origin = "inferred from the first file" if contract.get("inferred") else "edited"
    st.caption(f"Contract v{contract.get('version')} · {origin} · by "
               f"{contract.get('created_by')} · {contract.get('created_at')}")
    if not lib.has_role("operator"):
        st.code(contract.get("yaml", ""), language="yaml")
        return
    key = f"contract_yaml_{name}_{contract.get('version')}"
    st.text_area("Contract (YAML)", contract.get("yaml", ""), height=320, key=key)
    save_contract_button(client, name, key)


def save_contract_button(client: ApplianceClient, name: str, editor_key: str) -> None:
    def saved(contract: dict[str, Any]) -> str:
        return (f"Saved contract v{contract['version']} for {name}. "
                "Re-validate rejected versions to check them against it.")

    # The callback runs before the next script run: read the edited text from the widget state.
    st.button(
        "Save as new contract version",
        key="save_contract",
        on_click=lib.attempt,
        args=(lambda: client.set_contract(name, st.session_state[editor_key]), saved),
    )


def show_lineage(client: ApplianceClient, detail: dict[str, Any]) -> None:
    node = detail.get("lineage_node") or f"dataset:{detail['dataset']}@{detail['number']}"
    lineage = lib.fetch(lambda: client.lineage(node))
    if lineage is None:
        return
    st.caption(f"Node `{lineage.get('node', node)}`")
    for direction in ("upstream", "downstream"):
        edges = lineage.get(direction, [])
        st.markdown(f"**{direction.capitalize()}** ({len(edges)})")
        if edges:
            views.table(views.frame(edges, EDGE_COLUMNS))
        else:
            st.caption(f"no {direction} edges")


def show_ingests(client: ApplianceClient, name: str) -> None:
    ingests = lib.fetch(lambda: client.ingests(dataset=name, limit=50))
    if ingests is None:
        return
    if not ingests:
        st.info(f"No ingests recorded for {name}.")
        return
    views.ingest_table(ingests)
    quarantined = [i for i in ingests if i.get("outcome") == "quarantined"]
    if quarantined:
        st.markdown(f"**Quarantined files** ({len(quarantined)})")
        views.table(views.frame(quarantined, ["at", "file_name", "reason", "message"]))


def show_version(client: ApplianceClient, name: str, number: int) -> None:
    detail = lib.fetch(lambda: client.version(name, number))
    if detail is None:
        return
    st.subheader(f"{name} v{number} · {detail.get('status')}{warning_badge(detail)}")
    st.caption(f"{detail.get('rows')} rows · from `{detail.get('source_file')}` · "
               f"{detail.get('created_at')} · sha256 {str(detail.get('sha256'))[:12]}")
    tabs = st.tabs(["Report", "Schema", "Summary", "Contract", "Lineage", "Ingests", "Rows"])
    with tabs[0]:
        show_report(client, detail)
    with tabs[1]:
        show_schema(detail)
    with tabs[2]:
        show_summary(detail.get("summary") or [], detail.get("summary_status", "ready"))
    with tabs[3]:
        show_contract(client, name)
    with tabs[4]:
        show_lineage(client, detail)
    with tabs[5]:
        show_ingests(client, name)
    with tabs[6]:
        show_rows(client, name, number)


def main() -> None:
    client = lib.open_page("Datasets")
    datasets = lib.fetch(client.datasets)
    if datasets is None:
        return
    if not datasets:
        st.info(EMPTY_HINT)
        return
    name = pick_dataset(datasets)
    versions = lib.fetch(lambda: client.versions(name))
    if versions is None:
        return
    st.subheader("Versions")
    if not versions:
        st.info(f"{name} has no versions yet: every file so far was quarantined.")
        show_ingests(client, name)
        return
    views.table(views.frame(versions, VERSION_COLUMNS), colour_by="status")
    show_version(client, name, pick_version(name, versions))


main()
