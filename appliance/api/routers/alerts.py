"""Alerts: the list the console shows, acknowledgement, and admin-managed webhooks."""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from appliance.api.deps import Admin, App, Operator, Viewer
from appliance.domain.alerts import Alert, Webhook

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


class AckBody(BaseModel):
    note: str | None = Field(default=None, max_length=2000)


class WebhookCreate(BaseModel):
    url: str = Field(max_length=2048)


@router.get("")
def list_alerts(
    app: App, _: Viewer, status: str | None = Query(None, description="open, acknowledged or resolved"),
    limit: int = Query(200, ge=1, le=1000),
) -> list[Alert]:
    return app.alerts.list_alerts(status, limit=limit)


@router.get("/webhooks")
def list_webhooks(app: App, _: Admin) -> list[Webhook]:
    return app.alerts.list_webhooks()


@router.post("/webhooks", status_code=201)
def add_webhook(app: App, who: Admin, body: WebhookCreate) -> Webhook:
    return app.alerts.add_webhook(body.url, who)


@router.delete("/webhooks/{webhook_id}")
def remove_webhook(app: App, who: Admin, webhook_id: str) -> Webhook:
    return app.alerts.remove_webhook(webhook_id, who)


@router.post("/{alert_id}/ack")
def acknowledge(app: App, who: Operator, alert_id: str, body: AckBody | None = None) -> Alert:
    return app.alerts.acknowledge(alert_id, who, body.note if body else None)
