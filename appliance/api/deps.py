"""Request dependencies: the appliance, the caller, and role checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from appliance.auth.service import require
from appliance.domain.principal import Principal
from appliance.domain.roles import Role
from appliance.runtime import Appliance

_bearer = HTTPBearer(auto_error=False, description="A session or API token")


async def get_appliance(request: Request) -> Appliance:
    app: Appliance = request.app.state.appliance
    return app


App = Annotated[Appliance, Depends(get_appliance)]


async def current_principal(
    app: App,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # async on purpose: a cached token check costs microseconds, while a sync
    # dependency costs a threadpool hop on every request (the predict hot path)
    return app.auth.authenticate(creds.credentials if creds else None)


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, parsed as ``_bearer`` does."""
    header = request.headers.get("authorization")
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    if not (header and scheme and token) or scheme.lower() != "bearer":
        return None
    return token


def authorize(request: Request, role: Role) -> Principal:
    """The ``Viewer``/``Operator``/... check for a route that declares no dependencies.

    Same token parsing, authentication and role rule as the dependencies, minus
    FastAPI's per-request dependency solving: for the predict hot path only.
    A route using it documents its security with ``BEARER_SECURITY``.
    """
    app: Appliance = request.app.state.appliance
    principal = app.auth.authenticate(bearer_token(request))
    require(principal, role)
    return principal


# what the dependencies add to a route's OpenAPI; for routes that call authorize()
BEARER_SECURITY: list[dict[str, list[str]]] = [{_bearer.scheme_name: []}]


def _needs(role: Role):  # type: ignore[no-untyped-def]
    async def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        require(principal, role)
        return principal

    check.__name__ = f"needs_{role.value}"
    return check


Viewer = Annotated[Principal, Depends(_needs(Role.viewer))]
Operator = Annotated[Principal, Depends(_needs(Role.operator))]
Approver = Annotated[Principal, Depends(_needs(Role.approver))]
Admin = Annotated[Principal, Depends(_needs(Role.admin))]
