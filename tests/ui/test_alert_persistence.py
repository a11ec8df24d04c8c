"""An alert stays in front of people until someone acknowledges it, even when its condition
cleared first (the demo's next accepted batch used to clear a rejection before anyone saw it)."""

from __future__ import annotations

from typing import Any

from streamlit.testing.v1 import AppTest

from appliance.client import ApplianceClient

from .console_testing import MONITORING_PAGE, assert_clean, log_in, open_page, tables, texts

DATASET = "ui_alerted"
GOOD = b"id,size\n1,3\n2,5\n3,8\n"
BAD = b"id\n4\n"               # the column `size` is missing: rejected, an alert fires
GOOD_AGAIN = b"id,size\n2,4\n3,6\n"  # accepted (inside the inferred ranges): the breach clears


def rejection(admin_api: ApplianceClient) -> dict[str, Any]:
    found = [a for a in admin_api.get("/alerts") if a["kind"] == "validation_rejected"
             and a["key"] == DATASET]
    assert len(found) == 1, found
    return dict(found[0])


def test_monitoring_page_keeps_a_cleared_alert_until_it_is_acknowledged(
        live_server: Any, admin_api: ApplianceClient, console: AppTest) -> None:
    outcomes = [live_server.drop(DATASET, name, content)["outcome"]
                for name, content in (("a.csv", GOOD), ("b.csv", BAD), ("c.csv", GOOD_AGAIN))]
    assert outcomes == ["accepted", "rejected", "accepted"]
    alert = rejection(admin_api)
    assert alert["status"] == "resolved" and alert["acknowledged_by"] is None

    at = open_page(log_in(console, "admin", live_server.admin_password), MONITORING_PAGE)
    assert_clean(at)
    listed = [i for df in tables(at, "kind", "key", "status") for i in df["id"]]
    assert alert["id"] in listed  # the default view: alerts nobody acknowledged yet
    at.selectbox(key="ack_alert").select(alert["id"])
    at.text_input(key="ack_note").input("the export job was fixed")
    at.button(key="ack").click().run()

    assert_clean(at)
    assert f"Acknowledged the validation_rejected alert on {DATASET}." in texts(at.success)
    after = rejection(admin_api)
    assert after["status"] == "resolved" and after["acknowledged_by"] == "admin"
    listed = [i for df in tables(at, "kind", "key", "status") for i in df["id"]]
    assert alert["id"] not in listed
