"""The in-process event bus: typed events to their subscribers, and a failing subscriber
never breaks the publisher."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from appliance import events as bus_module
from appliance.domain import events as ev
from appliance.events import EventBus


def test_publish_event_calls_its_subscribers_in_order() -> None:
    bus, seen = EventBus(), []
    bus.subscribe(ev.VersionAccepted, lambda e: seen.append(("a", e.version)))
    bus.subscribe(ev.VersionAccepted, lambda e: seen.append(("b", e.version)))
    bus.subscribe(ev.AliasMoved, lambda e: seen.append(("alias", e.model)))
    bus.publish(ev.VersionAccepted("customers", 3))
    assert seen == [("a", 3), ("b", 3)]


def test_publish_event_reaches_subscribers_of_its_base_class() -> None:
    @dataclasses.dataclass(frozen=True)
    class Special(ev.VersionAccepted):
        why: str = "x"

    bus, seen = EventBus(), []
    bus.subscribe(ev.VersionAccepted, seen.append)
    bus.subscribe(Special, seen.append)
    bus.publish(Special("d", 1))
    assert len(seen) == 2


def test_publish_event_without_subscribers_does_nothing() -> None:
    EventBus().publish(ev.IngestFinished("accepted", 0.1))


def test_publish_event_with_a_failing_subscriber_logs_it_and_runs_the_others(
        caplog: pytest.LogCaptureFixture) -> None:
    bus, seen = EventBus(), []

    def broken(e: ev.JobFinished) -> None:
        raise RuntimeError("alerting is down")

    bus.subscribe(ev.JobFinished, broken)
    bus.subscribe(ev.JobFinished, seen.append)
    event = ev.JobFinished("train.churn", "train", "failed", 1.0, error="boom")
    with caplog.at_level(logging.ERROR, logger=bus_module.__name__):
        bus.publish(event)  # never raises into the publisher
    assert seen == [event]
    assert "JobFinished" in caplog.text and "alerting is down" in caplog.text


def test_events_are_frozen() -> None:
    event = ev.AliasMoved("churn", "champion", 2, 1, "set")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.version = 3  # type: ignore[misc]


def test_events_module_docstring_lists_every_event() -> None:
    events = [name for name, obj in vars(ev).items()
              if dataclasses.is_dataclass(obj) and obj.__module__ == ev.__name__]
    assert events and all(name in (ev.__doc__ or "") for name in events)
