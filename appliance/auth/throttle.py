"""Slowing down password guessing: exponential back-off per user and per client address.

Each key (``user:<name>``, ``address:<ip>``) counts its failed logins; once
a key has more than its free failures, every further attempt must wait
``2 ** (failures - free)`` seconds after the last failure (1, 2, 4, ... up
to ``max_delay``), and is refused with the time left until then, without
checking the password. A quiet ``window`` after the last failure forgets
the key; a successful login forgets the user's key. An attempt counts as a
failure from the moment it starts (and is taken back if it succeeds), so a
burst of parallel guesses is throttled like a sequence of them.

The state lives in memory: it is lost on restart, which costs an attacker
a restart of the server per few guesses, and it is bounded in size.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_MAX_KEYS = 20_000


@dataclass
class _Failures:
    count: int
    last: float  # monotonic time of the last failure


class LoginThrottle:
    def __init__(self, *, max_delay: float, window: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_delay = max_delay
        self.window = window
        self._clock = clock
        self._keys: OrderedDict[str, _Failures] = OrderedDict()  # least recently failed first
        self._lock = threading.Lock()

    def attempt(self, keys: Sequence[tuple[str, int]]) -> float:
        """Begin an attempt for ``(key, free failures)`` pairs: 0.0 when it may go on (and
        it counts as a failure until :meth:`succeeded`), else the seconds left to wait."""
        now = self._clock()
        with self._lock:
            wait = max((self._wait(key, free, now) for key, free in keys), default=0.0)
            if wait > 0:
                return wait
            for key, _ in keys:
                self._fail(key, now)
            return 0.0

    def succeeded(self, keys: Sequence[tuple[str, int]], *, forget: str) -> None:
        """The attempt was right: take its failure back from every key and forget ``forget``."""
        with self._lock:
            for key, _ in keys:
                entry = self._keys.get(key)
                if entry is not None:
                    entry.count -= 1
                    if entry.count <= 0:
                        del self._keys[key]
            self._keys.pop(forget, None)

    def failures(self, key: str) -> int:
        with self._lock:
            entry = self._keys.get(key)
            return entry.count if entry and self._clock() - entry.last <= self.window else 0

    def _wait(self, key: str, free: int, now: float) -> float:
        entry = self._keys.get(key)
        if entry is None or now - entry.last > self.window:
            return 0.0
        if entry.count < free:
            return 0.0
        delay = min(self.max_delay, 2.0 ** (entry.count - free))
        return max(0.0, entry.last + delay - now)

    def _fail(self, key: str, now: float) -> None:
        entry = self._keys.pop(key, None)
        if entry is None or now - entry.last > self.window:
            entry = _Failures(0, now)
        entry.count += 1
        entry.last = now
        self._keys[key] = entry  # to the end: the most recently failed
        while len(self._keys) > _MAX_KEYS:  # a flood of made-up names cannot grow memory
            self._keys.popitem(last=False)
