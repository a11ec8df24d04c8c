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

# Cell backgrounds for status-like values (ingest outcomes, dataset, run and model statuses).
_GREEN = "background-color: #d4edda; color: #155724"
_RED = "background-color: #f8d7da; color: #721c24"
_YELLOW = "background-color: #fff3cd; color: #856404"
_BLUE = "background-color: #d1ecf1; color: #0c5460"
COLOURS = {
    "accepted": _GREEN,
    "passed": _GREEN,
    "rejected": _RED,
    "quarantined": _YELLOW,
    "recovered": _BLUE,
    "succeeded": _GREEN,
    "ready": _GREEN,
    "failed": _RED,
    "interrupted": _YELLOW,
    "pending_approval": _YELLOW,
    "queued": _BLUE,
    "running": _BLUE,
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


def metric_history_chart(points: pd.DataFrame, key: str) -> None:
    """One line per run of metric ``key`` over steps.

    ``points`` has the columns ``run``, ``step``, ``value`` and ``ts``, as
    ``GET /runs/{id}/metrics`` returns them plus the run's label.
    """
    chart = (
        alt.Chart(points)
        .mark_line(point=True)
        .encode(
            x=alt.X("step:Q", title="step", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y("value:Q", title=key, scale=alt.Scale(zero=False)),
            color=alt.Color("run:N", title="run"),
            tooltip=["run", "step", "value", "ts"],
        )
        .properties(title=key, height=260)
    )
    st.altair_chart(chart, width="stretch")


ALIAS_ACTIONS = ["set", "rollback", "approve", "remove"]


def alias_timeline_chart(events: Sequence[Mapping[str, Any]], alias: str) -> None:
    """Where an alias pointed over time: a step line, one dot per move coloured by action."""
    df = pd.DataFrame({
        "at": pd.to_datetime([e.get("at") for e in events], utc=True, format="ISO8601"),
        "version": pd.array([e.get("version") for e in events], dtype="Int64"),
        "previous_version": pd.array([e.get("previous_version") for e in events], dtype="Int64"),
        "action": [str(e.get("action")) for e in events],
        "forced": [bool(e.get("forced")) for e in events],
        "actor": [e.get("actor") for e in events],
        "reason": [e.get("reason") or "" for e in events],
    }).sort_values("at")
    x = alt.X("at:T", title="time (UTC)",
              axis=alt.Axis(format="%d %b %H:%M:%S", labelAngle=-20, labelOverlap=True))
    y = alt.Y("version:Q", title=f"{alias} → version", scale=alt.Scale(zero=False, padding=12),
              axis=alt.Axis(tickMinStep=1, format="d"))
    path = alt.Chart(df).mark_line(interpolate="step-after", color="#999999").encode(x=x, y=y)
    moves = (
        alt.Chart(df)
        .mark_point(filled=True, size=140)
        .encode(
            x=x,
            y=y,
            color=alt.Color("action:N", scale=_action_scale(), title="action"),
            shape=alt.Shape("forced:N", title="forced"),
            tooltip=[alt.Tooltip("at:T", format="%Y-%m-%d %H:%M:%S UTC"), "action", "version",
                     "previous_version", "actor", "reason", "forced"],
        )
    )
    st.altair_chart((path + moves).properties(height=240), width="stretch")


def with_metrics(
    rows: Iterable[Mapping[str, Any]], field: str = "metrics"
) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows with each entry of their ``field`` dict as a ``metric:<key>`` column.

    Returns the rows and the new column names, sorted.
    """
    out: list[dict[str, Any]] = []
    keys: set[str] = set()
    for row in rows:
        metrics = row.get(field) or {}
        keys.update(metrics)
        out.append({**row, **{f"metric:{k}": v for k, v in metrics.items()}})
    return out, [f"metric:{k}" for k in sorted(keys)]


def training_warnings(warnings: Sequence[str], where: str) -> None:
    """What training warned about (rows left out, a rare class...), as one yellow box."""
    if not warnings:
        return
    st.warning(f"Training warned about {len(warnings)} thing(s) {where}:\n\n"
               + "\n".join(f"- {' '.join(str(w).split())}" for w in warnings))


def _action_scale() -> alt.Scale:
    return alt.Scale(domain=ALIAS_ACTIONS, range=["#1f77b4", "#d62728", "#2ca02c", "#7f7f7f"])


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
