"""Console home: health, counts and the latest ingests."""

from __future__ import annotations

from typing import Any

import console_lib as lib
import console_views as views
import streamlit as st

from appliance.client import ApplianceClient

COUNTS = [
    ("datasets", "Datasets"),
    ("versions", "Versions"),
    ("accepted", "Accepted"),
    ("rejected", "Rejected"),
    ("quarantined", "Quarantined"),
    ("users", "Users"),
]


def show_health(client: ApplianceClient) -> None:
    health = lib.fetch(client.health)
    if health is None:
        return
    st.caption(f"API {lib.api_url()} · status **{health.get('status')}** · "
               f"version {health.get('version')}")
    if health.get("status") == "degraded":
        reason = health.get("degraded_reason") or "no reason given"
        st.error(f"The appliance is running degraded: {reason}")


def show_counts(counts: dict[str, Any]) -> None:
    for column, (key, label) in zip(st.columns(len(COUNTS)), COUNTS, strict=True):
        column.metric(label, counts.get(key, 0))


def show_recent_ingests(ingests: list[dict[str, Any]]) -> None:
    st.subheader("Recent ingests")
    if not ingests:
        st.info(
            "No files ingested yet. Drop a CSV, Parquet or JSON-lines file into "
            "`data/inbox/<dataset>/` (under `$APPLIANCE_HOME`), for example "
            "`data/inbox/customers/2024-06.csv`, and it appears here within seconds."
        )
        return
    table_column, chart_column = st.columns([3, 1])
    with table_column:
        views.ingest_table(ingests)
    with chart_column:
        st.caption(f"Outcomes of the last {len(ingests)} ingests")
        views.outcome_chart(ingests)


def main() -> None:
    client = lib.open_page("Appliance")
    show_health(client)
    summary = lib.fetch(client.summary)
    if summary is None:
        return
    show_counts(summary.get("counts", {}))
    show_recent_ingests(summary.get("recent_ingests", []))


main()
