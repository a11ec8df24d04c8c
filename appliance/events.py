"""The in-process event bus: services publish typed events, subscribers react.

One :class:`EventBus` per appliance, made by ``appliance.runtime.build``,
which is also the one place that subscribes (the events, their publishers
and their subscribers are listed in ``appliance.domain.events``).

- ``subscribe(EventType, handler)``: handlers are called for events of that
  type (or a subclass), in the order they subscribed.
- ``publish(event)``: synchronous, in the publisher's thread, after the
  publisher's change has committed: when ``publish`` returns, every handler has
  run (an alias move has swapped the serving sessions, a new version has its
  loop queued), which keeps the order of effects what callers and tests see.
  Handlers that must not hold up the publisher hand off to their own thread
  (alert webhooks do).
- A handler that raises is logged with its traceback and skipped; the other
  handlers still run and the publisher never sees the error: a reaction never
  undoes or breaks the change it reacts to.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

log = logging.getLogger(__name__)

E = TypeVar("E")
Handler = Callable[[Any], object]


class EventBus:
    def __init__(self) -> None:
        self._handlers: dict[type, tuple[Handler, ...]] = {}
        self._lock = threading.Lock()

    def subscribe(self, event_type: type[E], handler: Callable[[E], object]) -> None:
        with self._lock:  # copy on write: publishing never takes the lock
            self._handlers[event_type] = (*self._handlers.get(event_type, ()), handler)

    def publish(self, event: object) -> None:
        handlers = self._handlers
        for cls in type(event).__mro__:
            for handler in handlers.get(cls, ()):
                try:
                    handler(event)
                except Exception:
                    log.exception("a subscriber to %s failed (%r)", type(event).__name__,
                                  getattr(handler, "__qualname__", handler))

    def subscribers(self, event_type: type) -> int:
        """How many handlers listen to ``event_type`` (for tests and the docs check)."""
        return len(self._handlers.get(event_type, ()))
