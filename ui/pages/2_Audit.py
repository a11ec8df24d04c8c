"""Audit: the hash-chained log of every mutation, and a chain check for admins."""

from __future__ import annotations

import console_erasure
import console_lib as lib
import console_views as views
import streamlit as st

from appliance.client import ApplianceClient

AUDIT_COLUMNS = ["seq", "at", "actor", "action", "target", "before", "after", "hash", "prev_hash"]
PAGE_SIZES = [50, 100, 500]


def show_events(client: ApplianceClient) -> None:
    size_column, page_column = st.columns(2)
    limit = size_column.selectbox("Events per page", PAGE_SIZES, key="audit_limit")
    page = page_column.number_input("Page", min_value=1, value=1, step=1, key="audit_page")
    role = (lib.current_user() or {}).get("role")
    events = lib.fetch(
        lambda: client.audit(limit=limit, offset=(int(page) - 1) * limit),
        forbidden=f"Your role ({role}) cannot see the audit log: it needs approver or admin.",
    )
    if events is None:
        return
    if not events:
        st.info("No audit events on this page.")
        return
    st.caption(f"{len(events)} events, newest first")
    views.table(views.frame(events, AUDIT_COLUMNS))


def show_verify(client: ApplianceClient) -> None:
    st.subheader("Chain check")
    if not lib.has_role("admin"):
        st.caption("Only an admin can verify the chain.")
        return
    if not st.button("Verify chain", key="verify_chain"):
        st.caption("Recomputes every event's hash and link to find edits or deletions.")
        return
    result = lib.fetch(client.audit_verify)
    if result is None:
        return
    if result.get("ok"):
        st.success(f"The audit chain is intact: {result.get('events')} events verified.")
        return
    problems = result.get("problems", [])
    st.error(f"The audit chain is broken: {len(problems)} problem(s) "
             f"in {result.get('events')} events.")
    views.table(views.frame(problems, ["seq", "problem"]))


def main() -> None:
    client = lib.open_page("Audit log")
    show_events(client)
    show_verify(client)
    console_erasure.show_erasures(client)


main()
