"""Alerts on a real store: once per breach, audited acknowledgement, SSRF-fenced webhooks."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from appliance.domain.principal import SYSTEM, Principal
from appliance.domain.roles import Role
from appliance.errors import Conflict, InvalidInput, NotFound
from appliance.monitor.alerts import AlertService

OPERATOR = Principal(username="olga", role=Role.operator)
PUBLIC_IP = "93.184.216.34"


def fake_dns(table: dict[str, str]) -> Any:
    """A getaddrinfo stand-in: the machine's edge, so DNS answers are scripted."""
    def resolve(host: str, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        ip = table[host]
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (ip, port or 0))]
    return resolve


@pytest.fixture
def alerts(appliance_app: Any, tmp_path: Path) -> Iterator[AlertService]:
    svc = AlertService(appliance_app.store, appliance_app.auditor,
                       allowed_webhook_hosts=["allowed.example"],
                       log_path=tmp_path / "logs" / "alerts.jsonl",
                       resolver=fake_dns({"allowed.example": PUBLIC_IP}))
    yield svc
    svc.close()


def log_events(svc: AlertService) -> list[str]:
    if not svc.log_path.exists():
        return []
    return [json.loads(line)["event"] for line in svc.log_path.read_text().splitlines()]


# -- once per breach ---------------------------------------------------------------


def test_an_alert_fires_once_per_breach_and_again_after_resolve(alerts: AlertService) -> None:
    for i in range(3):
        alerts.raise_alert("drift", "churn", f"drift #{i}", {"poll": i})
    (alert,) = alerts.list_alerts()
    assert alert.count == 3 and alert.status == "open"
    assert alert.message == "drift #2" and alert.detail == {"poll": 2}
    assert log_events(alerts) == ["alert.fired"]

    assert alerts.resolve("drift", "churn") == 1
    assert alerts.resolve("drift", "churn") == 0
    again = alerts.raise_alert("drift", "churn", "drift again")
    assert again.count == 1 and again.id != alert.id
    assert [a.status for a in alerts.list_alerts()] == ["open", "resolved"]
    assert len(alerts.list_alerts("resolved")) == 1
    assert log_events(alerts) == ["alert.fired", "alert.resolved", "alert.fired"]


def test_different_keys_are_different_breaches(alerts: AlertService) -> None:
    alerts.raise_alert("job_failed", "nightly", "boom")
    alerts.raise_alert("job_failed", "weekly", "boom")
    alerts.raise_alert("drift", "nightly", "shift")
    assert len(alerts.list_alerts("open")) == 3


def test_unknown_kind_and_status_are_refused(alerts: AlertService) -> None:
    with pytest.raises(InvalidInput, match="unknown alert kind"):
        alerts.raise_alert("cpu_hot", "x", "y")
    with pytest.raises(InvalidInput, match="unknown alert status"):
        alerts.list_alerts("closed")


def test_acknowledge_is_audited_and_the_breach_does_not_refire(
        alerts: AlertService, appliance_app: Any) -> None:
    alert = alerts.raise_alert("validation_rejected", "customers", "bad file")
    acked = alerts.acknowledge(alert.id, OPERATOR, "looking into it")
    assert acked.status == "acknowledged" and acked.acknowledged_by == "olga"
    event = appliance_app.auditor.recent(limit=1)[0]
    assert event.action == "alert.acknowledge" and event.actor == "olga"
    assert event.target == f"alert:{alert.id}"
    assert event.after == {"status": "acknowledged", "note": "looking into it"}
    assert appliance_app.auditor.verify().ok

    still = alerts.raise_alert("validation_rejected", "customers", "bad file again")
    assert still.id == alert.id and still.count == 2
    assert still.status == "acknowledged"
    assert log_events(alerts) == ["alert.fired", "alert.acknowledged"]

    with pytest.raises(Conflict):
        alerts.acknowledge(alert.id, OPERATOR)
    with pytest.raises(NotFound):
        alerts.acknowledge("00000000-0000-0000-0000-000000000000", OPERATOR)
    with pytest.raises(NotFound):
        alerts.acknowledge("not-a-uuid", OPERATOR)


def test_rule_helpers_raise_and_resolve(alerts: AlertService) -> None:
    assert alerts.check_metric("churn", 1, "accuracy", 0.91, 0.8) is None
    fired = alerts.check_metric("churn", 1, "accuracy", 0.62, 0.8)
    assert fired is not None and fired.kind == "metric_below_threshold"
    assert fired.key == "churn:v1:accuracy"
    again = alerts.check_metric("churn", 1, "accuracy", 0.61, 0.8)
    assert again is not None and again.count == 2
    alerts.check_metric("churn", 1, "accuracy", 0.85, 0.8)
    assert alerts.list_alerts("open") == []
    assert alerts.check_metric("churn", 1, "rmse", 9.0, 5.0, higher_is_better=False) is not None
    assert alerts.check_metric("churn", 1, "accuracy", None, 0.8) is None

    alerts.check_drift("churn", ["tenure", "plan"], {"p": 0.001})
    alerts.validation_rejected("customers", "missing column plan")
    alerts.job_failed("nightly", "out of memory")
    assert {a.kind for a in alerts.list_alerts("open")} == {
        "metric_below_threshold", "drift", "validation_rejected", "job_failed"}
    alerts.check_drift("churn", [])
    alerts.validation_accepted("customers")
    alerts.job_succeeded("nightly")
    assert {a.kind for a in alerts.list_alerts("open")} == {"metric_below_threshold"}


