"""Console pages run in-process with Streamlit's AppTest against a live API.

Each test logs in through the real login form; the pages reach the API over
HTTP exactly as in production. Expected values come from the API itself.
"""

from __future__ import annotations

from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from appliance.client import ApplianceClient

from .console_testing import (
    AUDIT_PAGE,
    DATASETS_PAGE,
    assert_clean,
    has_key,
    log_in,
    new_console,
    open_page,
    table,
    tables,
    texts,
)

DATASET = "ui_people"
GOOD = b"id,age,city\n1,34,Oslo\n2,51,Bergen\n3,29,Oslo\n4,62,\n"  # one null city
BAD = b"id,city\n5,Oslo\n6,Bergen\n"  # column `age` is missing: the contract fails


@pytest.fixture(scope="module")
def people(live_server: Any) -> dict[str, Any]:
    """One dataset with an accepted v1, a rejected v2 and a quarantined duplicate."""
    ingests = {
        "good": live_server.drop(DATASET, "people-good.csv", GOOD),
        "bad": live_server.drop(DATASET, "people-bad.csv", BAD),
        "duplicate": live_server.drop(DATASET, "people-again.csv", GOOD),
    }
    outcomes = {k: v["outcome"] for k, v in ingests.items()}
    assert outcomes == {"good": "accepted", "bad": "rejected", "duplicate": "quarantined"}, ingests
    live_server.wait_for_summaries(DATASET)
    return ingests


# -- login and home ---------------------------------------------------------------


def test_login_admin_shows_home_counts(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, people: dict[str, Any]
):
    at = log_in(console, "admin", live_server.admin_password)

    assert_clean(at)
    assert texts(at.title) == ["Appliance"]
    assert "Signed in as **admin**" in texts(at.sidebar.markdown)[0]
    counts = admin_api.summary()["counts"]
    shown = {m.label: m.value for m in at.metric}
    assert shown == {
        label: str(counts[key])
        for key, label in [("datasets", "Datasets"), ("versions", "Versions"),
                           ("accepted", "Accepted"), ("rejected", "Rejected"),
                           ("quarantined", "Quarantined"), ("users", "Users")]
    }
    assert int(shown["Rejected"]) >= 1 and int(shown["Quarantined"]) >= 1
    recent = table(at, "file_name", "outcome")
    ours = recent[recent["dataset"] == DATASET].set_index("file_name")
    assert ours.loc["people-good.csv", "outcome"] == "accepted"
    assert ours.loc["people-bad.csv", "outcome"] == "rejected"
    assert ours.loc["people-again.csv", "outcome"] == "quarantined"


def test_login_wrong_password_shows_readable_error(console: AppTest):
    at = log_in(console, "admin", "definitely-not-the-password")

    assert not at.exception
    assert len(at.error) == 1
    assert at.error[0].value.startswith("Login failed:")
    assert "Traceback" not in at.error[0].value
    assert not at.metric  # still on the login form
    assert has_key(at.button, "login_submit")


def test_logout_returns_to_login_form(console: AppTest, live_server: Any):
    at = log_in(console, "admin", live_server.admin_password)
    at.button(key="logout").click().run()

    assert not at.exception
    assert not at.metric
    assert has_key(at.button, "login_submit")


def test_revoked_token_returns_to_login_with_a_notice(console: AppTest, live_server: Any):
    at = log_in(console, "admin", live_server.admin_password)
    at.session_state["appliance_client"].token = "not-a-token"
    at.run()

    assert not at.exception
    assert any("session has expired" in t for t in texts(at.warning))
    assert has_key(at.button, "login_submit")
    assert not at.metric


def test_empty_appliance_explains_the_inbox(server_factory: Any, monkeypatch: pytest.MonkeyPatch):
    empty = server_factory()
    monkeypatch.setenv("APPLIANCE_API_URL", empty.url)
    at = log_in(new_console(), "admin", empty.admin_password)

    assert_clean(at)
    assert {m.label: m.value for m in at.metric}["Datasets"] == "0"
    assert any("data/inbox/<dataset>/" in t for t in texts(at.info))
    at = open_page(at, DATASETS_PAGE)
    assert_clean(at)
    assert any(t.startswith("No datasets yet") and "data/inbox/<dataset>/" in t for t in texts(at.info))
    assert not at.dataframe


