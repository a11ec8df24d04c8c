"""The audit anchor shared by every host: kept in the object store in scale-out.

One database, several hosts: a host's ``audit.head`` only vouches for what that
host appended, and a new host has none. With the files in an S3-compatible
bucket (``APPLIANCE_OBJECT_STORE``) the anchor lives there too, outside the
database like the file: ``audit/anchor/<seq, 12 digits>`` holding
``{"seq", "hash"}``. Each seq names exactly one event, so the keys fit the
store's write-once rule (two hosts publishing one seq write the same bytes); the
newest key is the anchor. A host publishes the head after each commit from a
background thread (the request does not wait for the bucket; a burst of events
becomes one put of the newest), then deletes the older keys: the folder holds
the newest key or two.

The anchor may lag the table, never lead it (as the file): published after the
commit, and two hosts racing leave the higher seq or a lower one, never a seq
that was not committed. ``read`` takes the newest key; one deleted under it by
another host's tidy-up is looked up again.
"""

from __future__ import annotations

import json
import logging
import re
import threading

from appliance.domain.audit import Anchor
from appliance.errors import ApplianceError, NotFound
from appliance.objects.base import ObjectStore

log = logging.getLogger(__name__)
PREFIX = "audit/anchor"
_KEY = re.compile(r"audit/anchor/(\d{12})")
_HASH = re.compile(r"[0-9a-f]{64}")


def key_of(seq: int) -> str:
    return f"{PREFIX}/{seq:012d}"


class SharedAnchor:
    def __init__(self, objects: ObjectStore) -> None:
        self.objects = objects
        self._pending: tuple[int, str] | None = None
        self._published = -1  # the newest seq this process put
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def location(self) -> str:
        return f"{self.objects.location}/{PREFIX}"

    # -- reading -------------------------------------------------------------------

    def read(self) -> tuple[Anchor | None, str | None]:
        """(anchor, problem) as the file's reader: ``(None, None)`` when none is published."""
        for _ in range(3):
            try:
                keys = sorted(o.key for o in self.objects.list(PREFIX) if _KEY.fullmatch(o.key))
            except ApplianceError as exc:
                return None, f"the shared audit anchor in {self.location} cannot be read: {exc}"
            if not keys:
                return None, None
            try:
                raw = self.objects.get_bytes(keys[-1])
            except NotFound:
                continue  # tidied away by a host that published a newer one: look again
            except ApplianceError as exc:
                return None, f"the shared audit anchor {keys[-1]} cannot be read: {exc}"
            return _parse(raw, int(_KEY.fullmatch(keys[-1]).group(1)), keys[-1])  # type: ignore[union-attr]
        return None, f"the shared audit anchor in {self.location} kept changing while read"

    # -- publishing ----------------------------------------------------------------

    def publish(self, seq: int, digest: str) -> None:
        """Queue ``(seq, digest)`` (a committed head) for the bucket; returns at once."""
        with self._wake:
            if self._closed or (self._pending is not None and self._pending[0] >= seq) \
                    or seq <= self._published:
                return
            self._pending = (seq, digest)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="audit-anchor",
                                                daemon=True)
                self._thread.start()
            self._wake.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until what was queued is in the bucket (or failed); False on timeout."""
        with self._wake:
            return self._wake.wait_for(lambda: self._pending is None, timeout)

    def close(self) -> None:
        self.flush()
        with self._wake:
            self._closed = True
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._pending is not None or self._closed)
                if self._pending is None:
                    return
                seq, digest = self._pending
            self._put(seq, digest)
            with self._wake:
                if self._pending == (seq, digest):
                    self._pending = None
                self._wake.notify_all()

    def _put(self, seq: int, digest: str) -> None:
        key = key_of(seq)
        try:
            self.objects.put_bytes(key, json.dumps({"seq": seq, "hash": digest}).encode())
        except ApplianceError as exc:
            log.error("could not publish the audit anchor (seq %d) to %s: %s; it lags until "
                      "the next event", seq, self.location, exc)
            return
        self._published = max(self._published, seq)
        try:  # older keys (any host's) are superseded: the folder keeps the newest
            for old in self.objects.list(PREFIX):
                if _KEY.fullmatch(old.key) and old.key < key:
                    self.objects.delete(old.key)
        except ApplianceError as exc:  # a stale key is only clutter: the newest wins
            log.warning("could not tidy the old audit anchors in %s: %s", self.location, exc)


def _parse(raw: bytes, seq_of_key: int, key: str) -> tuple[Anchor | None, str | None]:
    try:
        data = json.loads(raw)
        seq, digest = data["seq"], data["hash"]
    except (ValueError, KeyError, TypeError):
        return None, f"the shared audit anchor {key} is not a {{\"seq\", \"hash\"}} document"
    if not isinstance(seq, int) or isinstance(seq, bool) or seq != seq_of_key \
            or not isinstance(digest, str) or not _HASH.fullmatch(digest):
        return None, f"the shared audit anchor {key} holds no valid seq and sha256 for its key"
    return Anchor(seq, digest), None
