"""What the auth service answers: users, tokens and sessions, and a login's access token.

Never a password, a token's hash or (but once, at creation) a token's secret.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.domain.roles import Role


class User(BaseModel):
    """A user account."""

    model_config = ConfigDict(frozen=True)

    username: str
    role: Role
    created_at: str
    disabled: bool


class Token(BaseModel):
    """An API token, a bootstrap token or a login session as people see it."""

    model_config = ConfigDict(frozen=True)

    id: str
    username: str | None = Field(description="Null for the bootstrap token.")
    name: str
    kind: str = Field(description="session | api | bootstrap")
    created_at: str | None
    expires_at: str | None = Field(description="Null: it never expires.")
    revoked_at: str | None
    last_used_at: str | None


class NewToken(Token):
    """A token just made, with its secret: shown once, never stored."""

    token: str = Field(description="The secret: send it as `Authorization: Bearer <token>`.")


class AccessToken(BaseModel):
    """A login's answer: a session's bearer token for the user."""

    model_config = ConfigDict(frozen=True)

    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the scheme, not a secret
    expires_at: str
    username: str
    role: Role


class Me(BaseModel):
    """Who the caller is."""

    model_config = ConfigDict(frozen=True)

    username: str
    role: Role