# -- datasets ---------------------------------------------------------------------


def open_people(console: AppTest, username: str, password: str) -> AppTest:
    at = open_page(log_in(console, username, password), DATASETS_PAGE)
    at.selectbox(key="dataset").select(DATASET).run()
    return at


def test_datasets_page_shows_rejected_report_with_failures(
    console: AppTest, live_server: Any, people: dict[str, Any]
):
    at = open_people(console, "admin", live_server.admin_password)

    assert not at.exception
    assert texts(at.title) == ["Datasets"]
    assert DATASET in set(table(at, "name", "current_version")["name"])
    versions = table(at, "number", "status", "report_headline").set_index("number")
    assert versions.loc[1, "status"] == "accepted"
    assert versions.loc[2, "status"] == "rejected"
    # newest first: v2, the rejected one, is shown
    assert f"{DATASET} v2 · rejected" in texts(at.subheader)
    assert any(t.startswith("Validation failed") for t in texts(at.error))
    failures = table(at, "check", "failing_rows", "sample_values")
    assert list(failures.columns) == ["column", "check", "failing_rows", "sample_values", "message"]
    assert any("age" in message for message in failures["message"])  # the missing column
    assert (failures["failing_rows"] > 0).all()
    assert has_key(at.button, "revalidate")
    quarantined = tables(at, "file_name", "reason")[-1].set_index("file_name")
    assert quarantined.loc["people-again.csv", "reason"] == "duplicate"


def test_datasets_page_shows_accepted_version_summary(
    console: AppTest, live_server: Any, people: dict[str, Any]
):
    at = open_people(console, "admin", live_server.admin_password)
    at.selectbox(key=f"version_{DATASET}").select(1).run()

    assert_clean(at)
    assert f"{DATASET} v1 · accepted" in texts(at.subheader)
    assert any(t.startswith("Validation passed") for t in texts(at.success))
    assert not has_key(at.button, "revalidate")
    schema = tables(at, "name", "dtype")[0]
    assert list(schema["name"]) == ["id", "age", "city"]
    summary = table(at, "name", "nulls", "n_unique").set_index("name")
    assert summary.loc["age", "count"] == 4
    assert summary.loc["age", "nulls"] == 0
    assert summary.loc["city", "nulls"] == 1
    assert len(at.get("vega_lite_chart")) == 4  # nulls per column + one chart per column
    upstream = table(at, "src", "relation", "dst")
    assert any(src.startswith("file:") for src in upstream["src"])
    rows = table(at, "id", "age", "city")          # the Rows tab: the first rows
    assert list(rows.columns) == ["id", "age", "city"] and len(rows) == 4


def test_datasets_page_viewer_reads_contract_without_editing(
    console: AppTest, admin_api: ApplianceClient, viewer: tuple[str, str], people: dict[str, Any]
):
    at = open_people(console, *viewer)

    assert not at.exception
    assert f"{DATASET} v2 · rejected" in texts(at.subheader)
    assert not at.text_area  # no contract editor ...
    assert not has_key(at.button, "revalidate")  # ... and no re-validation for a viewer
    assert [c.value.strip() for c in at.code] == [admin_api.contract(DATASET)["yaml"].strip()]


WARNED = "ui_warned"


