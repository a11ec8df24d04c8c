"""The error tree maps to statuses by class, and every error is answered by one handler."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from appliance import errors as e
from appliance.api import errors as api_errors
from appliance.api.routers import serving


def test_status_for_too_large_is_413_with_the_old_json() -> None:
    exc = e.TooLarge("the body is larger than 10 bytes", detail={"limit_bytes": 10})
    assert api_errors.status_for(exc) == 413
    assert isinstance(exc, e.InvalidInput)  # callers catching InvalidInput still catch it
    assert exc.to_dict() == {"type": "invalid_input", "message": "the body is larger than 10 bytes",
                             "detail": {"reason": "too_big", "limit_bytes": 10}}


def test_status_for_invalid_input_whose_detail_says_too_big_stays_400() -> None:
    # the class decides, not a key that a detail may echo from the request
    exc = e.InvalidInput("bad field", detail={"reason": "too_big", "field": "reason"})
    assert api_errors.status_for(exc) == 400


def test_status_for_training_failed_is_its_own_class() -> None:
    exc = e.TrainingFailed("training run 1 failed: boom", detail={"run_id": "1"})
    assert not isinstance(exc, e.InvalidInput)
    assert api_errors.status_for(exc) == 400
    assert exc.to_dict()["type"] == "training_failed"


def test_error_body_is_the_errors_to_dict_under_error() -> None:
    exc = e.Conflict("already there", detail={"x": 1})
    assert api_errors.error_body(exc.kind, exc.message, exc.detail) == {"error": exc.to_dict()}
    assert json.loads(api_errors.error_response(exc).body) == {"error": exc.to_dict()}


def _lane(exc: BaseException, monkeypatch: pytest.MonkeyPatch) -> Any:
    async def score(request: Any, name: str) -> Any:
        raise exc

    monkeypatch.setattr(serving, "score", score)
    scope = {"type": "http", "method": "POST", "path": "/api/v1/models/m/predict",
             "headers": [], "query_string": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    return asyncio.run(serving.predict_lane(scope, receive, "m"))


@pytest.mark.parametrize("exc", [
    e.Throttled("slow down", retry_after=7.2),
    e.Unauthenticated("no token"),
    e.TooLarge("too many rows", detail={"rows": 10_001}),
    e.NotFound("no model 'm'"),
])
def test_predict_lane_answers_an_error_as_the_app_handler_does(
        exc: e.ApplianceError, monkeypatch: pytest.MonkeyPatch) -> None:
    lane = _lane(exc, monkeypatch)
    handler = api_errors.error_response(exc)
    assert lane.status_code == handler.status_code
    assert lane.body == handler.body
    assert dict(lane.headers) == dict(handler.headers)


def test_predict_lane_answers_an_unexpected_error_with_the_internal_shape(
        monkeypatch: pytest.MonkeyPatch) -> None:
    lane = _lane(RuntimeError("secret detail"), monkeypatch)
    assert lane.status_code == 500
    assert json.loads(lane.body) == {"error": {"type": "internal", "detail": None,
                                               "message": "internal error; see the server log"}}
