"""The Audit page's erasures section: who erased which columns when, and what it removed.

Admins only (``GET /api/v1/erasures``); the values erased are kept nowhere, so none
are shown. Erasing itself is a CLI/API action (``appliance erase``), not a button.
"""

from __future__ import annotations

import console_lib as lib
import console_views as views
import streamlit as st

from appliance.client import ApplianceClient

ERASURE_COLUMNS = ["at", "id", "actor", "columns", "dataset", "versions", "rows_removed",
                   "predictions_removed", "labels_removed", "status"]


def show_erasures(client: ApplianceClient) -> None:
    st.subheader("Erasures")
    if not lib.has_role("admin"):
        st.caption("Only an admin can see erasures.")
        return
    erasures = lib.fetch(client.erasures, what="the erasures")
    if erasures is None:
        return
    if not erasures:
        st.caption("No erasure yet. `appliance erase --where COLUMN=VALUE` removes a data "
                   "subject from every dataset version, the prediction log and labels.")
        return
    rows = [{**e, "columns": ", ".join(e.get("columns") or [])} for e in erasures]
    st.caption(f"{len(rows)} erasure(s), newest first; the values erased are kept nowhere")
    views.table(views.frame(rows, ERASURE_COLUMNS))
