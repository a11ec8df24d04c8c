"""Explanations in the console: "why this prediction?" on the Monitoring page and global
importances on the Models page. Pure HTTP, like every page (DESIGN.md §2)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import altair as alt
import console_lib as lib
import pandas as pd
import streamlit as st

from appliance.client import ApplianceClient

RECENT = 50
POSITIVE, NEGATIVE = "#d62728", "#1f77b4"   # pushes the score up / down
SUMMARY_COLUMNS = ["request_id", "version", "created_at", "prediction"]


def contributions_frame(explanation: dict[str, Any]) -> pd.DataFrame:
    rows = [{"feature": c["feature"], "value": "" if c.get("value") is None else str(c["value"]),
             "contribution": float(c["contribution"]),
             "direction": "raises the score" if c["contribution"] >= 0 else "lowers the score"}
            for c in explanation.get("contributions") or []]
    return pd.DataFrame.from_records(rows, columns=["feature", "value", "contribution",
                                                    "direction"])


def contributions_chart(explanation: dict[str, Any]) -> None:
    df = contributions_frame(explanation)
    if df.empty:
        st.caption("The model takes no features to credit.")
        return
    order = list(df["feature"])  # largest absolute contribution first, as the API sorts
    chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            x=alt.X("contribution:Q", title=f"contribution ({explanation['output']})"),
            y=alt.Y("feature:N", sort=order, title=None),
            color=alt.Color("direction:N", title=None, scale=alt.Scale(
                domain=["raises the score", "lowers the score"], range=[POSITIVE, NEGATIVE])),
            tooltip=["feature", "value", alt.Tooltip("contribution:Q", format=".4g")],
        )
        .properties(title=f"Contributions to {explanation['model']} v{explanation['version']}'s "
                          f"score ({explanation['method']})", height=max(120, 24 * len(df)))
    )
    st.altair_chart(chart, width="stretch")


def summary(explanation: dict[str, Any]) -> str:
    e = explanation
    proba = e.get("probability")
    shown = f", probability of {e['explained_class']!r}: {proba:.3f}" if proba is not None else ""
    return (f"Predicted **{e['prediction']}**{shown}. The {e['output']} score "
            f"{e['score']:.4g} = base value {e['base_value']:.4g} (the expected score) plus "
            f"the contributions below; explained by {e['method'].replace('_', ' ')} in "
            f"{e['duration_ms']:.0f} ms.")


def why_this_prediction(client: ApplianceClient, model: str) -> None:
    """Pick a logged request of ``model`` (or paste an id): its contributions as bars."""
    st.subheader("Why this prediction?")
    recent = lib.fetch(lambda: client.get("/predictions", model=model, limit=RECENT),
                       what="the logged requests")
    if recent is None:
        return
    if not recent:
        st.info(f"{model} has answered no request yet: nothing to explain.")
        return
    by_id = {r["request_id"]: r for r in recent}
    picked = st.selectbox(
        "Logged request (newest first)", list(by_id), key="explain_request",
        format_func=lambda i: f"{i} · v{by_id[i]['version']} · {by_id[i]['prediction']} · "
                              f"{str(by_id[i]['created_at'])[:19]}")
    typed = str(st.text_input("or a request id", key="explain_request_id") or "").strip()
    request_id = typed or picked
    explanation = lib.fetch(
        lambda: client.get(f"/predictions/{quote(request_id, safe='')}/explanation"),
        what=f"the explanation of request {request_id}")
    if explanation is None:
        return
    st.markdown(summary(explanation))
    contributions_chart(explanation)


def importances_frame(importances: dict[str, Any]) -> pd.DataFrame:
    rows = []
    for f in importances.get("features") or []:
        if f.get("permutation") is not None:
            rows.append({"feature": f["feature"], "kind": "permutation (metric lost)",
                         "importance": f["permutation"], "std": f.get("permutation_std")})
        if f.get("native") is not None:
            rows.append({"feature": f["feature"],
                         "kind": f"native: {importances.get('native_kind')} (share)",
                         "importance": f["native"], "std": None})
    return pd.DataFrame.from_records(rows, columns=["feature", "kind", "importance", "std"])


def show_importances(card: dict[str, Any]) -> None:
    """The card's global importances as bars (permutation, then native), most important
    first."""
    importances = card.get("importances")
    if not importances:
        st.caption("No global importances: this version predates them or was uploaded as ONNX.")
        return
    df = importances_frame(importances)
    order = [f["feature"] for f in importances.get("features") or []]
    st.markdown(f"**Global importances** on {importances['rows']} holdout rows: permutation "
                f"importance is the {importances['metric']} lost when a column is shuffled "
                f"(through the ONNX model); native importance is the estimator's own, as a "
                f"share of 1.")
    for kind, part in df.groupby("kind", sort=False):
        chart = (
            alt.Chart(part)
            .mark_bar()
            .encode(
                x=alt.X("importance:Q", title=str(kind)),
                y=alt.Y("feature:N", sort=order, title=None),
                tooltip=["feature", alt.Tooltip("importance:Q", format=".4g"),
                         alt.Tooltip("std:Q", format=".3g")],
            )
            .properties(title=f"Global importance: {kind}", height=max(100, 22 * len(part)))
        )
        st.altair_chart(chart, width="stretch")
