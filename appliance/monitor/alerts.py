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
one JSON line appended to ``log_path``, and a POST to every registered webhook.

Webhooks are the only place the server fetches a user-given URL (DESIGN §6),
so they are fenced in:

* scheme ``http`` or ``https`` only; no userinfo (``user:pw@``), no backslashes,
  no whitespace or control characters, at most 2048 characters;
* the host must be on the admin allowlist (``APPLIANCE_WEBHOOK_ALLOWLIST``),
  compared exactly (case-insensitive, trailing dot ignored);
* every address the host resolves to must be globally routable. Loopback,
  private, CGNAT, reserved and similar addresses are refused unless
  ``allow_private`` is set; link-local (169.254.0.0/16 with the cloud metadata
  endpoint, fe80::/10), unspecified and multicast are refused even then;
* checked at registration and again at every delivery (DNS can change), and
  the delivery connects to the very address that was checked (the URL's host
  is pinned to it, with ``Host`` and TLS SNI set to the name), so a rebinding
  DNS answer between check and connect cannot redirect it;
* redirects are not followed; a short timeout; no proxy from the environment.

Non-default ports are allowed: the allowlisted host is the trust boundary, and
receivers commonly listen on 8080/8443.

Delivery runs on one background thread fed by a bounded queue: the caller
never waits on the network and never sees a delivery error (they are logged).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from appliance.audit import Auditor
from appliance.domain.principal import Principal
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.store import alerts as q
from appliance.store.db import Store

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

KINDS = ("drift", "metric_below_threshold", "validation_rejected", "job_failed")
STATUSES = q.STATUSES
MAX_URL = 2048
MAX_KEY = 500
MAX_NOTE = 2000

Resolver = Callable[..., list[Any]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- webhook URL checks ---------------------------------------------------------


@dataclass(frozen=True)
class WebhookTarget:
    url: str
    scheme: str
    host: str
    netloc: str
    port: int
    addresses: tuple[IPAddress, ...]


def _norm_host(host: str) -> str:
    return host.strip().lower().rstrip(".").strip("[]")


def _refusal(ip: IPAddress, *, allow_private: bool) -> str | None:
    """Why this address may not receive a webhook, or None when it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    # never, whatever the settings: cloud metadata lives at 169.254.169.254
    if ip.is_link_local:
        return "link-local"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if allow_private:
        return None
    if ip.is_loopback:
        return "loopback"
    if ip.is_private:
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not globally routable"
    return None


def check_webhook_url(
    url: str,
    allowed_hosts: list[str] | set[str] | tuple[str, ...],
    *,
    allow_private: bool = False,
    resolve: Resolver | None = None,
) -> WebhookTarget:
    """Validate a webhook URL (scheme, allowlist, resolved addresses) or raise InvalidInput."""
    if not isinstance(url, str) or not url:
        raise InvalidInput("a webhook needs a URL")
    if len(url) > MAX_URL:
        raise InvalidInput(f"a webhook URL has at most {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url) or "\\" in url:
        raise InvalidInput("a webhook URL may not hold whitespace, control characters "
                           "or backslashes")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidInput(f"a webhook URL must use http or https, not {parts.scheme or 'none'!r}",
                           detail={"url": url})
    if "@" in parts.netloc:
        raise InvalidInput("a webhook URL may not carry credentials (user:password@host)")
    if not parts.hostname:
        raise InvalidInput("a webhook URL needs a host", detail={"url": url})
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise InvalidInput("a webhook URL has an invalid port", detail={"url": url}) from None
    host = _norm_host(parts.hostname)
    allowed = {_norm_host(h) for h in allowed_hosts if h and h.strip()}
    if host not in allowed:
        raise InvalidInput(
            f"webhook host {host!r} is not on the allowlist; an admin sets "
            "APPLIANCE_WEBHOOK_ALLOWLIST",
            detail={"host": host, "allowed": sorted(allowed)},
        )
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(host)]
    except ValueError:
        addresses = _resolve(host, port, resolve or socket.getaddrinfo)
    for ip in addresses:
        reason = _refusal(ip, allow_private=allow_private)
        if reason:
            raise InvalidInput(
                f"webhook host {host!r} resolves to {ip}, a {reason} address; "
                "webhooks may only reach public addresses",
                detail={"host": host, "address": str(ip), "reason": reason},
            )
    return WebhookTarget(url=url, scheme=scheme, host=host, netloc=parts.netloc, port=port,
                         addresses=tuple(addresses))


def _resolve(host: str, port: int, resolve: Resolver) -> list[IPAddress]:
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InvalidInput(f"webhook host {host!r} cannot be resolved: {exc}",
                           detail={"host": host}) from None
    out: list[IPAddress] = []
    for info in infos:
        raw = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 scope id
        try:
            ip = ipaddress.ip_address(raw)
        except ValueError:
            raise InvalidInput(f"webhook host {host!r} resolved to an unreadable address",
                               detail={"host": host}) from None
        if ip not in out:
            out.append(ip)
    if not out:
        raise InvalidInput(f"webhook host {host!r} resolves to no address", detail={"host": host})
    return out


def redact(url: str) -> str:
    """scheme://host[:port]/… : webhook paths often hold a secret (Slack, Teams)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


# -- the service ------------------------------------------------------------------


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _iso(v: Any) -> Any:
    return v.isoformat() if isinstance(v, dt.datetime) else v


def alert_public(a: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) for k, v in a.items()}


