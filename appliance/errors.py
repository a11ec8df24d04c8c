"""One error tree for the whole appliance.

Errors carry data, never HTTP status codes; ``appliance.api.errors`` maps
classes to statuses in one place and the CLI maps them to exit codes::

    ApplianceError
    ├── InvalidInput            a request, name, file or setting is malformed
    │   ├── InvalidName         a user string failed its name pattern
    │   ├── TooLarge            a body, file or batch over its size or count cap
    │   ├── ContractInvalid     a contract document cannot be read as a schema
    │   └── UnprocessableInput  well-formed, but does not fit (a predict body vs a signature)
    ├── NotFound                the named thing does not exist
    ├── Conflict                the request clashes with current state
    ├── Unauthenticated         no or bad credentials
    ├── PermissionDenied        credentials are fine, the role is too small
    ├── Throttled               too many failed attempts: try again after ``retry_after`` s
    ├── IngestRejected          a file was refused (carries a reason code)
    ├── TrainingFailed          a training run ended failed (the run and job run say why)
    ├── StoreLocked             another process owns the store (carries its PID)
    ├── StoreUnavailable        the store cannot be opened or is degraded
    ├── InsufficientDisk        the free-disk guard refused the work
    ├── Overloaded              a bounded queue is full: shed instead of growing memory
    └── RemoteError             the HTTP API answered with an error shape

Errors raised by libraries underneath are translated at the boundary
(``raise X from exc``) so callers only ever catch these.
"""

from __future__ import annotations

from typing import Any


class ApplianceError(Exception):
    """Base class: a message for humans plus structured ``detail`` for machines."""

    kind = "appliance_error"

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        """The one error shape (the API answers it under ``"error"``)."""
        return error_dict(self.kind, self.message, self.detail)


def error_dict(kind: str, message: str, detail: Any = None) -> dict[str, Any]:
    """``{"type", "message", "detail"}``: what ``ApplianceError.to_dict`` answers, also for
    the few errors the API answers that are not ApplianceErrors (a malformed request, an
    unknown route, a host not allowed, an internal error)."""
    return {"type": kind, "message": message, "detail": detail}


class InvalidInput(ApplianceError):
    kind = "invalid_input"


class InvalidName(InvalidInput):
    kind = "invalid_name"


class TooLarge(InvalidInput):
    """Over a size or count cap: a request body, an upload, rows or labels a request, an
    ONNX file. The API answers 413; the JSON keeps ``invalid_input`` with
    ``detail.reason == "too_big"`` (plus the limit or count that was passed)."""

    def __init__(self, message: str, *, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message, detail={"reason": "too_big", **(detail or {})})


class ContractInvalid(InvalidInput):
    kind = "contract_invalid"


class UnprocessableInput(InvalidInput):
    kind = "unprocessable_input"


class NotFound(ApplianceError):
    kind = "not_found"


class Conflict(ApplianceError):
    kind = "conflict"


class Unauthenticated(ApplianceError):
    kind = "unauthenticated"


class PermissionDenied(ApplianceError):
    kind = "permission_denied"


class Throttled(ApplianceError):
    """Refused without looking: too many recent failures (failed logins, per user or address)."""

    kind = "throttled"

    def __init__(self, message: str, *, retry_after: float) -> None:
        seconds = max(1, int(-(-retry_after // 1)))  # whole seconds, rounded up
        super().__init__(message, detail={"retry_after_seconds": seconds})
        self.retry_after = seconds


class IngestRejected(ApplianceError):
    """A file was refused. ``reason`` is a stable machine code (see ``domain.ingest``)."""

    kind = "ingest_rejected"

    def __init__(self, reason: str, message: str, *, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.reason = reason


class TrainingFailed(ApplianceError):
    """A training run failed: the trainer reported an error, died, ran past its deadline or
    failed the parity check, or a loop's run did not succeed. Recorded on the run (and the
    job run) as its error; ``detail`` may name the ``run_id`` or the job ``field``."""

    kind = "training_failed"


class StoreLocked(ApplianceError):
    kind = "store_locked"

    def __init__(self, pid: int | None, path: str) -> None:
        who = f"PID {pid}" if pid else "another process"
        super().__init__(f"store is locked by {who} ({path})", detail={"pid": pid, "path": path})
        self.pid = pid


class StoreUnavailable(ApplianceError):
    kind = "store_unavailable"


class InsufficientDisk(ApplianceError):
    kind = "insufficient_disk"


class Overloaded(ApplianceError):
    kind = "overloaded"


class RemoteError(ApplianceError):
    """An error shape answered by the HTTP API, re-raised on the client side."""

    kind = "remote_error"

    def __init__(self, status: int, kind: str, message: str, *, detail: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.status = status
        self.remote_kind = kind
