"""The Serving page's canary verdict: canary better / worse / not yet conclusive, and why.

One call from the page, ``show_canary(client, name, routing)``: when the model
routes a share of its champion's traffic to a canary, this section asks
``GET /api/v1/models/{name}/canary`` and shows the verdict, the always-valid
p-value, n and the metric per arm, and the confidence sequence for the
difference as it narrowed with each labelled request (a chart: the band is
the running interval, the line the estimate, the dashed rule no difference).
"""

from __future__ import annotations

from typing import Any

import altair as alt
import console_lib as lib
import pandas as pd
import streamlit as st

from appliance.client import ApplianceClient

VERDICT_TEXT = {
    "canary_better": ("success", "Canary better"),
    "canary_worse": ("warning", "Canary worse"),  # a finding, not an error of the page
    "not_yet_conclusive": ("info", "Not yet conclusive"),
}
ARM_COLUMNS = ["arm", "version", "labelled requests", "metric"]


def arms_frame(verdict: dict[str, Any]) -> pd.DataFrame:
    rows = [{"arm": a["role"], "version": f"v{a['version']}", "labelled requests": a["n"],
             "metric": a["metric"]} for a in (verdict["primary"], verdict["canary"])]
    df = pd.DataFrame.from_records(rows, columns=ARM_COLUMNS)
    return df.rename(columns={"metric": verdict["metric"]})


def history_frame(history: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame.from_records(history, columns=["n", "n_primary", "n_canary", "difference",
                                                     "lower", "upper", "p_value"])
    return df.dropna(subset=["lower", "upper"])


def sequence_chart(verdict: dict[str, Any]) -> None:
    df = history_frame(verdict.get("history") or [])
    if df.empty:
        return
    tested = verdict["tested"].replace("_", " ")
    base = alt.Chart(df).encode(x=alt.X("n:Q", title="labelled requests (both arms)"))
    band = base.mark_area(opacity=0.25).encode(
        y=alt.Y("lower:Q", title=f"canary - champion ({tested})"), y2="upper:Q",
        tooltip=["n", "n_primary", "n_canary", alt.Tooltip("lower:Q", format=".4f"),
                 alt.Tooltip("upper:Q", format=".4f"), alt.Tooltip("p_value:Q", format=".3g")])
    line = base.mark_line().encode(y="difference:Q")
    zero = alt.Chart(pd.DataFrame({"y": [0.0]})).mark_rule(strokeDash=[4, 4]).encode(y="y:Q")
    st.altair_chart((band + line + zero).properties(
        title="Confidence sequence for the difference", height=220), width="stretch")


def show_verdict(verdict: dict[str, Any]) -> None:
    kind, label = VERDICT_TEXT.get(verdict["verdict"], ("info", verdict["verdict"]))
    getattr(st, kind)(f"**{label}**: {verdict['reason']}")
    p_value, n_primary, n_canary = st.columns(3)
    p_value.metric("Always-valid p-value", f"{verdict['p_value']:.3g}",
                   help=f"The verdict is reached when it falls to alpha = {verdict['alpha']:g}")
    n_primary.metric(f"Champion v{verdict['primary_version']}: labelled", verdict["primary"]["n"])
    n_canary.metric(f"Canary v{verdict['canary_version']}: labelled", verdict["canary"]["n"])
    st.dataframe(arms_frame(verdict), hide_index=True, width="stretch")
    if verdict.get("lower") is not None:
        st.caption(f"Difference ({verdict['tested'].replace('_', ' ')}, canary - champion): "
                   f"{verdict['difference']:.4g}, confidence sequence "
                   f"[{verdict['lower']:.4g}, {verdict['upper']:.4g}]; at least "
                   f"{verdict['min_samples']} labelled requests per arm before any verdict. "
                   f"Since {verdict['since'][:19].replace('T', ' ')} UTC.")
    sequence_chart(verdict)
    rule = verdict.get("rule_auto")
    if rule is not None:
        st.caption("The job file's canary rule " + (
            "promotes a better canary or takes a worse one out of the routing on its next "
            "check (approver rules apply)." if rule else
            "reports the verdict only (auto: false): an approver acts on it."))


def show_canary(client: ApplianceClient, name: str, routing: dict[str, Any]) -> None:
    """The canary verdict section, when the model has a canary."""
    canary = (routing.get("routing") or {}).get("canary")
    if not canary or not canary.get("percent"):
        return
    st.subheader("Canary verdict")
    verdict = lib.fetch(lambda: client.canary(name), what="the canary verdict")
    if verdict is not None:
        show_verdict(verdict)