def test_hooks_never_raise_into_the_caller(alerts: AlertService) -> None:
    assert alerts.job_failed("x" * 1000, "too long a key") is None


# -- webhook URL rules (SSRF) ------------------------------------------------------


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1/hook", "not on the allowlist"),
    ("http://169.254.169.254/latest/meta-data", "not on the allowlist"),
    ("http://localhost:8080", "not on the allowlist"),
    ("https://evil.example/hook", "not on the allowlist"),
    ("https://allowed.example.evil.example/hook", "not on the allowlist"),
    ("ftp://allowed.example/x", "http or https"),
    ("file:///etc/passwd", "http or https"),
    ("http://user:pw@allowed.example/", "credentials"),
    ("http://allowed.example@evil.example/", "credentials"),
    ("http://allowed.example\\@evil.example/", "backslashes"),
    ("http://allowed.example:99999/", "invalid port"),
    ("http:///nohost", "needs a host"),
    ("", "needs a URL"),
])
def test_webhooks_outside_the_rules_are_refused(alerts: AlertService, url: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        alerts.add_webhook(url, SYSTEM)
    assert alerts.list_webhooks() == []


@pytest.mark.parametrize("host, ip, reason", [
    ("127.0.0.1", None, "loopback"),
    ("169.254.169.254", None, "link-local"),
    ("localhost", "127.0.0.1", "loopback"),
    ("metadata.internal", "169.254.169.254", "link-local"),
    ("intranet.example", "10.1.2.3", "private"),
    ("router.example", "192.168.0.1", "private"),
    ("v6.example", "::1", "loopback"),
    ("mapped.example", "::ffff:127.0.0.1", "loopback"),
    ("ula.example", "fd00::1", "private"),
    ("ll6.example", "fe80::1", "link-local"),
    ("zero.example", "0.0.0.0", "unspecified"),
    ("cgnat.example", "100.64.0.1", "not globally routable"),
])
def test_allowlisted_hosts_on_non_public_addresses_are_refused(
        appliance_app: Any, tmp_path: Path, host: str, ip: str | None, reason: str) -> None:
    svc = AlertService(appliance_app.store, appliance_app.auditor, allowed_webhook_hosts=[host],
                       log_path=tmp_path / "a.jsonl", resolver=fake_dns({host: ip or host}))
    with pytest.raises(InvalidInput, match=reason):
        svc.add_webhook(f"http://{host}/hook", SYSTEM)


def test_an_allowlisted_host_that_resolves_privately_is_refused(
        alerts: AlertService, appliance_app: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", fake_dns({"allowed.example": "10.0.0.5"}))
    svc = AlertService(appliance_app.store, appliance_app.auditor,
                       allowed_webhook_hosts=["Allowed.Example."], log_path=tmp_path / "a.jsonl")
    with pytest.raises(InvalidInput, match=r"resolves to 10\.0\.0\.5, a private address"):
        svc.add_webhook("https://allowed.example/hook", SYSTEM)


def test_metadata_stays_refused_even_when_private_addresses_are_allowed(
        appliance_app: Any, tmp_path: Path) -> None:
    svc = AlertService(appliance_app.store, appliance_app.auditor,
                       allowed_webhook_hosts=["169.254.169.254", "meta.example"],
                       log_path=tmp_path / "a.jsonl", allow_private=True,
                       resolver=fake_dns({"meta.example": "169.254.169.254"}))
    for url in ("http://169.254.169.254/latest/meta-data", "http://meta.example/"):
        with pytest.raises(InvalidInput, match="link-local"):
            svc.add_webhook(url, SYSTEM)


def test_unresolvable_hosts_are_refused(appliance_app: Any, tmp_path: Path) -> None:
    svc = AlertService(appliance_app.store, appliance_app.auditor,
                       allowed_webhook_hosts=["gone.example"], log_path=tmp_path / "a.jsonl",
                       resolver=fake_dns({}))
    with pytest.raises(InvalidInput, match="cannot be resolved"):
        svc.add_webhook("https://gone.example/", SYSTEM)


def test_webhook_add_and_remove_are_audited_without_the_secret_path(
        alerts: AlertService, appliance_app: Any) -> None:
    hook = alerts.add_webhook("https://allowed.example/services/T000/SECRET", SYSTEM)
    assert appliance_app.auditor.recent(limit=1)[0].after == {"url": "https://allowed.example/…"}
    with pytest.raises(Conflict):
        alerts.add_webhook("https://allowed.example/services/T000/SECRET", SYSTEM)
    assert [h.id for h in alerts.list_webhooks()] == [hook.id]
    alerts.remove_webhook(hook.id, SYSTEM)
    event = appliance_app.auditor.recent(limit=1)[0]
    assert event.action == "webhook.remove" and "SECRET" not in event.model_dump_json()
    with pytest.raises(NotFound):
        alerts.remove_webhook(hook.id, SYSTEM)
    assert alerts.list_webhooks() == []


def test_dns_is_checked_again_at_delivery(appliance_app: Any, tmp_path: Path) -> None:
    answers = {"allowed.example": PUBLIC_IP}
    svc = AlertService(appliance_app.store, appliance_app.auditor,
                       allowed_webhook_hosts=["allowed.example"], log_path=tmp_path / "a.jsonl",
                       resolver=fake_dns(answers))
    svc.add_webhook("https://allowed.example/hook", SYSTEM)
    answers["allowed.example"] = "127.0.0.1"  # DNS rebinding after registration
    svc.raise_alert("drift", "churn", "shift")
    assert svc.flush()
    assert (svc.delivered, svc.failed) == (0, 1)
    svc.close()


# -- delivery to a real receiver ----------------------------------------------------


class Receiver:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"path": self.path, "host": self.headers["Host"],
                                 "body": json.loads(body)})
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                else:
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_an_allowed_receiver_gets_the_alert_once_per_breach(
        appliance_app: Any, tmp_path: Path, receiver: Receiver) -> None:
    svc = AlertService(appliance_app.store, appliance_app.auditor,
                       allowed_webhook_hosts=["127.0.0.1", "localhost"],
                       log_path=tmp_path / "a.jsonl", allow_private=True,
                       resolver=fake_dns({"localhost": "127.0.0.1"}))
    svc.add_webhook(f"http://127.0.0.1:{receiver.port}/hook", SYSTEM)
    svc.add_webhook(f"http://localhost:{receiver.port}/named", SYSTEM)
    for _ in range(3):
        svc.raise_alert("metric_below_threshold", "churn:v1:accuracy", "accuracy 0.6 < 0.8")
    assert svc.flush()
    assert sorted(r["path"] for r in receiver.requests) == ["/hook", "/named"]
    named = next(r for r in receiver.requests if r["path"] == "/named")
    assert named["host"] == f"localhost:{receiver.port}"  # pinned IP, original Host header
    body = receiver.requests[0]["body"]
    assert body["event"] == "alert.fired"
    assert body["alert"]["kind"] == "metric_below_threshold"
    assert body["alert"]["key"] == "churn:v1:accuracy" and body["alert"]["count"] == 1

    svc.resolve("metric_below_threshold", "churn:v1:accuracy")
    assert svc.flush() and len(receiver.requests) == 2  # resolving sends nothing
    svc.raise_alert("metric_below_threshold", "churn:v1:accuracy", "again")
    assert svc.flush()
    assert len(receiver.requests) == 4 and (svc.delivered, svc.failed) == (4, 0)
    svc.close()


