"""The password check behind ``POST /auth/token``: throttled, and audited when it fails.

Failed logins are audited as ``auth.login_failed`` with the name tried,
the client address and why (never the password); a login refused by the
back-off (:mod:`appliance.auth.throttle`) is only logged, so a flood of
them cannot fill the audit log. The per-address limit skips loopback: the
console and a reverse proxy on the host reach the API from there, and
counting them as one address would throttle everyone behind them (each
user is still throttled by name). The CLI never logs in with a password:
it sends an API token, or opens the store itself when no server runs, so
no back-off can lock the host's admin out.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from appliance.audit import Auditor
from appliance.auth.throttle import LoginThrottle
from appliance.domain.names import USERNAME
from appliance.errors import StoreUnavailable, Throttled
from appliance.store.db import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginLimits:
    per_user: int = 5
    per_address: int = 20
    max_delay_seconds: float = 300.0


class LoginGuard:
    def __init__(self, store: Store, auditor: Auditor, limits: LoginLimits) -> None:
        self.store = store
        self.auditor = auditor
        self.limits = limits
        self.throttle = LoginThrottle(max_delay=limits.max_delay_seconds)

    def keys(self, username: str, client: str | None) -> list[tuple[str, int]]:
        keys = [(f"user:{username[:64]}", self.limits.per_user)]
        if client and not _is_loopback(client):
            keys.append((f"address:{client}", self.limits.per_address))
        return keys

    def begin(self, username: str, client: str | None) -> list[tuple[str, int]]:
        """Let an attempt go on, or raise :class:`Throttled` before any password is hashed."""
        keys = self.keys(username, client)
        wait = self.throttle.attempt(keys)
        if wait > 0:
            log.warning("login for %r from %s refused for %.0f s more: too many failures",
                        username[:64], client or "?", wait)
            raise Throttled(f"too many failed logins: try again in {wait:.0f} s",
                            retry_after=wait)
        return keys

    def succeeded(self, keys: list[tuple[str, int]]) -> None:
        self.throttle.succeeded(keys, forget=keys[0][0])

    def failed(self, username: str, client: str | None, reason: str) -> None:
        """Audit one failed login: who was tried, from where, why, and the failures so far."""
        failures = self.throttle.failures(f"user:{username[:64]}")
        named = USERNAME.fullmatch(username) is not None
        after = {"username": username[:64], "client": client, "reason": reason,
                 "failures": failures}
        if failures >= self.limits.per_user:
            log.warning("%d failed logins in a row for %r (last from %s)", failures,
                        username[:64], client or "?")
        try:
            with self.store.write() as s:
                self.auditor.record(s, "anonymous", "auth.login_failed",
                                    f"user:{username if named else '?'}", after=after)
        except StoreUnavailable:  # a degraded store: the log line is all there can be
            log.warning("failed login for %r from %s (%s) not audited: the store is read-only",
                        username[:64], client or "?", reason)


def _is_loopback(client: str) -> bool:
    try:
        return ipaddress.ip_address(client).is_loopback
    except ValueError:
        return False
