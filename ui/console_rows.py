"""The Datasets page's "Rows" tab: a few rows of a version, the first ones or a seeded sample.

The server reads them a batch at a time (docs/operations/memory.md), so this works the
same for a version of any size.
"""

from __future__ import annotations

import console_lib as lib
import console_views as views
import streamlit as st

from appliance.client import ApplianceClient


def show_rows(client: ApplianceClient, name: str, number: int) -> None:
    left, middle, right = st.columns([2, 1, 1])
    how = left.radio("Rows", ["first rows", "seeded sample"], horizontal=True,
                     key=f"rows_how_{name}_{number}")
    limit = int(middle.number_input("How many", min_value=1, max_value=1000, value=20,
                                    key=f"rows_limit_{name}_{number}"))
    sample = how == "seeded sample"
    seed = int(right.number_input("Seed", min_value=0, value=0, disabled=not sample,
                                  key=f"rows_seed_{name}_{number}"))
    got = lib.fetch(lambda: client.version_rows(name, number, limit=limit, sample=sample,
                                                seed=seed), what="the rows")
    if got is None:
        return
    shown = len(got.get("rows") or [])
    if sample:
        st.caption(f"{shown} of {got.get('total_rows')} rows, sampled over the whole version "
                   f"with seed {got.get('seed')} (the same seed shows the same rows)")
    else:
        st.caption(f"the first {shown} of {got.get('total_rows')} rows")
    views.table(views.frame(got.get("rows") or [], got.get("columns") or []))
