"""Monitoring: drift over time per feature, outliers among live inputs (``console_outliers``),
live metrics from delayed labels, and alerts.

Drift reports come from scheduled or manual checks (``POST /monitor/{model}/drift``);
the chart follows each feature's p-value across reports, the table shows the
latest report with its drifted features highlighted. Operators can run a
check now and acknowledge alerts with a note; the API enforces the roles, the
page merely does not offer what would be refused.
"""

from __future__ import annotations

import math
from typing import Any

import altair as alt
import console_drift
import console_explain
import console_lib as lib
import console_views as views
import pandas as pd
import streamlit as st
from console_outliers import show_outliers

from appliance.client import ApplianceClient

PREDICTIONS = "<predictions>"
P_FLOOR = 1e-16  # p-values below this are drawn at it (a log scale has no zero)
FEATURE_COLUMNS = ["column", "test", "reason", "statistic", "p_value", "distance", "threshold",
                   "drift"]
METRIC_WINDOWS = {  # label: (hours, bucket_hours)
    "last 24 hours, by hour": (24, 1),
    "last 7 days, by day": (168, 24),
    "last 30 days, by day": (720, 24),
}
METRIC_COLUMNS = ["version", "shadow", "metric", "predictions", "labelled", "label_coverage",
                  "accuracy", "rmse", "mean_label_delay_s"]
ALERT_COLUMNS = ["last_seen", "kind", "key", "status", "message", "count", "first_seen",
                 "acknowledged_by", "acknowledged_at", "note", "resolved_at", "id"]
NEEDS_ACK = "not acknowledged"  # open, or resolved before anyone acknowledged it
ALERT_STATUSES = [NEEDS_ACK, "open", "acknowledged", "resolved", "all"]
ALERT_COLOURS = {"open": "background-color: #f8d7da; color: #721c24",
                 "acknowledged": "background-color: #fff3cd; color: #856404",
                 "resolved": "background-color: #d4edda; color: #155724"}
DRIFT_STYLE = "background-color: #f8d7da; color: #721c24; font-weight: bold"


def series_label(version: int, shadow: bool) -> str:
    return f"v{version} (shadow)" if shadow else f"v{version}"


# -- drift --------------------------------------------------------------------------------


def run_drift_form(client: ApplianceClient, name: str) -> None:
    if not lib.has_role("operator"):
        role = (lib.current_user() or {}).get("role")
        st.caption(f"Running a drift check needs the operator role or above; you are signed in "
                   f"as {role}.")
        return
    window, button = st.columns([2, 1], vertical_alignment="bottom")
    window.number_input("Window of the prediction log (hours)", min_value=0.25,
                        max_value=24.0 * 365, value=24.0, step=1.0, key="drift_window")

    def run() -> None:
        hours = float(st.session_state.get("drift_window") or 24.0)
        lib.attempt(lambda: client.post(f"/monitor/{name}/drift", json={"window_hours": hours}),
                    lambda out: f"Drift check of {name} done: " + (
                        "drift in " + ", ".join(drifted(out)) if out.get("drift")
                        else "no drift") + ".")

    button.button("Run drift check now", key="run_drift", on_click=run)


def drifted(report: dict[str, Any]) -> list[str]:
    names = [f["column"] for f in report.get("features") or [] if f.get("drift")]
    if (report.get("prediction") or {}).get("drift"):
        names.append(PREDICTIONS)
    return names


