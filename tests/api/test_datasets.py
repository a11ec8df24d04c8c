"""Contracts through the API: inferred on the first file, enforced on the next."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

BASE_ROWS = [(i, 20 + i % 50, 10.0 + i, ["basic", "plus", "pro"][i % 3]) for i in range(200)]


def _csv(rows: list[tuple[Any, ...]], header: str = "customer_id,age,spend,plan") -> bytes:
    return (header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)).encode()


def _upload(api: Any, dataset: str, name: str, content: bytes) -> dict[str, Any]:
    resp = api.post(f"/api/v1/datasets/{dataset}/files", params={"filename": name},
                    content=content, headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code == 201, resp.text
    return resp.json()


@pytest.fixture
def seeded(api: Any) -> Any:
    first = _upload(api, "customers", "v1.csv", _csv(BASE_ROWS))
    assert first["outcome"] == "accepted" and first["version"] == 1
    return api


def _failures(api: Any, version: int) -> list[dict[str, Any]]:
    detail = api.get(f"/api/v1/datasets/customers/versions/{version}").json()
    assert detail["status"] == "rejected"
    assert detail["report"]["passed"] is False
    return detail["report"]["failures"]


def test_first_file_infers_contract_version_one(seeded: Any) -> None:
    contract = seeded.get("/api/v1/datasets/customers/contract").json()
    assert contract["version"] == 1 and contract["inferred"] is True
    assert "customer_id" in contract["yaml"] and "plan" in contract["yaml"]


def test_a_new_column_is_rejected_with_a_report(seeded: Any) -> None:
    rows = [(*r, "x") for r in BASE_ROWS]
    out = _upload(seeded, "customers", "v2.csv", _csv(rows, "customer_id,age,spend,plan,extra"))
    assert out["outcome"] == "rejected" and out["reason"] == "contract_failed"
    fails = _failures(seeded, 2)
    assert any("extra" in str(f["column"]) + str(f["sample_values"]) + f["message"] for f in fails)


def test_a_missing_column_is_rejected_with_a_report(seeded: Any) -> None:
    rows = [r[:3] for r in BASE_ROWS]
    out = _upload(seeded, "customers", "v2.csv", _csv(rows, "customer_id,age,spend"))
    assert out["outcome"] == "rejected"
    fails = _failures(seeded, 2)
    assert any("plan" in str(f["column"]) + str(f["sample_values"]) + f["message"] for f in fails)


def test_a_type_change_is_rejected_or_quarantined_naming_the_column(seeded: Any) -> None:
    rows = [(r[0], f"age-{r[1]}", r[2], r[3]) for r in BASE_ROWS]
    out = _upload(seeded, "customers", "v2.csv", _csv(rows))
    assert out["outcome"] in ("rejected", "quarantined")
    assert "age" in out["message"]
    if out["outcome"] == "rejected":
        assert any(f["column"] == "age" for f in _failures(seeded, 2))


def test_out_of_range_values_are_accepted_with_a_warning_with_counts_and_samples(seeded: Any) -> None:
    """Inferred ranges are soft: the version is accepted and the warning kept with it."""
    rows = [(r[0], 5000 if r[0] < 3 else r[1], r[2], r[3]) for r in BASE_ROWS]
    out = _upload(seeded, "customers", "v2.csv", _csv(rows))
    assert out["outcome"] == "accepted"
    assert out["message"].startswith("accepted with 1 warning: age: 3 of 200 values outside the expected range")
    listed = {v["number"]: v for v in seeded.get("/api/v1/datasets/customers/versions").json()}
    assert (listed[1]["warnings"], listed[2]["warnings"]) == (0, 1)
    assert listed[2]["status"] == "accepted"
    assert listed[2]["report_headline"].startswith("passed with 1 warning: age: 3 of 200 values")
    report = seeded.get("/api/v1/datasets/customers/versions/2").json()["report"]
    assert report["passed"] is True and report["failures"] == []
    (warning,) = report["warnings"]
    assert warning["column"] == "age" and warning["failing_rows"] == 3 and 5000 in warning["sample_values"]


def test_a_flood_of_unseen_categories_is_rejected_with_counts_and_samples(
    seeded: Any, appliance_app: Any
) -> None:
    rows = [(r[0], r[1], r[2], "platinum" if r[0] % 4 else "gold") for r in BASE_ROWS]
    out = _upload(seeded, "customers", "v2.csv", _csv(rows))
    assert out["outcome"] == "rejected" and out["reason"] == "contract_failed"
    assert out["message"].startswith(
        "contract failed: plan: 200 of 200 values not in contract v1's categories ('gold', 'platinum')")
    (failure,) = _failures(seeded, 2)
    assert (failure["column"], failure["check"], failure["failing_rows"]) == ("plan", "min_domain_mass(0.99)", 200)
    reason = json.loads(next((appliance_app.settings.quarantine_dir / "customers").glob("*.reason.json"))
                        .read_text())
    assert reason["reason"] == "contract_failed"
    assert reason["detail"]["report"]["failures"][0]["column"] == "plan"
    assert reason["detail"]["report"]["warnings"] == []


def test_a_few_unseen_categories_are_accepted_with_a_warning(seeded: Any) -> None:
    rows = [(*r[:3], "platinum" if r[0] == 7 else r[3]) for r in BASE_ROWS]
    rows += [(1000 + i, 30, 5.0, "basic") for i in range(200)]  # 1 unseen in 400 values: under 1%
    out = _upload(seeded, "customers", "v2.csv", _csv(rows))
    assert out["outcome"] == "accepted"
    (warning,) = seeded.get("/api/v1/datasets/customers/versions/2").json()["report"]["warnings"]
    assert (warning["column"], warning["check"], warning["sample_values"]) == ("plan", "domain", ["platinum"])


def test_editing_the_contract_and_revalidating_accepts_the_version(seeded: Any) -> None:
    rows = [(r[0], r[1], r[2], "platinum") for r in BASE_ROWS]
    assert _upload(seeded, "customers", "v2.csv", _csv(rows))["outcome"] == "rejected"
    doc = yaml.safe_load(seeded.get("/api/v1/datasets/customers/contract").json()["yaml"])
    domain = doc["columns"]["plan"]["metadata"]["profile"]["domain"]
    assert domain == ["basic", "plus", "pro"]
    domain.append("platinum")
    resp = seeded.put("/api/v1/datasets/customers/contract", json={"yaml": yaml.safe_dump(doc)})
    assert resp.status_code == 200, resp.text
    assert resp.json()["version"] == 2
    again = seeded.post("/api/v1/datasets/customers/versions/2/validate")
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "accepted" and again.json()["contract_version"] == 2
    assert [c["version"] for c in seeded.get("/api/v1/datasets/customers/contracts").json()] == [2, 1]


def test_hardening_a_soft_range_rejects_out_of_range_values(seeded: Any) -> None:
    doc = yaml.safe_load(seeded.get("/api/v1/datasets/customers/contract").json()["yaml"])
    age = _find_column(doc, "age")
    age["in_range"] = dict(age["metadata"]["profile"]["expected_range"])
    resp = seeded.put("/api/v1/datasets/customers/contract", json={"yaml": yaml.safe_dump(doc)})
    assert resp.status_code == 200, resp.text
    rows = [(r[0], 5000 if r[0] < 3 else r[1], r[2], r[3]) for r in BASE_ROWS]
    out = _upload(seeded, "customers", "v2.csv", _csv(rows))
    assert out["outcome"] == "rejected"
    fails = [f for f in _failures(seeded, 2) if f["column"] == "age"]
    assert fails and fails[0]["failing_rows"] == 3 and 5000 in fails[0]["sample_values"]
    assert fails[0]["check"].startswith("in_range(")


def test_a_garbage_contract_is_refused_with_a_readable_error(seeded: Any) -> None:
    for bad in ("not: [a, schema", "!!python/object/apply:os.system ['true']", "42"):
        resp = seeded.put("/api/v1/datasets/customers/contract", json={"yaml": bad})
        assert resp.status_code == 400, (bad, resp.text)
        assert resp.json()["error"]["type"] == "contract_invalid"
    assert seeded.get("/api/v1/datasets/customers/contract").json()["version"] == 1


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", "UPPER", "x" * 65, "a\\b"])
def test_traversal_strings_in_dataset_names_are_refused(api: Any, name: str) -> None:
    resp = api.post(f"/api/v1/datasets/{name}/files", params={"filename": "a.csv"},
                    content=b"a\n1\n", headers={"Content-Type": "application/octet-stream"})
    assert resp.status_code in (400, 404), resp.text
    resp = api.get(f"/api/v1/datasets/{name}")
    assert resp.status_code in (400, 404)


@pytest.mark.parametrize("filename", ["../../x.csv", "..\\x.csv", ".hidden.csv", "a/../b.csv"])
def test_traversal_strings_in_file_names_are_refused(api: Any, filename: str) -> None:
    resp = api.post("/api/v1/datasets/ok/files", params={"filename": filename},
                    content=b"a\n1\n", headers={"Content-Type": "application/octet-stream"})
    if resp.status_code == 201:  # a basename survived: it must have been stored under claimed/
        assert "/" not in resp.json()["file_name"] and ".." not in resp.json()["file_name"]
    else:
        assert resp.status_code == 400, resp.text


def test_lineage_and_summary_are_served(seeded: Any) -> None:
    summary = seeded.get("/api/v1/summary").json()
    assert summary["counts"]["accepted"] == 1 and summary["counts"]["datasets"] == 1
    assert summary["recent_ingests"][0]["file_name"] == "v1.csv"
    lineage = seeded.get("/api/v1/lineage/dataset:customers@1").json()
    assert lineage["downstream"][0]["dst"] == "dataset:customers"
    assert seeded.get("/api/v1/lineage/dataset:nothing@9").status_code == 404


def test_metrics_count_ingests_by_outcome(seeded: Any) -> None:
    _upload(seeded, "customers", "v1-again.csv", _csv(BASE_ROWS))
    text = seeded.get("/metrics").text
    assert 'appliance_ingest_files_total{outcome="accepted"} 1.0' in text
    assert 'appliance_ingest_files_total{outcome="quarantined"} 1.0' in text
    assert "appliance_http_request_duration_seconds_bucket" in text


def _find_column(doc: Any, name: str) -> Any:
    if isinstance(doc, dict):
        if name in doc and isinstance(doc[name], dict):
            return doc[name]
        for v in doc.values():
            found = _find_column(v, name)
            if found is not None:
                return found
    if isinstance(doc, list):
        for v in doc:
            found = _find_column(v, name)
            if found is not None:
                return found
    return None


def test_version_rows_route_answers_first_rows_or_a_seeded_sample(seeded: Any) -> None:
    got = seeded.get("/api/v1/datasets/customers/versions/1/rows", params={"limit": 2})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["how"] == "head" and len(body["rows"]) == 2
    assert body["columns"] == list(body["rows"][0])
    params = {"limit": 3, "sample": "true", "seed": 5}
    sampled = seeded.get("/api/v1/datasets/customers/versions/1/rows", params=params).json()
    assert sampled["how"] == "sample" and sampled["seed"] == 5 and len(sampled["rows"]) == 3
    too_many = seeded.get("/api/v1/datasets/customers/versions/1/rows", params={"limit": 5000})
    assert too_many.status_code == 422
