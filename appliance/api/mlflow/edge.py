"""What every MLflow route shares: MLflow's error body and statuses (on these paths
only), who is calling (a bearer token, or HTTP basic username/password as the MLflow
client sends them), and reading a JSON body or query into a typed request."""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from appliance import errors as e
from appliance.api.deps import bearer_token
from appliance.auth.service import require
from appliance.compat.mlflow.wire import ErrorCode
from appliance.domain.principal import Principal
from appliance.domain.roles import Role
from appliance.runtime import Appliance

log = logging.getLogger(__name__)
B = TypeVar("B", bound=BaseModel)

_BY_CLASS: list[tuple[type[e.ApplianceError], ErrorCode, int]] = [
    (e.TooLarge, ErrorCode.exhausted, 413),
    (e.InvalidInput, ErrorCode.invalid_parameter, 400),
    (e.Unauthenticated, ErrorCode.unauthenticated, 401),
    (e.PermissionDenied, ErrorCode.permission_denied, 403),
    (e.NotFound, ErrorCode.not_found, 404),
    (e.Conflict, ErrorCode.invalid_state, 400),
    (e.Throttled, ErrorCode.limit_exceeded, 429),
    (e.StoreLocked, ErrorCode.unavailable, 503),
    (e.StoreUnavailable, ErrorCode.unavailable, 503),
    (e.Overloaded, ErrorCode.unavailable, 503),
    (e.InsufficientDisk, ErrorCode.exhausted, 507),
]
_STATUS = {ErrorCode.already_exists: 400, ErrorCode.invalid_state: 400,
           ErrorCode.permission_denied: 403, ErrorCode.invalid_parameter: 400}


# every path of the MLflow protocol starts with one of these (mlflow-artifacts included)
PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow", "/api/3.0/mlflow")


def unrouted(path: str, status: int, detail: str) -> JSONResponse | None:
    """MLflow's answer for a path no route matched (a newline in it, say), or None when
    the path is not MLflow's."""
    if not path.startswith(PREFIXES):
        return None
    code = ErrorCode.endpoint_not_found if status in (404, 405) else ErrorCode.invalid_parameter
    return mlflow_error(code, detail, status)


def mlflow_error(code: ErrorCode, message: str, status: int) -> JSONResponse:
    return JSONResponse({"error_code": code.value, "message": message}, status_code=status)


def error_response(exc: e.ApplianceError) -> JSONResponse:
    code, status = ErrorCode.internal, 500
    for cls, c, st in _BY_CLASS:
        if isinstance(exc, cls):
            code, status = c, st
            break
    chosen = exc.detail.get("error_code") if isinstance(exc.detail, dict) else None
    if isinstance(chosen, ErrorCode):
        code, status = chosen, _STATUS.get(chosen, status)
    response = mlflow_error(code, exc.message, status)
    if isinstance(exc, e.Throttled):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


class MlflowRoute(APIRoute):
    """Answers every failure of its route in MLflow's shape, never in /api/v1's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except e.ApplianceError as exc:
                return error_response(exc)
            except (RequestValidationError, ValidationError) as exc:
                return mlflow_error(ErrorCode.invalid_parameter, _describe(exc), 400)
            except StarletteHTTPException as exc:
                return mlflow_error(ErrorCode.invalid_parameter, str(exc.detail),
                                    exc.status_code)
            except Exception:
                log.exception("unhandled error on an MLflow route")
                return mlflow_error(ErrorCode.internal, "internal error; see the server log",
                                    500)

        return answer


def _describe(exc: RequestValidationError | ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "invalid request: " + "; ".join(parts)


def appliance_of(request: Request) -> Appliance:
    app: Appliance = request.app.state.appliance
    return app


def caller(request: Request, role: Role) -> Principal:
    """The principal of a bearer token or of basic credentials, holding ``role``.
    May check a password (argon2): call it in the threadpool."""
    app = appliance_of(request)
    header = request.headers.get("authorization") or ""
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            pair = base64.b64decode(credentials.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise e.Unauthenticated("malformed basic credentials") from None
        username, sep, password = pair.partition(":")
        if not sep:
            raise e.Unauthenticated("malformed basic credentials")
        principal = app.auth.authenticate_password(
            username, password, client=request.client.host if request.client else None)
    else:
        principal = app.auth.authenticate(bearer_token(request))
    require(principal, role)
    return principal


async def body_of(request: Request, model: type[B]) -> B:
    """A POST/PATCH's JSON body, or a GET's query (repeated keys become lists)."""
    if request.method in ("GET", "DELETE"):
        raw: Any = {}
        for key in request.query_params:
            values = request.query_params.getlist(key)
            field = model.model_fields.get(key)
            wants_list = field is not None and "list" in str(field.annotation)
            raw[key] = values if wants_list else values[-1]
    else:
        data = await request.body()
        try:
            raw = json.loads(data) if data.strip() else {}
        except (ValueError, UnicodeDecodeError):
            raise e.InvalidInput("the body is not JSON") from None
        if not isinstance(raw, dict):
            raise e.InvalidInput("the body must be a JSON object")
    return model.model_validate(raw)
