"""Where a CLI command runs: against a live server (HTTP) or the store itself.

DESIGN §2: the CLI talks to the API when a server holds the store; otherwise
it opens the store itself (taking the same lock, so a server started
meanwhile fails fast instead of corrupting anything). Both backends expose
the same methods, so each command is written once.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from appliance.client import ApplianceClient
from appliance.config import Settings
from appliance.domain.principal import Principal
from appliance.domain.roles import Role
from appliance.errors import RemoteError, StoreUnavailable, Unauthenticated
from appliance.store.db import ProcessLock

Progress = Callable[[int], None]


class Backend(Protocol):
    where: str

    def datasets(self) -> list[dict[str, Any]]: ...
    def dataset(self, name: str) -> dict[str, Any]: ...
    def versions(self, name: str) -> list[dict[str, Any]]: ...
    def contract(self, name: str) -> dict[str, Any]: ...
    def set_contract(self, name: str, yaml_text: str) -> dict[str, Any]: ...
    def ingest(self, path: Path, dataset: str, progress: Progress | None) -> dict[str, Any]: ...
    def add_user(self, username: str, password: str, role: str) -> dict[str, Any]: ...
    def create_token(self, username: str, name: str, days: float | None) -> dict[str, Any]: ...
    def audit_verify(self) -> dict[str, Any]: ...


class RemoteBackend:
    def __init__(self, client: ApplianceClient, pid: int) -> None:
        self.client = client
        self.where = f"server PID {pid} at {client.base_url}"

    def datasets(self) -> list[dict[str, Any]]:
        return self.client.datasets()

    def dataset(self, name: str) -> dict[str, Any]:
        return self.client.dataset(name)

    def versions(self, name: str) -> list[dict[str, Any]]:
        return self.client.versions(name)

    def contract(self, name: str) -> dict[str, Any]:
        return self.client.contract(name)

    def set_contract(self, name: str, yaml_text: str) -> dict[str, Any]:
        return self.client.set_contract(name, yaml_text)

    def ingest(self, path: Path, dataset: str, progress: Progress | None) -> dict[str, Any]:
        return self.client.upload(path, dataset, progress=progress)

    def add_user(self, username: str, password: str, role: str) -> dict[str, Any]:
        out: dict[str, Any] = self.client.post(
            "/users", json={"username": username, "password": password, "role": role}
        )
        return out

    def create_token(self, username: str, name: str, days: float | None) -> dict[str, Any]:
        out: dict[str, Any] = self.client.post(
            "/tokens", json={"username": username, "name": name, "expires_days": days}
        )
        return out

    def audit_verify(self) -> dict[str, Any]:
        return self.client.audit_verify()


class LocalBackend:
    """Runs services in this process; the caller has the files, so acts as admin."""

    def __init__(self, appliance: Any) -> None:
        self.app = appliance
        self.who = Principal(username=f"local:{_os_user()}", role=Role.admin)
        self.where = f"store {appliance.settings.db_path} (no server running)"

    def datasets(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.app.datasets.list_datasets()
        return out

    def dataset(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = self.app.datasets.show(name)
        return out

    def versions(self, name: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.app.datasets.versions(name)
        return out

    def contract(self, name: str) -> dict[str, Any]:
        out: dict[str, Any] = self.app.datasets.contract(name)
        return out

    def set_contract(self, name: str, yaml_text: str) -> dict[str, Any]:
        out: dict[str, Any] = self.app.datasets.set_contract(name, yaml_text, by=self.who)
        return out

    def ingest(self, path: Path, dataset: str, progress: Progress | None) -> dict[str, Any]:
        with path.open("rb") as fh:
            out: dict[str, Any] = self.app.ingest.ingest_stream(
                fh, file_name=path.name, dataset=dataset, who=self.who, progress=progress
            )
        return out

    def add_user(self, username: str, password: str, role: str) -> dict[str, Any]:
        out: dict[str, Any] = self.app.auth.add_user(username, password, role, by=self.who)
        return out

    def create_token(self, username: str, name: str, days: float | None) -> dict[str, Any]:
        out: dict[str, Any] = self.app.auth.create_token(
            username, name, by=self.who, expires_days=days
        )
        return out

    def audit_verify(self) -> dict[str, Any]:
        out: dict[str, Any] = self.app.auditor.verify()
        return out


@contextmanager
def open_backend(settings: Settings) -> Iterator[Backend]:
    pid = ProcessLock.holder(settings.lock_path)
    if pid is not None:
        token = os.environ.get("APPLIANCE_TOKEN")
        if not token:
            raise Unauthenticated(
                f"a server (PID {pid}) holds the store; set APPLIANCE_TOKEN to a token "
                "(POST /api/v1/auth/token, or `appliance users token`) to talk to it"
            )
        with ApplianceClient(settings.resolved_api_url, token=token, timeout=3600) as client:
            try:
                client.health()
            except RemoteError as exc:
                if exc.status != 0:  # it answered, just not with 200: let the command say why
                    raise
                raise StoreUnavailable(
                    f"a server (PID {pid}) holds the store but does not answer at "
                    f"{settings.resolved_api_url} ({exc.message}); set APPLIANCE_PORT or "
                    "APPLIANCE_API_URL to where it listens"
                ) from exc
            yield RemoteBackend(client, pid)
        return
    from appliance.runtime import build

    appliance = build(settings)
    try:
        yield LocalBackend(appliance)
    finally:
        appliance.close()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
