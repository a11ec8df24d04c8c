"""Queries for users and tokens (hashes only; secrets never reach the store)."""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import func
from sqlmodel import Session, col, select

from appliance.store.tables import TokenRow, UserRow


def get_user(s: Session, username: str) -> UserRow | None:
    return s.exec(select(UserRow).where(UserRow.username == username)).first()


def get_user_by_id(s: Session, user_id: uuid.UUID) -> UserRow | None:
    return s.get(UserRow, user_id)


def list_users(s: Session) -> list[UserRow]:
    return list(s.exec(select(UserRow).order_by(col(UserRow.username))).all())


def count_users(s: Session) -> int:
    return int(s.exec(select(func.count()).select_from(UserRow)).one())


def add_user(s: Session, row: UserRow) -> UserRow:
    s.add(row)
    s.flush()
    return row


def add_token(s: Session, row: TokenRow) -> TokenRow:
    s.add(row)
    s.flush()
    return row


def get_token_by_hash(s: Session, token_hash: str) -> TokenRow | None:
    return s.exec(select(TokenRow).where(TokenRow.token_hash == token_hash)).first()


def get_token(s: Session, token_id: uuid.UUID) -> TokenRow | None:
    return s.get(TokenRow, token_id)


def touch_token(s: Session, token_id: uuid.UUID, at: dt.datetime) -> None:
    """Record that a token was used at ``at``."""
    row = s.get(TokenRow, token_id)
    if row is not None:
        row.last_used_at = at
        s.add(row)


def list_tokens(s: Session, *, include_sessions: bool = False) -> list[TokenRow]:
    q = select(TokenRow)
    if not include_sessions:
        q = q.where(TokenRow.kind != "session")
    return list(s.exec(q.order_by(col(TokenRow.created_at).desc())).all())


def revoke_tokens_of_kind(s: Session, kind: str, at: dt.datetime) -> int:
    n = 0
    for row in s.exec(
        select(TokenRow).where(TokenRow.kind == kind, col(TokenRow.revoked_at).is_(None))
    ).all():
        row.revoked_at = at
        s.add(row)
        n += 1
    return n


def count_enabled_admins(s: Session) -> int:
    q = select(func.count()).select_from(UserRow).where(
        UserRow.role == "admin", col(UserRow.disabled).is_(False))
    return int(s.exec(q).one())


def active_sessions(s: Session, now: dt.datetime) -> list[TokenRow]:
    """Session tokens not revoked and not expired, newest first."""
    q = select(TokenRow).where(
        TokenRow.kind == "session", col(TokenRow.revoked_at).is_(None),
        (col(TokenRow.expires_at).is_(None)) | (col(TokenRow.expires_at) > now))
    return list(s.exec(q.order_by(col(TokenRow.created_at).desc())).all())


def revoke_sessions_of(s: Session, user_id: uuid.UUID, at: dt.datetime, *,
                       keep: uuid.UUID | None = None) -> int:
    """End every live session of a user (except ``keep``); the number ended."""
    n = 0
    for row in s.exec(select(TokenRow).where(
            TokenRow.user_id == user_id, TokenRow.kind == "session",
            col(TokenRow.revoked_at).is_(None))).all():
        if row.id == keep or (row.expires_at is not None and row.expires_at <= at):
            continue
        row.revoked_at = at
        s.add(row)
        n += 1
    return n
