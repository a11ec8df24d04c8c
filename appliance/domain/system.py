"""What the system routes answer: health, and the console's home summary."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from appliance.domain.datasets import DatasetCounts
from appliance.domain.ingest import Ingest


class WatcherHeartbeat(BaseModel):
    """The inbox watcher's pulse."""

    model_config = ConfigDict(frozen=True)

    last_poll: float | None = Field(description="Unix time of the last finished poll.")
    polls: int
    errors: int = Field(description="Polls that failed (the watcher logs and goes on).")
    last_error: str | None
    inotify: bool = Field(description="Whether inotify hints wake the watcher early.")


class ServerRuntime(BaseModel):
    """What runs the HTTP server: the event loop and the HTTP parser uvicorn chose."""

    model_config = ConfigDict(frozen=True)

    loop: str = Field(description="the running event loop's package: uvloop or asyncio")
    http: str = Field(description="uvicorn's HTTP protocol: httptools or h11")


class Health(BaseModel):
    """Liveness and store health."""

    model_config = ConfigDict(frozen=True)

    status: Literal["ok", "degraded"]
    version: str
    degraded_reason: str | None = Field(
        description="Why the store is read-only, when it is (`degraded`).")
    watcher: WatcherHeartbeat
    leader: bool = Field(default=True, description=(
        "whether this host holds the leader lease (runs the inbox watcher, the scheduler and "
        "housekeeping); always true on the embedded store"))
    server: ServerRuntime | None = Field(default=None, description=(
        "the event loop and HTTP parser serving this request; null in-process (no uvicorn)"))


class Summary(BaseModel):
    """The console's home page: counts, the newest ingests and health."""

    model_config = ConfigDict(frozen=True)

    counts: DatasetCounts
    recent_ingests: list[Ingest]
    health: Health