def test_redirects_are_not_followed_and_failures_never_reach_the_caller(
        appliance_app: Any, tmp_path: Path, receiver: Receiver) -> None:
    svc = AlertService(appliance_app.store, appliance_app.auditor,
                       allowed_webhook_hosts=["127.0.0.1"], log_path=tmp_path / "a.jsonl",
                       allow_private=True, timeout_s=1.0)
    svc.add_webhook(f"http://127.0.0.1:{receiver.port}/redirect", SYSTEM)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    svc.add_webhook(f"http://127.0.0.1:{dead_port}/nobody-home", SYSTEM)
    alert = svc.raise_alert("job_failed", "nightly", "boom")
    assert alert.count == 1
    assert svc.flush()
    assert [r["path"] for r in receiver.requests] == ["/redirect"]
    assert (svc.delivered, svc.failed) == (0, 2)
    svc.close()


def test_acknowledge_a_breach_that_cleared_before_anyone_saw_it(alerts: AlertService) -> None:
    fired = alerts.raise_alert("validation_rejected", "customers", "a file was rejected")
    alerts.validation_accepted("customers")  # the next file was fine: the breach cleared
    resolved = alerts.list_alerts("resolved")[0]
    assert resolved.id == fired.id and resolved.acknowledged_by is None
    acked = alerts.acknowledge(fired.id, OPERATOR, "saw the broken export")
    assert acked.status == "resolved" and acked.acknowledged_by == "olga"
    assert acked.note == "saw the broken export"
    with pytest.raises(Conflict, match="acknowledged by olga"):
        alerts.acknowledge(fired.id, OPERATOR)