def p_value_frame(reports: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for r in reports:
        tests = [*(r.get("features") or []), {**(r.get("prediction") or {}), "column": PREDICTIONS}]
        for f in tests:
            p = f.get("p_value")
            if p is None or not math.isfinite(float(p)):
                continue
            rows.append({"at": r["created_at"], "feature": f["column"], "p_value": float(p),
                         "shown": max(float(p), P_FLOOR), "drift": bool(f.get("drift")),
                         "threshold": f.get("threshold"), "current": r.get("current")})
    df = pd.DataFrame.from_records(rows, columns=["at", "feature", "p_value", "shown", "drift",
                                                  "threshold", "current"])
    df["at"] = pd.to_datetime(df["at"], utc=True, format="ISO8601")
    return df


def p_value_chart(reports: list[dict[str, Any]]) -> None:
    df = p_value_frame(reports)
    if df.empty:
        st.caption("No tested feature has a p-value yet.")
        return
    x = alt.X("at:T", title="report time (UTC)",
              axis=alt.Axis(format="%d %b %H:%M", labelAngle=-20, labelOverlap=True))
    y = alt.Y("shown:Q", title="p-value (log scale)", scale=alt.Scale(type="log"))
    lines = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=x, y=y, color=alt.Color("feature:N", title="feature"),
            shape=alt.Shape("drift:N", title="drift"),
            tooltip=[alt.Tooltip("at:T", format="%Y-%m-%d %H:%M:%S UTC"), "feature",
                     alt.Tooltip("p_value:Q", format=".3g"),
                     alt.Tooltip("threshold:Q", format=".3g"), "drift", "current"],
        )
    )
    latest = reports[0]
    threshold = next((f.get("threshold") for f in latest.get("features") or []
                      if f.get("threshold") and f.get("p_value") is not None), None)
    chart: Any = lines
    if threshold:
        rule = alt.Chart(pd.DataFrame({"threshold": [max(float(threshold), P_FLOOR)]})).mark_rule(
            color="#d62728", strokeDash=[6, 4]).encode(y="threshold:Q")
        chart = lines + rule
    st.altair_chart(chart.properties(title="p-value per feature across reports (dashed: the "
                                           "latest threshold)", height=280), width="stretch")


def latest_report(report: dict[str, Any]) -> None:
    names = drifted(report)
    summary = (f"Latest report, {report['created_at'][:19]} UTC by {report.get('created_by')}: "
               f"{report.get('current')} against {report.get('reference')} "
               f"({report.get('rows_current')} vs {report.get('rows_reference')} rows, "
               f"p < {report.get('p_val')}, {report.get('correction')} correction).")
    st.markdown(summary)
    if names:
        st.warning(f"Drift in {len(names)}: " + ", ".join(f"`{n}`" for n in names))
    else:
        st.success("No drift in the latest report.")
    prediction = report.get("prediction") or {}
    rows = [*(report.get("features") or []),
            {"column": PREDICTIONS, **{k: prediction.get(k) for k in FEATURE_COLUMNS[1:]}}]
    df = views.frame(rows, FEATURE_COLUMNS)
    df["drift"] = df["drift"].fillna(False).astype(bool)
    styled = df.style.apply(lambda row: [DRIFT_STYLE if row["drift"] else ""] * len(row), axis=1)
    styled = styled.format({"statistic": "{:.4g}", "p_value": "{:.3g}", "distance": "{:.4g}",
                            "threshold": "{:.3g}"},
                           na_rep="")
    st.dataframe(styled, hide_index=True, width="stretch")


def show_drift(client: ApplianceClient, name: str) -> None:
    st.subheader("Drift")
    run_drift_form(client, name)
    reports = lib.fetch(lambda: client.get(f"/monitor/{name}/drift", limit=100))
    if reports is None:
        return
    if not reports:
        st.info(f"No drift report for {name} yet: run a check (`appliance drift {name}`, or the "
                "button above) or schedule one in the model's job file.")
        return
    p_value_chart(reports)
    latest_report(reports[0])
    console_drift.show_multivariate(reports)


# -- live metrics from labels -------------------------------------------------------------------


def metric_frame(series: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{"bucket": r["bucket"], "version": series_label(r["version"], r["shadow"]),
             "metric": r["metric"], "value": r.get(r["metric"]),
             "label_coverage": r.get("label_coverage"), "predictions": r["predictions"],
             "labelled": r["labelled"]} for r in series]
    df = pd.DataFrame.from_records(rows, columns=["bucket", "version", "metric", "value",
                                                  "label_coverage", "predictions", "labelled"])
    df["bucket"] = pd.to_datetime(df["bucket"], utc=True, format="ISO8601")
    return df


def metric_chart(df: pd.DataFrame, field: str, title: str, axis: str, *, fmt: str) -> None:
    x = alt.X("bucket:T", title="prediction time (UTC)",
              axis=alt.Axis(format="%d %b %H:%M", labelOverlap=True))
    chart = (
        alt.Chart(df.dropna(subset=[field]))
        .mark_line(point=True)
        .encode(
            x=x, y=alt.Y(f"{field}:Q", title=axis, scale=alt.Scale(zero=False),
                         axis=alt.Axis(format=fmt)),
            color=alt.Color("version:N", title="version"),
            tooltip=[alt.Tooltip("bucket:T", format="%Y-%m-%d %H:%M UTC"), "version",
                     alt.Tooltip(f"{field}:Q", format=fmt), "predictions", "labelled"],
        )
        .properties(title=title, height=220)
    )
    st.altair_chart(chart, width="stretch")


