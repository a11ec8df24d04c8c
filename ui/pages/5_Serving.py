"""Serving: each model's aliases and canary/shadow routing, and its live traffic.

The routing of the champion's traffic (a canary version taking a share of it,
a shadow version scoring every request without answering) is edited by
approvers and admins only, as the API requires; everyone else reads it. A
change is sent only after the page has shown it as a before/after table and
the user has ticked the confirmation. The live section (requests/s and
latency p50/p99 per version) refreshes itself every few seconds.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import console_canary
import console_lib as lib
import console_views as views
import pandas as pd
import streamlit as st

from appliance.client import ApplianceClient

CHAMPION = "champion"
REFRESH_SECONDS = 5
WINDOWS = {  # label: (minutes, bucket_seconds)
    "last 15 minutes": (15, 15),
    "last hour": (60, 60),
    "last 6 hours": (360, 300),
    "last 24 hours": (1440, 900),
}
VERSION_COLUMNS = ["version", "role", "requests", "requests_per_second", "p50_ms", "p95_ms",
                   "p99_ms", "max_ms"]
ROUTING_COLUMNS = ["setting", "current", "new"]
EMPTY_HINT = ("No models yet: train one (`appliance train jobs/churn.yaml`) or register an "
              "ONNX file; the Models page shows how.")


def keys(name: str) -> dict[str, str]:
    """Widget keys of the routing editor of model ``name``."""
    return {k: f"routing_{k}_{name}" for k in ("canary_on", "canary_version", "canary_percent",
                                               "canary_key", "shadow_on", "shadow_version",
                                               "confirm")}


def series_label(version: int, shadow: bool) -> str:
    return f"v{version} (shadow)" if shadow else f"v{version}"


# -- routing ----------------------------------------------------------------------------


def normalised(routing: dict[str, Any] | None) -> dict[str, Any]:
    """``{"canary": {"version", "percent", "key"}|None, "shadow": {"version"}|None}``."""
    routing = routing or {}
    canary, shadow = routing.get("canary"), routing.get("shadow")
    return {
        "canary": None if not canary else {"version": int(canary["version"]),
                                           "percent": float(canary.get("percent") or 0.0),
                                           "key": canary.get("key") or None},
        "shadow": None if not shadow else {"version": int(shadow["version"])},
    }


def settings(config: dict[str, Any]) -> dict[str, str]:
    """A routing config as readable settings, one per row of the change table."""
    canary, shadow = config.get("canary"), config.get("shadow")
    return {
        "canary version": f"v{canary['version']}" if canary else "none",
        "canary share": f"{canary['percent']:g}%" if canary else "none",
        "sticky key": (canary.get("key") or "none (random)") if canary else "none",
        "shadow version": f"v{shadow['version']}" if shadow else "none",
    }


def describe(config: dict[str, Any], champion: int | None) -> str:
    canary, shadow = config.get("canary"), config.get("shadow")
    primary = f"v{champion}" if champion is not None else "no version (no champion)"
    if canary and canary["percent"] > 0:
        share = 100 - canary["percent"]
        text = (f"Champion traffic: {share:g}% to {primary}, {canary['percent']:g}% to canary "
                f"v{canary['version']}")
        if canary.get("key"):
            text += f" (sticky on `{canary['key']}`)"
    else:
        text = f"Champion traffic: all to {primary}"
    if shadow:
        text += f"; shadow v{shadow['version']} scores every request, never answers"
    return text + "."


def show_routing(name: str, aliases: dict[str, int], routing: dict[str, Any]) -> dict[str, Any]:
    st.subheader("Aliases and routing")
    if aliases:
        st.markdown(" · ".join(f"`{a}` → **v{v}**" for a, v in sorted(aliases.items())))
    else:
        st.info(f"{name} has no aliases yet: promote a version to `champion` on the Models page "
                "before it serves traffic.")
    current = normalised(routing.get("routing"))
    st.markdown(describe(current, aliases.get(CHAMPION)))
    served = routing.get("served") or {}
    if served:
        st.caption("Requests logged per role, all time: "
                   + ", ".join(f"{role} {n}" for role, n in sorted(served.items())))
    return current


def proposed(name: str) -> dict[str, Any]:
    k, state = keys(name), st.session_state
    key = str(state.get(k["canary_key"]) or "").strip() or None
    return {
        "canary": {"version": int(state[k["canary_version"]]),
                   "percent": float(state[k["canary_percent"]]), "key": key}
        if state.get(k["canary_on"]) and state.get(k["canary_version"]) is not None else None,
        "shadow": {"version": int(state[k["shadow_version"]])}
        if state.get(k["shadow_on"]) and state.get(k["shadow_version"]) is not None else None,
    }


def change_table(before: dict[str, Any], after: dict[str, Any]) -> pd.DataFrame:
    old, new = settings(before), settings(after)
    rows = [{"setting": s, "current": old[s], "new": new[s]} for s in old]
    return pd.DataFrame.from_records(rows, columns=ROUTING_COLUMNS)


def edit_routing(client: ApplianceClient, name: str, versions: list[int],
                 current: dict[str, Any]) -> None:
    st.markdown("**Change the routing** of the champion's traffic")
    k = keys(name)
    canary, shadow = current["canary"], current["shadow"]
    left, right = st.columns(2)
    with left:
        off = not st.checkbox("Canary: send a share of the traffic to another version",
                              value=canary is not None, key=k["canary_on"])
        st.selectbox("Canary version", versions, key=k["canary_version"],
                     index=versions.index(canary["version"])
                     if canary and canary["version"] in versions else 0,
                     format_func=lambda n: f"v{n}", disabled=off)
        st.number_input("Canary share (%)", min_value=0.0, max_value=100.0, step=1.0,
                        value=canary["percent"] if canary else 10.0, key=k["canary_percent"],
                        disabled=off)
        st.text_input("Sticky key (a column; empty: random split)",
                      value=(canary or {}).get("key") or "", key=k["canary_key"], disabled=off)
    with right:
        off = not st.checkbox("Shadow: score every request with another version too",
                              value=shadow is not None, key=k["shadow_on"])
        st.selectbox("Shadow version", versions, key=k["shadow_version"],
                     index=versions.index(shadow["version"])
                     if shadow and shadow["version"] in versions else 0,
                     format_func=lambda n: f"v{n}", disabled=off)
    after = proposed(name)
    if after == current:
        st.caption("No change to send: edit a setting above.")
        return
    st.markdown("**Review the change**")
    df = change_table(current, after)
    changed = df["current"] != df["new"]
    st.dataframe(df.style.apply(lambda row: ["font-weight: bold; background-color: #fff3cd"
                                             if changed[row.name] else ""] * len(row), axis=1),
                 hide_index=True, width="stretch")
    st.checkbox(f"I confirm this routing change for {name}", key=k["confirm"])

    def apply() -> None:
        if not st.session_state.get(k["confirm"]):
            lib.notify("warning", "Tick the confirmation first: nothing was sent.")
            return
        body = proposed(name)
        lib.attempt(lambda: client.put(f"/models/{name}/routing", json=body),
                    lambda out: f"Routing of {name} changed: " + ", ".join(
                        f"{setting} {value}" for setting, value
                        in settings(normalised(out.get("routing"))).items()) + ".")
        st.session_state[k["confirm"]] = False

    st.button("Apply routing", key="apply_routing", type="primary", on_click=apply,
              disabled=not st.session_state.get(k["confirm"]))


# -- live traffic -----------------------------------------------------------------------------


def latency_frame(series: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{"bucket": r["bucket"], "version": series_label(r["version"], r["shadow"]),
             "percentile": p, "ms": r[f"{p}_ms"], "requests": r["requests"]}
            for r in series for p in ("p50", "p99")]
    df = pd.DataFrame.from_records(rows, columns=["bucket", "version", "percentile", "ms",
                                                  "requests"])
    df["bucket"] = pd.to_datetime(df["bucket"], utc=True, format="ISO8601")
    return df


def latency_chart(series: list[dict[str, Any]]) -> None:
    df = latency_frame(series)
    chart = (
        alt.Chart(df)
        .mark_line(point=True)
        .encode(
            x=alt.X("bucket:T", title="time (UTC)", axis=alt.Axis(format="%H:%M")),
            y=alt.Y("ms:Q", title="latency (ms)"),
            color=alt.Color("version:N", title="version"),
            strokeDash=alt.StrokeDash("percentile:N", title="percentile"),
            shape=alt.Shape("percentile:N", title="percentile"),
            tooltip=[alt.Tooltip("bucket:T", format="%Y-%m-%d %H:%M:%S UTC"), "version",
                     "percentile", alt.Tooltip("ms:Q", format=".2f"), "requests"],
        )
        .properties(title="Latency p50 / p99 per version", height=260)
    )
    st.altair_chart(chart, width="stretch")


def rate_chart(totals: list[dict[str, Any]]) -> None:
    df = pd.DataFrame.from_records(
        [{"bucket": t["bucket"], "requests_per_second": t["requests_per_second"] or 0.0,
          "requests": t["requests"]} for t in totals],
        columns=["bucket", "requests_per_second", "requests"])
    df["bucket"] = pd.to_datetime(df["bucket"], utc=True, format="ISO8601")
    chart = (
        alt.Chart(df)
        .mark_area(line=True, opacity=0.3)
        .encode(
            x=alt.X("bucket:T", title="time (UTC)", axis=alt.Axis(format="%H:%M")),
            y=alt.Y("requests_per_second:Q", title="requests/s"),
            tooltip=[alt.Tooltip("bucket:T", format="%Y-%m-%d %H:%M:%S UTC"),
                     alt.Tooltip("requests_per_second:Q", format=".3f"), "requests"],
        )
        .properties(title="Requests per second (served, shadow excluded)", height=200)
    )
    st.altair_chart(chart, width="stretch")


def classes_chart(series: list[dict[str, Any]]) -> None:
    counts: dict[tuple[str, str], int] = {}
    for r in series:
        for cls, n in (r.get("classes") or {}).items():
            label = series_label(r["version"], r["shadow"])
            counts[(label, cls)] = counts.get((label, cls), 0) + n
    if not counts:
        return
    df = pd.DataFrame.from_records([{"version": v, "class": c, "predictions": n}
                                    for (v, c), n in sorted(counts.items())],
                                   columns=["version", "class", "predictions"])
    chart = (
        alt.Chart(df)
        .mark_bar()
        .encode(
            y=alt.Y("version:N", title=None),
            x=alt.X("predictions:Q", stack="normalize", title="share of predictions"),
            color=alt.Color("class:N", title="predicted class"),
            tooltip=["version", "class", "predictions"],
        )
        .properties(title="Predicted classes", height=alt.Step(28))
    )
    st.altair_chart(chart, width="stretch")


def live_traffic(client: ApplianceClient, name: str, minutes: int, bucket_seconds: int) -> None:
    data = lib.fetch(lambda: client.traffic(name, minutes=minutes, bucket_seconds=bucket_seconds))
    if data is None:
        return
    totals, series = data.get("totals") or [], data.get("series") or []
    last = next((t for t in reversed(totals[:-1]) if t.get("requests_per_second") is not None),
                None)  # the last complete bucket
    requests, rate, recent = st.columns(3)
    requests.metric("Requests", data["requests"])
    rate.metric("Requests/s (window)", f"{data['requests_per_second'] or 0:.3f}")
    recent.metric(f"Requests/s (last complete {bucket_seconds} s)",
                  f"{(last or {}).get('requests_per_second') or 0:.3f}")
    st.caption(f"{data['since'][:19].replace('T', ' ')} to "
               f"{data['until'][:19].replace('T', ' ')} UTC, buckets of "
               f"{bucket_seconds} s · refreshed every {REFRESH_SECONDS} s while live")
    if not series:
        st.info(f"{name} logged no requests in this window.")
        return
    latency_chart(series)
    rate_chart(totals)
    rows = [{**v, "role": "shadow" if v["shadow"] else ("canary" if v.get("canary") else
                                                           "primary")}
            for v in data.get("versions") or []]
    views.table(views.frame(rows, VERSION_COLUMNS))
    classes_chart(series)


def show_live(client: ApplianceClient, name: str) -> None:
    st.subheader("Live traffic")
    window_column, live_column = st.columns([2, 1])
    label = window_column.selectbox("Window", list(WINDOWS), index=1, key="serving_window")
    live = live_column.toggle(f"Refresh every {REFRESH_SECONDS} s", value=True,
                              key="serving_live")
    minutes, bucket_seconds = WINDOWS[label]
    refreshing = st.fragment(live_traffic, run_every=REFRESH_SECONDS if live else None)
    refreshing(client, name, minutes, bucket_seconds)


# -- page -----------------------------------------------------------------------------------------


def main() -> None:
    client = lib.open_page("Serving")
    models = lib.fetch(lambda: client.get("/models"))
    if models is None:
        return
    if not models:
        st.info(EMPTY_HINT)
        return
    name: str = st.selectbox("Model", [m["name"] for m in models], key="serving_model")
    model = lib.fetch(lambda: client.get(f"/models/{name}"))
    routing = lib.fetch(lambda: client.get(f"/models/{name}/routing"))
    if model is None or routing is None:
        return
    aliases: dict[str, int] = model.get("aliases") or {}
    versions = [int(v["number"]) for v in model.get("versions") or []]
    current = show_routing(name, aliases, routing)
    console_canary.show_canary(client, name, routing)
    if not lib.has_role("approver"):
        role = (lib.current_user() or {}).get("role")
        st.caption(f"Changing the routing needs the approver or admin role; you are signed in "
                   f"as {role}.")
    elif versions:
        edit_routing(client, name, versions, current)
    show_live(client, name)


main()
