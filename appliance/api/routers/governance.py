"""Users, tokens and the audit log."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from appliance.api.deps import Admin, App, Approver
from appliance.auth.service import MAX_TOKEN_DAYS
from appliance.domain.audit import AuditEvent, AuditVerification
from appliance.domain.auth import NewToken, Token, User
from appliance.domain.roles import Role

router = APIRouter(prefix="/api/v1")


class UserCreate(BaseModel):
    username: str
    password: str
    role: Role = Role.viewer


class UserUpdate(BaseModel):
    role: Role | None = None
    password: str | None = None
    disabled: bool | None = None


class TokenCreate(BaseModel):
    username: str
    name: str
    expires_days: float | None = Field(
        default=None, gt=0, le=MAX_TOKEN_DAYS, allow_inf_nan=False,
        description=f"Lifetime in days, more than 0 and at most {MAX_TOKEN_DAYS}; "
                    "null or left out: the token never expires.")


@router.get("/audit", tags=["audit"])
def list_audit(
    app: App, _: Approver, limit: int = Query(100, ge=1, le=1000), offset: int = Query(0, ge=0)
) -> list[AuditEvent]:
    return app.auditor.recent(limit=limit, offset=offset)


@router.get("/audit/verify", tags=["audit"])
def verify_audit(app: App, _: Admin) -> AuditVerification:
    return app.auditor.verify()


@router.get("/users", tags=["users"])
def list_users(app: App, _: Admin) -> list[User]:
    return app.auth.list_users()


@router.post("/users", tags=["users"], status_code=201)
def create_user(app: App, who: Admin, body: UserCreate) -> User:
    return app.auth.add_user(body.username, body.password, body.role, by=who)


@router.patch("/users/{username}", tags=["users"])
def update_user(app: App, who: Admin, username: str, body: UserUpdate) -> User:
    return app.auth.update_user(
        username, by=who, role=body.role, password=body.password, disabled=body.disabled
    )


@router.get("/tokens", tags=["tokens"])
def list_tokens(app: App, _: Admin) -> list[Token]:
    return app.auth.list_tokens()


@router.post("/tokens", tags=["tokens"], status_code=201)
def create_token(app: App, who: Admin, body: TokenCreate) -> NewToken:
    return app.auth.create_token(body.username, body.name, by=who, expires_days=body.expires_days)


@router.delete("/tokens/{token_id}", tags=["tokens"])
def revoke_token(app: App, who: Admin, token_id: str) -> Token:
    """Revoke an API token or a session (any kind) by id."""
    return app.auth.revoke_token(token_id, by=who)


@router.get("/sessions", tags=["tokens"])
def list_sessions(app: App, _: Admin) -> list[Token]:
    """Live login sessions (not revoked, not expired), newest first."""
    return app.auth.list_sessions()


@router.delete("/sessions/{session_id}", tags=["tokens"])
def revoke_session(app: App, who: Admin, session_id: str) -> Token:
    """End one login session; 404 for an id that is not a session."""
    return app.auth.revoke_token(session_id, by=who, kind="session")