def show_metrics(client: ApplianceClient, name: str) -> None:
    st.subheader("Live metrics from labels")
    label = st.selectbox("Window", list(METRIC_WINDOWS), index=1, key="metrics_window")
    hours, bucket_hours = METRIC_WINDOWS[label]
    data = lib.fetch(lambda: client.live_metrics(name, hours=hours, bucket_hours=bucket_hours))
    if data is None:
        return
    series = data.get("series") or []
    if not series:
        st.info(f"{name} made no predictions in this window. Labels arrive by "
                f"`POST /api/v1/models/{name}/feedback` or files in `inbox/{name}__labels/`.")
        return
    df = metric_frame(series)
    for metric in sorted(set(df["metric"])):
        part = df[df["metric"] == metric]
        if part["value"].notna().any():
            metric_chart(part, "value", f"{metric} per version", metric,
                         fmt=".1%" if metric == "accuracy" else ".4~g")
        else:
            st.caption(f"No labelled prediction yet: no {metric} to show.")
    metric_chart(df, "label_coverage", "label coverage per version", "labelled share",
                 fmt=".0%")
    views.table(views.frame(data.get("versions") or [], METRIC_COLUMNS))


# -- alerts --------------------------------------------------------------------------------------


def alert_label(alert: dict[str, Any]) -> str:
    return f"{alert['kind']} · {alert['key']} · {str(alert.get('message') or '')[:80]}"


def unacknowledged(alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Alerts nobody acknowledged yet, whether or not their condition has cleared."""
    return [a for a in alerts if a.get("status") in ("open", "resolved")
            and not a.get("acknowledged_by")]


def ack_form(client: ApplianceClient, open_alerts: list[dict[str, Any]]) -> None:
    if not lib.has_role("operator"):
        role = (lib.current_user() or {}).get("role")
        st.caption(f"Acknowledging alerts needs the operator role or above; you are signed in "
                   f"as {role}.")
        return
    if not open_alerts:
        st.caption("No alert waits for acknowledgement.")
        return
    by_id = {a["id"]: a for a in open_alerts}
    st.markdown("**Acknowledge** an alert (a resolved one stays resolved)")
    st.selectbox("Alert not acknowledged yet", list(by_id),
                 format_func=lambda i: alert_label(by_id[i]) + (
                     " · resolved" if by_id[i].get("status") == "resolved" else ""),
                 key="ack_alert")
    st.text_input("Note", key="ack_note", placeholder="what is being done about it (audited)")

    def acknowledge() -> None:
        alert_id = st.session_state.get("ack_alert")
        note = str(st.session_state.get("ack_note") or "").strip() or None
        lib.attempt(lambda: client.post(f"/alerts/{alert_id}/ack", json={"note": note}),
                    lambda out: f"Acknowledged the {out['kind']} alert on {out['key']}.")
        st.session_state["ack_note"] = ""

    st.button("Acknowledge", key="ack", on_click=acknowledge)


def show_alerts(client: ApplianceClient) -> None:
    st.subheader("Alerts")
    status = st.selectbox("Status", ALERT_STATUSES, key="alert_status")
    everything = status in ("all", NEEDS_ACK)
    alerts = lib.fetch(lambda: client.get("/alerts", status=None if everything else status),
                       what="the alerts")
    if alerts is None:
        return
    if status == NEEDS_ACK:
        alerts = unacknowledged(alerts)
    if not alerts:
        st.caption("No alert needs acknowledging." if status == NEEDS_ACK
                   else f"No {'' if status == 'all' else status + ' '}alerts.")
    else:
        df = views.frame(alerts, ALERT_COLUMNS)
        st.dataframe(df.style.map(lambda v: ALERT_COLOURS.get(str(v), ""), subset=["status"]),
                     hide_index=True, width="stretch")
    waiting = alerts if status == NEEDS_ACK else unacknowledged(
        lib.fetch(lambda: client.get("/alerts"), what="the alerts") or [])
    ack_form(client, waiting)


# -- page ----------------------------------------------------------------------------------------


def main() -> None:
    client = lib.open_page("Monitoring")
    models = lib.fetch(lambda: client.get("/models"))
    if models:
        name: str = st.selectbox("Model", [m["name"] for m in models], key="monitoring_model")
        show_drift(client, name)
        show_outliers(client, name)
        show_metrics(client, name)
        console_explain.why_this_prediction(client, name)
    elif models is not None:
        st.info("No models yet: drift and live metrics follow a model's champion once one "
                "serves.")
    show_alerts(client)


main()
