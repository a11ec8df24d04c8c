"""The inbox watcher: a polling loop, woken early by inotify hints.

Polling is the source of truth; inotify (where available) only wakes the
loop early and marks files that were renamed into place (IN_MOVED_TO), which
are complete by the drop protocol. The loop never dies from one bad file: it
logs, counts the error in its heartbeat and goes on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Any

from appliance.domain.ingest import Ingest
from appliance.errors import InsufficientDisk
from appliance.ingest import inbox
from appliance.ingest.service import IngestService

log = logging.getLogger(__name__)


class InboxWatcher:
    def __init__(
        self,
        service: IngestService,
        *,
        inbox_dir: Path,
        claimed_dir: Path,
        poll_seconds: float,
        min_age_seconds: float,
    ) -> None:
        self.service = service
        self.inbox_dir = inbox_dir
        self.claimed_dir = claimed_dir
        self.poll_seconds = poll_seconds
        self.scanner = inbox.InboxScanner(inbox_dir, min_age_seconds=min_age_seconds)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._held_back = False
        self.heartbeat: dict[str, Any] = {"last_poll": None, "polls": 0, "errors": 0,
                                          "last_error": None, "inotify": False}

    def start(self) -> None:
        self._stop.clear()  # started again after a stop (a host that regained the lease)
        self.inbox_dir.mkdir(parents=True, exist_ok=True)
        loop = threading.Thread(target=self._loop, name="inbox-watcher", daemon=True)
        self._threads = [loop]
        hints = _InotifyHints.create(self.inbox_dir, self._on_hint)
        if hints is not None:
            self.heartbeat["inotify"] = True
            self._threads.append(
                threading.Thread(target=hints.run, args=(self._stop,), name="inbox-inotify",
                                 daemon=True)
            )
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout)

    def poke(self) -> None:
        self._wake.set()

    def guard(self) -> dict[str, Any]:
        """The scheduled ``inbox.scan``: restart a watcher thread that died, then force a
        full scan now (inotify is only a hint; this is the safety net)."""
        restarted = []
        if not self._stop.is_set():
            for i, thread in enumerate(self._threads):
                if not thread.is_alive():
                    log.error("inbox thread %s died; restarting it", thread.name)
                    fresh = threading.Thread(target=self._loop, name="inbox-watcher",
                                             daemon=True) if thread.name == "inbox-watcher" \
                        else None
                    if fresh is not None:
                        fresh.start()
                        self._threads[i] = fresh
                        restarted.append(thread.name)
            self.poke()
        pending = sum(1 for _ in inbox.pending_claims(self.claimed_dir))
        return {**self.heartbeat, "restarted": restarted, "pending_claims": pending}

    def _on_hint(self, path: Path | None) -> None:
        if path is not None:
            self.scanner.hint_renamed(path)
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # the loop must outlive any one failure
                self.heartbeat["errors"] += 1
                self.heartbeat["last_error"] = repr(exc)
                log.exception("inbox poll failed")
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def run_once(self) -> list[Ingest]:
        results: list[Ingest] = []
        if self._held_back:  # claims the disk guard refused: try again each poll
            self._held_back = False
            results.extend(self.service.finish_claims())
            self._held_back = bool(inbox.pending_claims(self.claimed_dir))
        scan = self.scanner.poll()
        for entry in scan.hostile:
            if self._stop.is_set():
                break
            results.append(self.service.quarantine_entry(entry))
        for dataset, path in scan.ready:
            if self._stop.is_set():
                break
            try:
                claim = inbox.claim(path, dataset, self.claimed_dir)
            except FileNotFoundError:
                continue  # moved away between scan and claim
            try:
                results.append(self.service.ingest_claim(claim))
            except InsufficientDisk as exc:
                self._held_back = True
                log.warning("%s: left in claimed/ until there is room", exc.message)
        self.heartbeat["last_poll"] = time.time()
        self.heartbeat["polls"] += 1
        return results


class _InotifyHints:
    """Watches the inbox and each dataset folder; calls back with renamed paths."""

    def __init__(self, inotify: Any, flags: Any, root: Path, callback: Any) -> None:
        self.inotify = inotify
        self.flags = flags
        self.root = root
        self.callback = callback
        self.wds: dict[int, Path] = {}

    @classmethod
    def create(cls, root: Path, callback: Any) -> _InotifyHints | None:
        try:
            from inotify_simple import INotify, flags
        except ImportError:
            return None
        try:
            hints = cls(INotify(), flags, root, callback)
            hints._watch(root)
            for child in root.iterdir():
                if child.is_dir() and not child.is_symlink():
                    hints._watch(child)
        except OSError:
            return None
        return hints

    def _watch(self, path: Path) -> None:
        f = self.flags
        mask = f.MOVED_TO | f.CREATE | f.CLOSE_WRITE | f.DELETE_SELF
        wd = self.inotify.add_watch(str(path), mask)
        self.wds[wd] = path

    def run(self, stop: threading.Event) -> None:
        f = self.flags
        while not stop.is_set():
            try:
                events = self.inotify.read(timeout=500)
            except OSError:
                return
            for ev in events:
                base = self.wds.get(ev.wd)
                if base is None:
                    continue
                path = base / ev.name if ev.name else base
                if ev.mask & f.ISDIR:
                    if base == self.root and ev.mask & (f.CREATE | f.MOVED_TO):
                        with contextlib.suppress(OSError):
                            self._watch(path)
                    self.callback(None)
                elif ev.mask & f.MOVED_TO and base != self.root:
                    self.callback(path)
                else:
                    self.callback(None)
        with contextlib.suppress(OSError):
            self.inotify.close()
