"""Numbered schema migrations, applied in order at start.

Each ``NNNN_name.sql`` runs once, in its own transaction, and is recorded in
``schema_migrations``. DDL stays here, off hot paths.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from appliance.store.db import Store


def apply_migrations(store: Store) -> list[int]:
    from appliance.store.db import migration_files

    engine = store._engine()
    applied: list[int] = []
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
            )
        )
        done = {r[0] for r in conn.execute(text("SELECT version FROM schema_migrations"))}
    for number, name, sql in migration_files():
        if number in done:
            continue
        with engine.begin() as conn:
            for statement in _statements(sql):
                conn.execute(text(statement))
            conn.execute(
                text("INSERT INTO schema_migrations VALUES (:v, :n, now())"),
                {"v": number, "n": name},
            )
        applied.append(number)
    return applied


def _statements(sql: str) -> list[str]:
    lines = [ln for ln in sql.splitlines() if not ln.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