def _uuid(value: str, what: str) -> str:
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
        self.timeout_s = timeout_s
        self._resolver = resolver
        self._log_lock = threading.Lock()
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=queue_size)
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self._closed = False
        self.delivered = 0  # successful webhook POSTs, for tests and metrics
        self.failed = 0

    # -- raising and resolving ------------------------------------------------

    def raise_alert(self, kind: str, key: str, message: str,
                    detail: Any = None) -> dict[str, Any]:
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
                q.bump_alert(s, active["id"], message=message, detail=detail, at=at)
                alert = q.get_alert(s, active["id"]) or active
                fired = False
        public = alert_public(alert)
        if fired:
            log.warning("alert %s %s: %s", kind, key, message)
            self._notify("alert.fired", public)
        return public

    def resolve(self, kind: str, key: str) -> int:
        """Close the active breach of (kind, key), if any; the next breach alerts again."""
        with self.store.write() as s:
            ids = q.resolve_active(s, kind, key, _now())
        for alert_id in ids:
            log.info("alert %s %s resolved", kind, key)
            self._write_log("alert.resolved", {"id": alert_id, "kind": kind, "key": key})
        return len(ids)

    def acknowledge(self, alert_id: str, by: Principal, note: str | None = None) -> dict[str, Any]:
        aid = _uuid(alert_id, "alert")
        if note is not None and len(note) > MAX_NOTE:
            raise InvalidInput(f"a note has at most {MAX_NOTE} characters")
        with self.store.write() as s:
            before = q.get_alert(s, aid)
            if before is None:
                raise NotFound(f"no alert {alert_id!r}")
            if before["acknowledged_by"] or before["status"] not in ("open", "resolved"):
                raise Conflict(f"alert {aid} is already {before['status']}"
                               + (f" and acknowledged by {before['acknowledged_by']}"
                                  if before["acknowledged_by"] else ""),
                               detail={"status": before["status"]})
            q.acknowledge(s, aid, by=by.actor, note=note, at=_now())
            after = q.get_alert(s, aid)
            assert after is not None
            self.auditor.record(
                s, by, "alert.acknowledge", f"alert:{aid}",
                before={"status": before["status"], "kind": before["kind"], "key": before["key"]},
                after={"status": after["status"], "note": note},
            )
        public = alert_public(after)
        self._write_log("alert.acknowledged", public)
        return public

    def list_alerts(self, status: str | None = None, *, limit: int = 200) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise InvalidInput(f"unknown alert status {status!r}: one of {', '.join(STATUSES)}")
        with self.store.read() as s:
            return [alert_public(a) for a in q.list_alerts(s, status=status, limit=limit)]

    def counts(self) -> dict[str, int]:
        with self.store.read() as s:
            return q.count_by_status(s)

    # -- rule helpers for other services (never raise into the caller) ---------

    def check_metric(self, model: str, version: int, metric: str, value: float | None,
                     threshold: float, *, higher_is_better: bool = True) -> dict[str, Any] | None:
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

    def check_drift(self, model: str, drifted: list[str],
                    detail: Any = None) -> dict[str, Any] | None:
        """Raise ``drift`` for a model when any column drifted, resolve when none did."""
        if not drifted:
            self._safe(self.resolve, "drift", model)
            return None
        cols = ", ".join(drifted[:10]) + (" …" if len(drifted) > 10 else "")
        return self._safe(self.raise_alert, "drift", model,
                          f"{model}: drift detected in {len(drifted)} column(s): {cols}",
                          {"model": model, "drifted": drifted, "report": detail})

    def validation_rejected(self, dataset: str, message: str,
                            detail: Any = None) -> dict[str, Any] | None:
        return self._safe(self.raise_alert, "validation_rejected", dataset,
                          f"{dataset}: a file was rejected: {message}", detail)

    def validation_accepted(self, dataset: str) -> None:
        self._safe(self.resolve, "validation_rejected", dataset)

    def job_failed(self, job: str, message: str, detail: Any = None) -> dict[str, Any] | None:
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

    def add_webhook(self, url: str, by: Principal) -> dict[str, Any]:
        target = self.check_url(url)
        with self.store.write() as s:
            if q.find_webhook_by_url(s, target.url) is not None:
                raise Conflict("this webhook is already registered", detail={"host": target.host})
            row = q.add_webhook(s, url=target.url, created_by=by.actor, at=_now())
            self.auditor.record(s, by, "webhook.add", f"webhook:{row['id']}",
                                after={"url": redact(target.url)})
        return alert_public(row)

    def remove_webhook(self, webhook_id: str, by: Principal) -> dict[str, Any]:
        wid = _uuid(webhook_id, "webhook")
        with self.store.write() as s:
            row = q.get_webhook(s, wid)
            if row is None:
                raise NotFound(f"no webhook {webhook_id!r}")
            q.delete_webhook(s, wid)
            self.auditor.record(s, by, "webhook.remove", f"webhook:{wid}",
                                before={"url": redact(row["url"])})
        return alert_public(row)

    def list_webhooks(self) -> list[dict[str, Any]]:
        with self.store.read() as s:
            return [alert_public(w) for w in q.list_webhooks(s)]

    # -- channels ---------------------------------------------------------------

    def _notify(self, event: str, alert: dict[str, Any]) -> None:
        payload = self._write_log(event, alert)
        if self._closed:
            return
        self._ensure_worker()
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            log.error("alert webhook queue is full; %s %s not sent", event, alert.get("id"))

    def _write_log(self, event: str, alert: dict[str, Any]) -> dict[str, Any]:
        payload = {"event": event, "at": _now().isoformat(), "alert": alert}
        try:
            line = json.dumps(payload, default=str)
            with self._log_lock:
                self.log_path.parent.mkdir(parents=True, exist_ok=True)
                with self.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(line + "\n")
        except (OSError, TypeError, ValueError):
            log.exception("cannot append to the alert log %s", self.log_path)
        return payload

    def _ensure_worker(self) -> None:
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run, name="alert-webhooks",
                                                daemon=True)
                self._worker.start()

    def _run(self) -> None:
        import httpx  # only when a webhook is sent: keeps it off start-up

        with httpx.Client(timeout=self.timeout_s, follow_redirects=False,
                          trust_env=False) as client:
            while True:
                payload = self._queue.get()
                try:
                    if payload is None:
                        return
                    self._deliver_all(client, payload)
                except Exception:
                    log.exception("alert webhook delivery failed")
                finally:
                    self._queue.task_done()

    def _deliver_all(self, client: httpx.Client, payload: dict[str, Any]) -> None:
        try:
            hooks = self.list_webhooks()
        except Exception:
            log.exception("cannot read the webhook list")
            return
        body = json.dumps(payload, default=str).encode()
        for hook in hooks:
            if self._deliver(client, hook["url"], body):
                self.delivered += 1
            else:
                self.failed += 1

    def _deliver(self, client: httpx.Client, url: str, body: bytes) -> bool:
        import httpx

        try:
            target = self.check_url(url)  # again: DNS and the allowlist may have changed
        except InvalidInput as exc:
            log.warning("alert webhook %s refused at delivery: %s", redact(url), exc.message)
            return False
        # connect to the address just checked, not to a second DNS answer
        pinned = httpx.URL(url).copy_with(host=str(target.addresses[0]))
        headers = {"Host": target.netloc, "Content-Type": "application/json",
                   "User-Agent": "appliance-alerts"}
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            resp = client.post(pinned, content=body, headers=headers, extensions=extensions)
        except httpx.HTTPError as exc:
            log.warning("alert webhook %s failed: %s", redact(url), exc)
            return False
        if not 200 <= resp.status_code < 300:
            log.warning("alert webhook %s answered %d (redirects are not followed)",
                        redact(url), resp.status_code)
            return False
        return True

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until queued deliveries are done (tests, shutdown). True when drained."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self, timeout: float = 5.0) -> None:
        self._closed = True
        worker = self._worker
        if worker is not None and worker.is_alive():
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                return
            worker.join(timeout)
