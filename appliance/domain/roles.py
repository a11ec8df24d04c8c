"""Roles are ordered: each one can do everything the ones below it can."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    viewer = "viewer"      # read
    operator = "operator"  # ingest, train, run jobs
    approver = "approver"  # move aliases, approve promotion
    admin = "admin"        # users, tokens, settings

    @property
    def rank(self) -> int:
        return _RANK[self]

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


_RANK = {Role.viewer: 0, Role.operator: 1, Role.approver: 2, Role.admin: 3}
