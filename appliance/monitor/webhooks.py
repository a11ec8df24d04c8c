"""Alert webhooks: the URL fence, and delivery on one background thread.

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

import ipaddress
import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from appliance.domain.alerts import Webhook
from appliance.errors import InvalidInput

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

MAX_URL = 2048

Resolver = Callable[..., list[Any]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- the URL fence ---------------------------------------------------------------


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


# -- delivery -----------------------------------------------------------------------


class WebhookSender:
    """POSTs each payload to every webhook ``hooks()`` lists, on one daemon thread fed by
    a bounded queue; each URL is fenced again by ``check`` just before it is sent."""

    def __init__(self, hooks: Callable[[], list[Webhook]], check: Callable[[str], WebhookTarget],
                 *, timeout_s: float = 5.0, queue_size: int = 1000) -> None:
        self._hooks = hooks
        self._check = check
        self.timeout_s = timeout_s
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=queue_size)
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self._closed = False
        self.delivered = 0  # successful webhook POSTs, for tests and metrics
        self.failed = 0

    def send(self, payload: dict[str, Any]) -> None:
        """Queue ``payload`` for every webhook; never blocks, never raises."""
        if self._closed:
            return
        self._ensure_worker()
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            alert = payload.get("alert")
            log.error("alert webhook queue is full; %s %s not sent", payload.get("event"),
                      alert.get("id") if isinstance(alert, dict) else None)

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
            hooks = self._hooks()
        except Exception:
            log.exception("cannot read the webhook list")
            return
        body = json.dumps(payload, default=str).encode()
        for hook in hooks:
            if self._deliver(client, hook.url, body):
                self.delivered += 1
            else:
                self.failed += 1

    def _deliver(self, client: httpx.Client, url: str, body: bytes) -> bool:
        import httpx

        try:
            target = self._check(url)  # again: DNS and the allowlist may have changed
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
