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
