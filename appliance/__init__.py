"""The appliance: an embedded, single-node MLOps system.

The public surface is small on purpose, and everything in it is importable
from here: talk to a running appliance with :class:`ApplianceClient`, build one
in-process from :class:`Settings` with :func:`build` (an :class:`Appliance`),
and catch the errors of :mod:`appliance.errors` (:class:`ApplianceError` and
its subclasses)::

    from appliance import ApplianceClient, NotFound

    with ApplianceClient("http://127.0.0.1:8000", token=token) as client:
        ...

Every other module is an implementation detail, free to move between
releases. The names are resolved lazily (PEP 562 ``__getattr__``), so ``import
appliance`` imports nothing else: the CLI's ``--help``, the console and the
child processes pay only for what they use. tests/test_public_api.py pins the
list and the laziness.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

# name -> the module that defines it (imported on first use, then cached here). No
# TYPE_CHECKING imports of these modules: import-linter would read them as edges from
# every module that imports ``__version__`` (the store, backups) up to the runtime.
_EXPORTS: dict[str, str] = {
    "Appliance": "appliance.runtime",
    "ApplianceClient": "appliance.client",
    "Settings": "appliance.config",
    "build": "appliance.runtime",
    **{name: "appliance.errors" for name in (
        "ApplianceError", "Conflict", "ContractInvalid", "IngestRejected", "InsufficientDisk",
        "InvalidInput", "InvalidName", "NotFound", "Overloaded", "PermissionDenied",
        "RemoteError", "StoreLocked", "StoreUnavailable", "Throttled", "TooLarge",
        "TrainingFailed", "Unauthenticated", "UnprocessableInput",
    )},
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'appliance' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
