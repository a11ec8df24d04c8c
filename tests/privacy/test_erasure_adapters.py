"""``POST/GET /api/v1/erasures`` and ``appliance erase`` / ``appliance erasures``: thin
adapters over the erasure service, with its refusals as 400/404/422 and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cli_testing import invoke
from erasure_data import KEY, populate


def test_post_erasure_dry_run_then_erase_answers_the_report(api: Any, appliance_app: Any) -> None:
    populate(appliance_app)
    where = [{"column": "customer_id", "value": KEY}]
    dry = api.post("/api/v1/erasures", json={"where": where, "dry_run": True})
    assert dry.status_code == 201, dry.text
    assert dry.json()["id"] is None and len(dry.json()["versions"]) == 2
    done = api.post("/api/v1/erasures", json={"where": where})
    assert done.status_code == 201, done.text
    body = done.json()
    assert [(v["version"], v["new_version"]) for v in body["versions"]] == [(1, 4), (2, 5)]
    assert (body["predictions_removed"], body["labels_removed"]) == (2, 2)
    assert KEY not in json.dumps(body)
    listed = api.get("/api/v1/erasures").json()
    assert [(e["id"], e["rows_removed"]) for e in listed] == [(body["id"], 3)]
    card = api.get("/api/v1/models/churn/versions/1/card").json()
    assert [n["erasure_id"] for n in card["erased_data"]] == [body["id"]]


def test_post_erasure_refuses_bad_requests_with_the_error_shape(api: Any,
                                                                appliance_app: Any) -> None:
    populate(appliance_app)
    unknown = api.post("/api/v1/erasures", json={"where": [{"column": "email", "value": "x"}]})
    assert unknown.status_code == 400
    assert "'email'" in unknown.json()["error"]["message"]
    wrong_type = api.post("/api/v1/erasures",
                          json={"where": [{"column": "n", "value": "1 OR 1=1"}]})
    assert wrong_type.status_code == 400 and wrong_type.json()["error"]["detail"]["dtype"]
    assert api.post("/api/v1/erasures", json={"where": [{"column": "customer_id", "value": KEY}],
                                              "dataset": "nope"}).status_code == 404
    assert api.post("/api/v1/erasures", json={"where": [], "sql": "1"}).status_code == 422
    assert api.post("/api/v1/erasures", json={"where": [{"column": "customer_id",
                                                         "value": {"$ne": 1}}]}
                    ).status_code == 422
    assert api.get("/api/v1/erasures").json() == []


def test_cli_erase_prints_a_table_then_json_and_fails_in_one_line(tmp_path: Path) -> None:
    from appliance_test_support import make_settings

    from appliance.runtime import build

    home = tmp_path / "home"
    app = build(make_settings(home))
    populate(app)
    app.close()
    dry = invoke(home, "erase", "--where", f"customer_id={KEY}", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and "customers" in dry.output
    done = invoke(home, "erase", "--where", f"customer_id={KEY}", "--where", "n=1", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert [(v["version"], v["rows_removed"]) for v in report["versions"]] == [(1, 1), (2, 1)]
    assert any("appliance compact" in step for step in report["next_steps"])
    assert "appliance compact" not in dry.output
    listed = invoke(home, "erasures", "--json")
    assert [e["id"] for e in json.loads(listed.stdout)] == [report["id"]]
    table = invoke(home, "erase", "--where", f"customer_id={KEY}")
    assert table.exit_code == 0, table.output
    assert "next:" in table.output and "appliance compact" in table.output
    bad = invoke(home, "erase", "--where", "email=a@b.c")
    assert bad.exit_code == 2 and "'email'" in bad.output
    assert invoke(home, "erase", "--where", "customer_id").exit_code == 2
