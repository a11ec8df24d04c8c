"""Alerts: one alert per breach, shown in the console, logged, and sent to webhooks.

An alert is identified by ``(kind, key)``. While a breach is active (its alert
is ``open`` or ``acknowledged``) raising it again only bumps ``count`` and
``last_seen``: nothing new is created and nobody is notified again. ``resolve``
closes the breach when the condition clears, so the next breach alerts anew.
Acknowledging is audited and stops nothing but the "unacknowledged" flag: an
acknowledged breach that keeps breaching does not re-notify. A breach that
cleared before anyone acknowledged it is resolved but still unacknowledged, and
can be acknowledged (it stays resolved): an alert is never lost to a person
just because the condition went away first.

Channels, when an alert fires: the ``alerts`` table (the console lists it),
one JSON line appended to ``log_path``, and a POST to every registered webhook
(``appliance.monitor.webhooks``: the URL fence and the delivery thread).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from appliance.audit import Auditor
from appliance.domain.alerts import KINDS, STATUSES, Alert, Webhook
from appliance.domain.principal import Principal
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.monitor.webhooks import (
    Resolver,
    WebhookSender,
    WebhookTarget,
    check_webhook_url,
    redact,
)
from appliance.store import alerts as q
from appliance.store.db import Store

log = logging.getLogger(__name__)

MAX_KEY = 500
MAX_NOTE = 2000


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _uuid(value: uuid.UUID | str, what: str) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise NotFound(f"no {what} {value!r}") from None


class AlertService:
    def __init__(
        self,
        store: Store,
        auditor: Auditor,
        *,
        allowed_webhook_hosts: list[str],
        log_path: Path,
        allow_private: bool = False,
        timeout_s: float = 5.0,
        queue_size: int = 1000,
        resolver: Resolver | None = None,
    ) -> None:
        self.store = store
        self.auditor = auditor
        self.allowed_webhook_hosts = list(allowed_webhook_hosts)
        self.log_path = log_path
        self.allow_private = allow_private
        self._resolver = resolver
        self._log_lock = threading.Lock()
        self.sender = WebhookSender(self.list_webhooks, self.check_url, timeout_s=timeout_s,
                                    queue_size=queue_size)

    @property
    def delivered(self) -> int:
        """Successful webhook POSTs (tests and metrics)."""
        return self.sender.delivered

    @property
    def failed(self) -> int:
        return self.sender.failed

    # -- raising and resolving ------------------------------------------------

    def raise_alert(self, kind: str, key: str, message: str, detail: Any = None) -> Alert:
        """Record a breach of (kind, key). Fires (log line, webhooks) only when it is new."""
        if kind not in KINDS:
            raise InvalidInput(f"unknown alert kind {kind!r}: one of {', '.join(KINDS)}")
        if not isinstance(key, str) or not key or len(key) > MAX_KEY:
            raise InvalidInput(f"an alert key is 1 to {MAX_KEY} characters")
        at = _now()
        with self.store.write() as s:
            active = q.find_active(s, kind, key)
            if active is None:
                alert = q.insert_alert(s, kind=kind, key=key, message=message, detail=detail,
                                       at=at)
                fired = True
            else:
                q.bump_alert(s, active.id, message=message, detail=detail, at=at)
                alert = q.get_alert(s, active.id) or active
                fired = False
        if fired:
            log.warning("alert %s %s: %s", kind, key, message)
            self._notify("alert.fired", alert)
        return alert

    def resolve(self, kind: str, key: str) -> int:
        """Close the active breach of (kind, key), if any; the next breach alerts again."""
        with self.store.write() as s:
            ids = q.resolve_active(s, kind, key, _now())
        for alert_id in ids:
            log.info("alert %s %s resolved", kind, key)
            self._write_log("alert.resolved", {"id": alert_id, "kind": kind, "key": key})
        return len(ids)

    def acknowledge(self, alert_id: uuid.UUID | str, by: Principal,
                    note: str | None = None) -> Alert:
        aid = _uuid(alert_id, "alert")
        if note is not None and len(note) > MAX_NOTE:
            raise InvalidInput(f"a note has at most {MAX_NOTE} characters")
        with self.store.write() as s:
            before = q.get_alert(s, aid)
            if before is None:
                raise NotFound(f"no alert {alert_id!r}")
            if before.acknowledged_by or before.status not in ("open", "resolved"):
                raise Conflict(f"alert {aid} is already {before.status}"
                               + (f" and acknowledged by {before.acknowledged_by}"
                                  if before.acknowledged_by else ""),
                               detail={"status": before.status})
            q.acknowledge(s, aid, by=by.actor, note=note, at=_now())
            after = q.get_alert(s, aid)
            assert after is not None
            self.auditor.record(
                s, by, "alert.acknowledge", f"alert:{aid}",
                before={"status": before.status, "kind": before.kind, "key": before.key},
                after={"status": after.status, "note": note},
            )
        self._write_log("alert.acknowledged", after)
        return after

    def list_alerts(self, status: str | None = None, *, limit: int = 200) -> list[Alert]:
        """Newest first (by when last seen)."""
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"unknown alert status {status!r}: one of {', '.join(STATUSES)}")
        with self.store.read() as s:
            return q.list_alerts(s, status=status, limit=limit)

    def counts(self) -> dict[str, int]:
        with self.store.read() as s:
            return q.count_by_status(s)

    # -- rule helpers for other services (never raise into the caller) ---------

    def check_metric(self, model: str, version: int, metric: str, value: float | None,
                     threshold: float, *, higher_is_better: bool = True) -> Alert | None:
        """Raise ``metric_below_threshold`` when a live metric breaches, resolve when it clears."""
        if value is None:
            return None
        key = f"{model}:v{version}:{metric}"
        breach = value < threshold if higher_is_better else value > threshold
        if not breach:
            self._safe(self.resolve, "metric_below_threshold", key)
            return None
        word = "below" if higher_is_better else "above"
        return self._safe(
            self.raise_alert, "metric_below_threshold", key,
            f"{model} v{version}: live {metric} {value:.4g} is {word} the threshold {threshold:.4g}",
            {"model": model, "version": version, "metric": metric, "value": value,
             "threshold": threshold, "higher_is_better": higher_is_better},
        )

    def check_drift(self, model: str, drifted: list[str], detail: Any = None) -> Alert | None:
        """Raise ``drift`` for a model when any column drifted, resolve when none did."""
        if not drifted:
            self._safe(self.resolve, "drift", model)
            return None
        cols = ", ".join(drifted[:10]) + (" …" if len(drifted) > 10 else "")
        return self._safe(self.raise_alert, "drift", model,
                          f"{model}: drift detected in {len(drifted)} column(s): {cols}",
                          {"model": model, "drifted": drifted, "report": detail})

    def validation_rejected(self, dataset: str, message: str,
                            detail: Any = None) -> Alert | None:
        return self._safe(self.raise_alert, "validation_rejected", dataset,
                          f"{dataset}: a file was rejected: {message}", detail)

    def validation_accepted(self, dataset: str) -> None:
        self._safe(self.resolve, "validation_rejected", dataset)

    def job_failed(self, job: str, message: str, detail: Any = None) -> Alert | None:
        return self._safe(self.raise_alert, "job_failed", job, f"job {job} failed: {message}",
                          detail)

    def job_succeeded(self, job: str) -> None:
        self._safe(self.resolve, "job_failed", job)

    def _safe(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception:
            log.exception("alerting failed for %s", args[:2])
            return None

    # -- webhooks ---------------------------------------------------------------

    def check_url(self, url: str) -> WebhookTarget:
        return check_webhook_url(url, self.allowed_webhook_hosts,
                                 allow_private=self.allow_private, resolve=self._resolver)

    def add_webhook(self, url: str, by: Principal) -> Webhook:
        target = self.check_url(url)
        with self.store.write() as s:
            if q.find_webhook_by_url(s, target.url) is not None:
                raise Conflict("this webhook is already registered", detail={"host": target.host})
            row = q.add_webhook(s, url=target.url, created_by=by.actor, at=_now())
            self.auditor.record(s, by, "webhook.add", f"webhook:{row.id}",
                                after={"url": redact(target.url)})
        return row

    def remove_webhook(self, webhook_id: uuid.UUID | str, by: Principal) -> Webhook:
        wid = _uuid(webhook_id, "webhook")
        with self.store.write() as s:
            row = q.get_webhook(s, wid)
            if row is None:
                raise NotFound(f"no webhook {webhook_id!r}")
            q.delete_webhook(s, wid)
            self.auditor.record(s, by, "webhook.remove", f"webhook:{wid}",
                                before={"url": redact(row.url)})
        return row

    def list_webhooks(self) -> list[Webhook]:
        with self.store.read() as s:
            return q.list_webhooks(s)

    # -- channels ---------------------------------------------------------------

    def _notify(self, event: str, alert: Alert) -> None:
        self.sender.send(self._write_log(event, alert))

    def _write_log(self, event: str, alert: Alert | dict[str, Any]) -> dict[str, Any]:
        """Append one JSON line ``{"event", "at", "alert"}``; the payload webhooks get."""
        body = alert.model_dump(mode="json") if isinstance(alert, Alert) else alert
        payload = {"event": event, "at": _now().isoformat(), "alert": body}
        try:
            line = json.dumps(payload, default=str)
            with self._log_lock:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with self.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
        except (OSError, TypeError, ValueError):
            log.exception("cannot append to the alert log %s", self.log_path)
        return payload

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until queued webhook deliveries are done (tests, shutdown). True when drained."""
        return self.sender.flush(timeout)

    def close(self, timeout: float = 5.0) -> None:
        self.sender.close(timeout)
