"""Monitoring: the share of a model's live inputs its outlier detectors flagged, over time,
with the most outlying rows (``GET /api/v1/models/{name}/outliers``)."""

from __future__ import annotations

from typing import Any

import altair as alt
import console_lib as lib
import console_views as views
import pandas as pd
import streamlit as st

from appliance.client import ApplianceClient

WINDOWS = {  # label: (window_hours, bucket_hours)
    "last 24 hours, by hour": (24, 1),
    "last 7 days, by 6 hours": (168, 6),
    "last 30 days, by day": (720, 24),
}
VERSION_COLUMNS = ["version", "rows", "checked", "outliers", "share", "contamination"]


def share_frame(series: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(
        [{"bucket": b["bucket"], "version": f"v{b['version']}", "share": b.get("share"),
          "checked": b["checked"], "outliers": b["outliers"]} for b in series],
        columns=["bucket", "version", "share", "checked", "outliers"])
    df["bucket"] = pd.to_datetime(df["bucket"], utc=True, format="ISO8601")
    return df


def share_chart(series: list[dict[str, Any]], expected: float | None) -> None:
    df = share_frame(series).dropna(subset=["share"])
    lines = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("bucket:T", title="prediction time (UTC)",
                    axis=alt.Axis(format="%d %b %H:%M", labelOverlap=True)),
            y=alt.Y("share:Q", title="outlier share", axis=alt.Axis(format=".1%")),
            color=alt.Color("version:N", title="version"),
            tooltip=[alt.Tooltip("bucket:T", format="%Y-%m-%d %H:%M UTC"), "version",
                     alt.Tooltip("share:Q", format=".2%"), "outliers", "checked"],
        )
    )
    chart: Any = lines
    if expected is not None:   # what the detector flags on data like its training data
        chart = lines + alt.Chart(pd.DataFrame({"share": [expected]})).mark_rule(
            color="#888", strokeDash=[6, 4]).encode(y="share:Q")
    st.altair_chart(chart.properties(
        title="share of inputs flagged as outliers (dashed: the detector's contamination)",
        height=220), width="stretch")


def examples_frame(examples: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{"score": e.get("score"), "version": e["version"], "at": e["at"],
             "request_id": e["request_id"], **e.get("inputs", {})} for e in examples]
    return pd.DataFrame.from_records(rows)


def show_outliers(client: ApplianceClient, name: str) -> None:
    st.subheader("Outliers among live inputs")
    label = st.selectbox("Window", list(WINDOWS), key="outliers_window")
    hours, bucket_hours = WINDOWS[label]
    report = lib.fetch(lambda: client.get(f"/models/{name}/outliers", window_hours=hours,
                                          bucket_hours=bucket_hours, examples=20),
                       what="the outliers")
    if report is None:
        return
    if not report.get("checked"):
        st.info(f"No input of {name} was checked for outliers in this window: a version gets an "
                "outlier detector when it is trained (job-file `outliers:`, on by default); "
                "older and uploaded versions have none.")
        return
    expected = next((v["contamination"] for v in report.get("versions") or []
                     if v.get("contamination") is not None), None)
    left, mid, right = st.columns(3)
    left.metric("inputs checked", f"{report['checked']:,}")
    mid.metric("outliers", f"{report['outliers']:,}")
    right.metric("share", f"{report['share']:.2%}",
                 delta=None if expected is None else f"{report['share'] - expected:+.2%} "
                                                     "vs contamination",
                 delta_color="inverse")
    share_chart(report.get("series") or [], expected)
    views.table(views.frame(report.get("versions") or [], VERSION_COLUMNS))
    examples = report.get("examples") or []
    if examples:
        st.markdown("**Most outlying inputs** (lowest score first; cells cut to 200 "
                    "characters)")
        st.dataframe(examples_frame(examples), hide_index=True, width="stretch")
