"""Queries for alerts (one row per breach) and alert webhooks: raw SQL through the session."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlmodel import Session

from appliance.domain.alerts import Alert, Webhook

_ALERT_COLUMNS = (
    "id, kind, key, status, message, detail, count, first_seen, last_seen, "
    "acknowledged_by, acknowledged_at, note, resolved_at"
)


def _alert(row: Any) -> Alert:
    (id_, kind, key, status, message, detail, count, first_seen, last_seen,
     ack_by, ack_at, note, resolved_at) = row
    return Alert(
        id=uuid.UUID(str(id_)), kind=kind, key=key, status=status, message=message,
        detail=json.loads(detail) if isinstance(detail, str) else detail, count=int(count),
        first_seen=first_seen, last_seen=last_seen, acknowledged_by=ack_by,
        acknowledged_at=ack_at, note=note, resolved_at=resolved_at,
    )


def find_active(s: Session, kind: str, key: str) -> Alert | None:
    """The breach in progress for (kind, key): open or acknowledged, not resolved."""
    row = s.execute(
        text(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE kind = :k AND key = :key "
             "AND status IN ('open', 'acknowledged') ORDER BY first_seen DESC LIMIT 1"),
        {"k": kind, "key": key},
    ).fetchone()
    return _alert(row) if row else None


def insert_alert(s: Session, *, kind: str, key: str, message: str, detail: Any,
                 at: dt.datetime) -> Alert:
    alert_id = uuid.uuid4()
    s.execute(
        text("INSERT INTO alerts (id, kind, key, status, message, detail, count, first_seen, "
             "last_seen) VALUES (:id, :kind, :key, 'open', :msg, :detail, 1, :at, :at)"),
        {"id": str(alert_id), "kind": kind, "key": key, "msg": message,
         "detail": json.dumps(detail, default=str), "at": at},
    )
    found = get_alert(s, alert_id)
    assert found is not None
    return found


def bump_alert(s: Session, alert_id: uuid.UUID | str, *, message: str, detail: Any,
               at: dt.datetime) -> None:
    s.execute(
        text("UPDATE alerts SET count = count + 1, last_seen = :at, message = :msg, "
             "detail = :detail WHERE id = :id"),
        {"id": str(alert_id), "at": at, "msg": message,
         "detail": json.dumps(detail, default=str)},
    )


def resolve_active(s: Session, kind: str, key: str, at: dt.datetime) -> list[str]:
    rows = s.execute(
        text("SELECT id FROM alerts WHERE kind = :k AND key = :key "
             "AND status IN ('open', 'acknowledged')"),
        {"k": kind, "key": key},
    ).fetchall()
    ids = [str(r[0]) for r in rows]
    for alert_id in ids:
        s.execute(text("UPDATE alerts SET status = 'resolved', resolved_at = :at WHERE id = :id"),
                  {"id": alert_id, "at": at})
    return ids


def get_alert(s: Session, alert_id: uuid.UUID | str) -> Alert | None:
    row = s.execute(text(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = :id"),
                    {"id": str(alert_id)}).fetchone()
    return _alert(row) if row else None


def list_alerts(s: Session, *, status: str | None = None, limit: int = 200) -> list[Alert]:
    where = "WHERE status = :status" if status else ""
    rows = s.execute(
        text(f"SELECT {_ALERT_COLUMNS} FROM alerts {where} ORDER BY last_seen DESC LIMIT :n"),
        {"status": status, "n": limit} if status else {"n": limit},
    ).fetchall()
    return [_alert(r) for r in rows]


def count_by_status(s: Session) -> dict[str, int]:
    rows = s.execute(text("SELECT status, count(*) FROM alerts GROUP BY status")).fetchall()
    return {status: int(n) for status, n in rows}


def acknowledge(s: Session, alert_id: str, *, by: str, note: str | None,
                at: dt.datetime) -> None:
    s.execute(
        # a breach that already cleared stays resolved: acknowledging it only records who saw it
        text("UPDATE alerts SET status = CASE WHEN status = 'resolved' THEN 'resolved' "
             "ELSE 'acknowledged' END, acknowledged_by = :by, "
             "acknowledged_at = :at, note = :note WHERE id = :id"),
        {"id": alert_id, "by": by, "at": at, "note": note},
    )


# -- webhooks ----------------------------------------------------------------


def _webhook(row: Any) -> Webhook:
    id_, url, created_by, created_at = row
    return Webhook(id=uuid.UUID(str(id_)), url=url, created_by=created_by, created_at=created_at)


def list_webhooks(s: Session) -> list[Webhook]:
    rows = s.execute(text("SELECT id, url, created_by, created_at FROM webhooks "
                          "ORDER BY created_at")).fetchall()
    return [_webhook(r) for r in rows]


def get_webhook(s: Session, webhook_id: uuid.UUID | str) -> Webhook | None:
    row = s.execute(text("SELECT id, url, created_by, created_at FROM webhooks WHERE id = :id"),
                    {"id": str(webhook_id)}).fetchone()
    return _webhook(row) if row else None


def find_webhook_by_url(s: Session, url: str) -> Webhook | None:
    row = s.execute(text("SELECT id, url, created_by, created_at FROM webhooks WHERE url = :u"),
                    {"u": url}).fetchone()
    return _webhook(row) if row else None


def add_webhook(s: Session, *, url: str, created_by: str, at: dt.datetime) -> Webhook:
    webhook_id = uuid.uuid4()
    s.execute(text("INSERT INTO webhooks VALUES (:id, :url, :by, :at)"),
              {"id": str(webhook_id), "url": url, "by": created_by, "at": at})
    found = get_webhook(s, webhook_id)
    assert found is not None
    return found


def delete_webhook(s: Session, webhook_id: str) -> None:
    s.execute(text("DELETE FROM webhooks WHERE id = :id"), {"id": webhook_id})
