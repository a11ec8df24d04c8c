"""The Monitoring page's drift depth: the multivariate score and the distance tests.

Drawn from the stored reports as the API returns them (``GET /monitor/{model}/drift``):
the latest report's classifier-based score for the whole input (AUC, p-value, verdict)
with its history across reports, and the per-feature distances (Wasserstein normed,
Jensen-Shannon, PSI, a text column's AUC) against their thresholds. The per-feature
table itself (test, why, statistic, p-value or distance, verdict) is the page's.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

DRIFT_COLOUR = "#d62728"
OK_COLOUR = "#2ca02c"


def multivariate_frame(reports: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{"at": r["created_at"], "auc": m["auc"], "p_value": m.get("p_value"),
             "drift": bool(m.get("drift")), "current": r.get("current")}
            for r in reports if (m := r.get("multivariate")) and m.get("auc") is not None]
    df = pd.DataFrame.from_records(rows, columns=["at", "auc", "p_value", "drift", "current"])
    df["at"] = pd.to_datetime(df["at"], utc=True, format="ISO8601")
    return df


def distance_frame(report: dict[str, Any]) -> pd.DataFrame:
    rows = [{"feature": f["column"], "test": f["test"], "distance": float(f["distance"]),
             "threshold": f.get("threshold"), "drift": bool(f.get("drift"))}
            for f in report.get("features") or [] if f.get("distance") is not None]
    return pd.DataFrame.from_records(rows, columns=["feature", "test", "distance", "threshold",
                                                    "drift"])


def show_multivariate(reports: list[dict[str, Any]]) -> None:
    """The latest multivariate score, its history, and the latest distances per feature."""
    latest = reports[0]
    multi = latest.get("multivariate")
    st.markdown("**Whole input (multivariate)**")
    if not multi:
        st.caption("The latest report has no multivariate score (an older report, or the "
                   "detector was turned off for this check).")
    elif multi.get("auc") is None:
        st.caption(f"No multivariate score: {multi.get('note') or 'not enough data'}.")
    else:
        cols = st.columns(3)
        cols[0].metric("domain classifier AUC", f"{multi['auc']:.3f}",
                       help="0.5: live inputs cannot be told from the training data")
        cols[1].metric("p-value", f"{multi['p_value']:.3g}",
                       help=f"drift when below {multi['threshold']:.3g}")
        cols[2].metric("verdict", "drift" if multi["drift"] else "no drift")
        st.caption(f"{multi['method']}; {multi['rows_reference']} reference and "
                   f"{multi['rows_current']} current rows over {len(multi['columns'])} columns.")
    history = multivariate_frame(reports)
    if len(history) > 1:
        chart = alt.Chart(history).mark_line(point=True).encode(
            x=alt.X("at:T", title="report time (UTC)"),
            y=alt.Y("auc:Q", title="AUC", scale=alt.Scale(domain=[0.4, 1.0])),
            color=alt.Color("drift:N", scale=alt.Scale(domain=[False, True],
                                                       range=[OK_COLOUR, DRIFT_COLOUR])),
            tooltip=[alt.Tooltip("at:T", format="%Y-%m-%d %H:%M:%S UTC"),
                     alt.Tooltip("auc:Q", format=".3f"), alt.Tooltip("p_value:Q", format=".3g"),
                     "drift", "current"])
        rule = alt.Chart(pd.DataFrame({"chance": [0.5]})).mark_rule(
            strokeDash=[6, 4], color="#7f7f7f").encode(y="chance:Q")
        st.altair_chart((chart + rule).properties(
            title="multivariate drift (domain classifier AUC) across reports; dashed: chance",
            height=220), width="stretch")
    distances = distance_frame(latest)
    if not distances.empty:
        bars = alt.Chart(distances).mark_bar().encode(
            x=alt.X("distance:Q", title="distance"), y=alt.Y("feature:N", sort="-x", title=None),
            color=alt.Color("drift:N", scale=alt.Scale(domain=[False, True],
                                                       range=[OK_COLOUR, DRIFT_COLOUR])),
            tooltip=["feature", "test", alt.Tooltip("distance:Q", format=".4g"),
                     alt.Tooltip("threshold:Q", format=".3g"), "drift"])
        ticks = alt.Chart(distances).mark_tick(color="black", thickness=2, size=18).encode(
            x="threshold:Q", y=alt.Y("feature:N", sort="-x"))
        st.altair_chart((bars + ticks).properties(
            title="distance per feature in the latest report (tick: its threshold)",
            height=max(120, 28 * len(distances))), width="stretch")
