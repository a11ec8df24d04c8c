"""CSV predict bodies: typed by the model's signature, and errors that name the right line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl
import pytest
from appliance_test_support import logged_in, make_settings
from fastapi.testclient import TestClient

from appliance.train import estimators
from appliance.train.child.export import export_onnx
from appliance.train.child.pipeline import build_pipeline, encode_target, prepare_frame, select_features

ZIPS = ["02139", "2139", "7", "07", "94105"]
PREDICT = "/api/v1/models/zips/predict"
CSV = {"Content-Type": "text/csv"}


def zip_model() -> bytes:
    """A logistic regression on a string ``zip`` (codes that look like numbers and differ
    only by a leading zero), a number and a boolean, exported as the appliance exports."""
    rng = np.random.default_rng(5)
    n = 400
    zips = rng.choice(ZIPS, n)
    amount = rng.normal(0, 1, n)
    member = rng.random(n) < 0.5
    logit = 3.0 * np.isin(zips, ["02139", "7"]) - 3.0 * np.isin(zips, ["2139", "07"]) + amount
    frame = pl.DataFrame({"zip": zips.tolist(), "amount": amount, "member": member,
                          "label": np.where(logit > 0, "yes", "no").tolist()})
    info = estimators.resolve("LogisticRegression")
    features, _ = select_features(dict(frame.schema), target="label", include=None, exclude=None)
    assert {f.name: f.kind for f in features} == {"zip": "categorical", "amount": "numeric",
                                                  "member": "numeric"}
    y, classes = encode_target(frame["label"].to_numpy(), info.task)
    pipeline = build_pipeline(info, estimators.make_estimator(info, {}, seed=0), features)
    pipeline.fit(prepare_frame(frame, features), y)
    data, _ = export_onnx(pipeline, features, info, classes=classes)
    return data


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    from appliance.api.app import create_app
    from appliance.runtime import build

    app = build(make_settings(tmp_path_factory.mktemp("csv") / "home"))
    try:
        with TestClient(create_app(app)) as client:
            logged_in(client)
            resp = client.post("/api/v1/models/zips/versions", content=zip_model(),
                               headers={"Content-Type": "application/octet-stream"})
            assert resp.status_code == 201, resp.text
            client.put("/api/v1/models/zips/aliases/champion", json={"version": 1, "reason": "t"})
            yield client
    finally:
        app.close()


def csv_predict(client: TestClient, text: str) -> Any:
    return client.post(PREDICT, content=text.encode(), headers=CSV)


def test_predict_a_csv_body_reads_numeric_looking_strings_as_the_text_written(
        served: TestClient) -> None:
    rows = [{"zip": z, "amount": 0.25, "member": 1.0} for z in ZIPS]
    as_json = served.post(PREDICT, json=rows)
    assert as_json.status_code == 200, as_json.text
    text = "zip,amount,member\n" + "".join(f"{z},0.25,true\n" for z in ZIPS)
    as_csv = csv_predict(served, text)
    assert as_csv.status_code == 200, as_csv.text
    assert as_csv.json()["predictions"] == as_json.json()["predictions"]
    assert as_csv.json()["probabilities"] == as_json.json()["probabilities"]
    # the leading zero is what the model saw: "02139" and "2139" are different codes
    by_zip = dict(zip(ZIPS, as_csv.json()["predictions"], strict=True))
    assert (by_zip["02139"], by_zip["2139"], by_zip["7"], by_zip["07"]) == ("yes", "no", "yes", "no")
    inputs = served.get("/api/v1/models/zips/versions/1").json()["signature"]["inputs"]
    assert {i["column"]: i["type"] for i in inputs} == {   # what typed the CSV fields
        "zip": "string", "amount": "float", "member": "float"}


def test_predict_a_csv_body_takes_missing_tokens_bom_and_crlf(served: TestClient) -> None:
    text = "\ufeffzip,amount,member\r\n02139,NA,false\r\n,N/A,\r\n7,null,None\r\n"
    resp = csv_predict(served, text)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["predictions"]) == 3


def test_predict_a_csv_error_names_the_line_counting_the_header_as_line_1(
        served: TestClient) -> None:
    # the quoted zip spans two lines, so data row 2 (counting from 0) starts on line 5
    text = 'zip,amount,member\n02139,1.0,true\n"021\n39",2.0,false\n7,abc,true\n'
    resp = csv_predict(served, text)
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["detail"] == {"row": 2, "line": 5, "field": "amount"}
    assert "CSV line 5 (the header is line 1)" in err["message"] and "'abc'" in err["message"]


def test_predict_a_csv_non_finite_value_names_its_line(served: TestClient) -> None:
    resp = csv_predict(served, "zip,amount,member\n02139,1.0,true\n7,inf,true\n")
    assert resp.status_code == 422
    assert resp.json()["error"]["detail"] == {"row": 1, "line": 3, "field": "amount"}


def test_predict_a_ragged_csv_line_is_422_not_a_silent_null(served: TestClient) -> None:
    resp = csv_predict(served, "zip,amount,member\n02139,1.0,true\n7,2.0\n")
    assert resp.status_code == 422
    err = resp.json()["error"]
    assert err["detail"]["line"] == 3 and err["detail"]["reason"] == "ragged"
    assert "2 fields" in err["message"] and "has 3" in err["message"]


@pytest.mark.parametrize(("text", "field", "words"), [
    ("zip,amount\n02139,1.0\n", "member", "has no column 'member'"),
    ("zip,amount,member,extra\n02139,1.0,true,x\n", "extra", "does not take"),
    ("zip,amount,amount\n02139,1.0,2.0\n", "amount", "twice"),
], ids=["missing", "extra", "duplicate"])
def test_predict_a_csv_header_problem_names_the_column_on_line_1(
        served: TestClient, text: str, field: str, words: str) -> None:
    resp = csv_predict(served, text)
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["detail"]["field"] == field and err["detail"]["line"] == 1
    assert words in err["message"]


@pytest.mark.parametrize("body", [b"", b"zip,amount,member\n", b"\xff\xfe\x00z",
                                  b'zip,amount,member\n"02139,1.0,true\n'],
                         ids=["empty", "header-only", "not-utf8", "open-quote"])
def test_predict_an_unreadable_csv_is_422(served: TestClient, body: bytes) -> None:
    resp = served.post(PREDICT, content=body, headers=CSV)
    assert resp.status_code == 422, resp.text


def test_predict_a_csv_request_id_column_is_kept_as_text(served: TestClient) -> None:
    resp = csv_predict(served, "request_id,zip,amount,member\n0042,02139,1.0,true\n")
    assert resp.status_code == 200, resp.text
    assert resp.json()["request_ids"] == ["0042"]


def test_predict_a_json_error_says_rows_count_from_0(served: TestClient) -> None:
    rows = [{"zip": "7", "amount": 1.0, "member": 0.0}, {"zip": 7, "amount": 1.0, "member": 0.0}]
    resp = served.post(PREDICT, json=rows)
    assert resp.status_code == 422
    err = resp.json()["error"]
    assert err["detail"] == {"row": 1, "field": "zip"}
    assert err["message"].startswith("row 1 (counting from 0): field 'zip' must be text")
