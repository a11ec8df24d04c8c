"""Tables and charts shared by the console pages.

Pure presentation: each function draws what the API returned, as it returned
it. Nested values (lists, dicts) are shown as compact JSON so that every cell
of a table has one type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

# Cell backgrounds for status-like values (ingest outcomes, version statuses).
COLOURS = {
    "accepted": "background-color: #d4edda; color: #155724",
    "passed": "background-color: #d4edda; color: #155724",
    "rejected": "background-color: #f8d7da; color: #721c24",
    "quarantined": "background-color: #fff3cd; color: #856404",
    "recovered": "background-color: #d1ecf1; color: #0c5460",
}
FAILURE_STYLE = "background-color: #f8d7da; color: #721c24"

INGEST_COLUMNS = ["at", "dataset", "file_name", "outcome", "version", "reason", "message",
                  "size_bytes", "duration_ms", "sha256"]


def frame(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame with exactly ``columns``; nested values become JSON text."""
    records = [{c: _cell(row.get(c)) for c in columns} for row in rows]
    df = pd.DataFrame.from_records(records, columns=list(columns))
    for column in columns:
        if _ints_only(r[column] for r in records):  # show 2, not 2.0, beside a null
            df[column] = df[column].astype("Int64")
    return df


def table(df: pd.DataFrame, *, colour_by: str | None = None) -> None:
    """Draw ``df``; cells of ``colour_by`` are coloured by their value."""
    data: Any = df
    if colour_by is not None and colour_by in df.columns and not df.empty:
        data = df.style.map(lambda v: COLOURS.get(str(v), ""), subset=[colour_by])
    st.dataframe(data, hide_index=True, width="stretch")


def failures_table(failures: Sequence[Mapping[str, Any]]) -> None:
    """Failing checks of a validation report, every cell in red."""
    df = frame(failures, ["column", "check", "failing_rows", "sample_values", "message"])
    df["column"] = df["column"].fillna("(whole file)")  # frame-level checks name no column
    st.dataframe(df.style.map(lambda _: FAILURE_STYLE), hide_index=True, width="stretch")


def ingest_table(ingests: Sequence[Mapping[str, Any]]) -> None:
    table(frame(ingests, INGEST_COLUMNS), colour_by="outcome")


def outcome_chart(ingests: Sequence[Mapping[str, Any]]) -> None:
    """A bar per ingest outcome, coloured like the tables."""
    counts = pd.Series([i.get("outcome") for i in ingests], dtype="string").value_counts()
    df = pd.DataFrame({"outcome": counts.index.astype(str), "files": counts.to_numpy()})
    chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("outcome:N", sort="-y", title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("files:Q", title="files"),
            color=alt.Color("outcome:N", scale=_outcome_scale(), legend=None),
            tooltip=["outcome", "files"],
        )
        .properties(height=220)
    )
    st.altair_chart(chart, width="stretch")


def histogram_chart(histogram: Mapping[str, Sequence[float]], column: str) -> None:
    """Bars between consecutive ``edges``, as high as ``counts``."""
    edges, counts = list(histogram["edges"]), list(histogram["counts"])
    df = pd.DataFrame({"from": edges[:-1], "to": edges[1:], "rows": counts})
    chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("from:Q", title=column, bin="binned"),
            x2="to:Q",
            y=alt.Y("rows:Q"),
            tooltip=["from", "to", "rows"],
        )
        .properties(height=180)
    )
    st.altair_chart(chart, width="stretch")


def top_values_chart(top_values: Sequence[Mapping[str, Any]], column: str) -> None:
    df = pd.DataFrame(
        {"value": [str(v.get("value")) for v in top_values],
         "rows": [v.get("count") for v in top_values]}
    )
    chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("value:N", sort="-x", title=column),
            x=alt.X("rows:Q"),
            tooltip=["value", "rows"],
        )
        .properties(height=alt.Step(22))
    )
    st.altair_chart(chart, width="stretch")


def nulls_chart(summary: Sequence[Mapping[str, Any]]) -> None:
    if not any(c.get("nulls") for c in summary):
        st.caption("No nulls in any column.")
        return
    st.caption("Nulls per column")
    df = pd.DataFrame(
        {"column": [c.get("name") for c in summary], "nulls": [c.get("nulls") for c in summary]}
    )
    chart = (
        alt.Chart(df)
        .mark_bar(color="#d62728")
        .encode(x=alt.X("column:N", sort=None), y=alt.Y("nulls:Q"), tooltip=["column", "nulls"])
        .properties(height=200)
    )
    st.altair_chart(chart, width="stretch")


def _outcome_scale() -> alt.Scale:
    names = ["accepted", "rejected", "quarantined", "recovered"]
    return alt.Scale(domain=names, range=["#2ca02c", "#d62728", "#ff7f0e", "#1f77b4"])


def _ints_only(values: Iterable[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(isinstance(v, int) and not isinstance(v, bool) for v in present)


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)
    return value