def test_datasets_page_shows_warnings_of_an_accepted_version(
    console: AppTest, live_server: Any, admin_api: ApplianceClient
):
    first = "id,age\n" + "".join(f"{i},{20 + i % 50}\n" for i in range(100))
    later = "id,age\n" + "".join(f"{i},{-3 if i == 150 else 20 + i % 50}\n" for i in range(100, 200))
    assert live_server.drop(WARNED, "first.csv", first.encode())["outcome"] == "accepted"
    out = live_server.drop(WARNED, "later.csv", later.encode())
    assert out["outcome"] == "accepted" and out["message"].startswith("accepted with 1 warning: age:")

    at = open_page(log_in(console, "admin", live_server.admin_password), DATASETS_PAGE)
    at.selectbox(key="dataset").select(WARNED).run()

    assert_clean(at)
    versions = table(at, "number", "status", "warnings").set_index("number")
    assert (versions.loc[1, "warnings"], versions.loc[2, "warnings"]) == (0, 1)
    assert versions.loc[2, "status"] == "accepted"
    assert f"{WARNED} v2 · accepted · ⚠ 1 warning" in texts(at.subheader)
    assert any(t.startswith("Validation passed with 1 warning(s)") for t in texts(at.warning))
    warnings = table(at, "check", "failing_rows", "message")
    expected = admin_api.version(WARNED, 2)["report"]["warnings"]
    assert list(warnings["message"]) == [w["message"] for w in expected]
    assert warnings.loc[0, "column"] == "age" and warnings.loc[0, "failing_rows"] == 1
    assert "(-3)" in warnings.loc[0, "message"]
    assert not has_key(at.button, "revalidate")


# -- audit ------------------------------------------------------------------------


def test_audit_page_shows_events_and_verifies_chain(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, people: dict[str, Any]
):
    at = open_page(log_in(console, "admin", live_server.admin_password), AUDIT_PAGE)

    assert_clean(at)
    assert texts(at.title) == ["Audit log"]
    events = table(at, "seq", "actor", "action", "prev_hash")
    assert len(events) > 0
    assert list(events.columns)[:5] == ["seq", "at", "actor", "action", "target"]
    known = {e["seq"]: e for e in admin_api.audit(limit=500)}
    for seq, action in zip(events["seq"], events["action"], strict=True):
        assert known[seq]["action"] == action

    at.button(key="verify_chain").click().run()
    assert_clean(at)
    assert any(t.startswith("The audit chain is intact") for t in texts(at.success))
    assert "Erasures" in texts(at.subheader)
    assert any(t.startswith("No erasure yet") for t in texts(at.caption))


def test_audit_page_tells_viewer_the_role_is_too_small(console: AppTest, viewer: tuple[str, str]):
    at = open_page(log_in(console, *viewer), AUDIT_PAGE)

    assert_clean(at)
    assert any("Your role (viewer) cannot see the audit log" in t for t in texts(at.info))
    assert not at.dataframe
    assert not has_key(at.button, "verify_chain")
    assert "Only an admin can see erasures." in texts(at.caption)


# -- mutations last: they add a contract version to the shared dataset ------------


def test_datasets_page_saves_contract_and_revalidates(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, people: dict[str, Any]
):
    before = admin_api.contract(DATASET)
    at = open_people(console, "admin", live_server.admin_password)
    editor = at.text_area(key=f"contract_yaml_{DATASET}_{before['version']}")
    assert editor.value == before["yaml"]

    at.button(key="save_contract").click().run()
    assert not at.exception
    assert all(t.startswith("Validation failed") for t in texts(at.error))  # v2's report
    after = admin_api.contract(DATASET)
    assert after["version"] == before["version"] + 1
    assert f"Saved contract v{after['version']} for {DATASET}." in " ".join(texts(at.success))

    at.button(key="revalidate").click().run()
    assert not at.exception
    status = admin_api.version(DATASET, 2)["status"]
    assert f"Re-validated v2 against the current contract: {status}." in texts(at.success)


def test_datasets_page_shows_why_a_contract_is_refused(
    console: AppTest, live_server: Any, admin_api: ApplianceClient, people: dict[str, Any]
):
    before = admin_api.contract(DATASET)
    at = open_people(console, "admin", live_server.admin_password)
    at.text_area(key=f"contract_yaml_{DATASET}_{before['version']}").input("columns: [unclosed")
    at.button(key="save_contract").click().run()

    assert not at.exception
    refusals = [t for t in texts(at.error) if not t.startswith("Validation failed")]
    assert len(refusals) == 1 and "Traceback" not in refusals[0]
    assert admin_api.contract(DATASET)["version"] == before["version"]
