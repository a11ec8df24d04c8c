"""Who is calling: the result of authentication, passed to every service."""

from __future__ import annotations

from dataclasses import dataclass

from appliance.domain.roles import Role


@dataclass(frozen=True)
class Principal:
    username: str
    role: Role
    token_id: str | None = None
    token_kind: str | None = None

    @property
    def actor(self) -> str:
        return self.username


SYSTEM = Principal(username="system", role=Role.admin)
INBOX = Principal(username="inbox", role=Role.operator)
