"""Alerts vocabulary and typed results: one ``Alert`` per breach, admin-managed ``Webhook``s."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.domain.results import Timestamp

KINDS = ("drift", "metric_below_threshold", "validation_rejected", "job_failed", "canary")
ACTIVE = ("open", "acknowledged")
STATUSES = ("open", "acknowledged", "resolved")


class Alert(BaseModel):
    """One breach of ``(kind, key)``: raised again, it only counts; resolved, the next
    breach is a new alert."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    kind: str = Field(description="drift, metric_below_threshold, validation_rejected, "
                                  "job_failed or canary")
    key: str = Field(description="what breached: a model, a dataset, a job")
    status: str = Field(description="open, acknowledged or resolved")
    message: str
    detail: Any
    count: int = Field(description="times raised during this breach")
    first_seen: Timestamp
    last_seen: Timestamp
    acknowledged_by: str | None
    acknowledged_at: Timestamp | None
    note: str | None
    resolved_at: Timestamp | None


class Webhook(BaseModel):
    """A URL every new alert is POSTed to (its host on the admin allowlist)."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    url: str
    created_by: str
    created_at: Timestamp
