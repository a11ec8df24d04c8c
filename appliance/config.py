"""Settings: every knob is an ``APPLIANCE_*`` environment variable.

Nothing reads the environment at import time; ``Settings()`` is built once by
the composition root (``runtime.py``) or the CLI and passed down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Scale-out: how often each host reads the change feed by default, and the bound that
# gives (docs/scale-out.md, "Serving on every host"): an alias move, a routing change or a
# token revocation made through one host is acted on by every other host within
# CHANGE_BOUND_SECONDS (in general, twice APPLIANCE_CHANGE_POLL_SECONDS:
# ``Settings.change_bound_seconds``).
CHANGE_POLL_SECONDS = 1.0
CHANGE_BOUND_SECONDS = 2 * CHANGE_POLL_SECONDS


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APPLIANCE_", extra="ignore")

    home: Path = Field(default=Path("./data"), description="Everything that persists.")
    store_url: str | None = Field(
        default=None,
        description="Metadata on PostgreSQL: postgresql+psycopg://user:pass@host/db (run "
                    "`appliance migrate` first). Unset: the embedded DuckDB file in the home.")
    object_store: str | None = Field(
        default=None,
        description="Shared files in an S3-compatible bucket: s3://bucket/prefix (docs/scale-out.md). "
                    "Unset: under the home, as always.")
    s3_endpoint: str | None = Field(
        default=None, description="The S3-compatible server, e.g. http://minio:9000 (unset: AWS).")
    s3_access_key_id: str | None = Field(
        default=None, description="Unset: AWS_ACCESS_KEY_ID and the AWS SDK's usual sources.")
    s3_secret_access_key: SecretStr | None = None
    s3_region: str | None = Field(
        default=None, description="Unset: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1.")
    object_cache_dir: Path | None = Field(
        default=None, description="Where a host caches objects it reads (default $HOME/cache/objects).")
    object_cache_mb: int = Field(
        default=10240, ge=16, description="Bound of the object cache; least recently used go first.")
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    console_port: int = Field(default=8501, ge=0, le=65535)
    api_url: str | None = Field(
        default=None, description="The API the CLI and console talk to (default from host/port)."
    )
    admin_password: SecretStr | None = Field(
        default=None, description="Creates user `admin` on first start."
    )
    inbox_poll_seconds: float = Field(default=2.0, gt=0)
    inbox_min_age_seconds: float = Field(
        default=2.0, ge=0, description="A file without a rename or .done marker must be this old."
    )
    jobs_dir: Path | None = None
    allowed_hosts: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1", "testserver"],
        description="Host header allowlist (DNS-rebinding guard); '*' allows any.",
    )
    max_file_bytes: int = Field(default=2 * 1024**3, gt=0, description="Largest inbox file.")
    max_uncompressed_bytes: int = Field(
        default=4 * 1024**3, gt=0, description="Cap on a decompressed .gz stream."
    )
    max_columns: int = Field(
        default=2000, gt=0,
        description="Most columns a file may have; checked on the header, before the parse.")
    parse_timeout_seconds: float = Field(default=600.0, gt=0)
    parse_memory_mb: int = Field(default=8192, gt=0, description="Resident-memory cap of the parser child.")
    parse_stream_above_mb: int | None = Field(
        default=None, ge=0,
        description="Files (decoded) over this many MB are parsed in a stream; default a quarter "
                    "of the parser's memory cap.")
    min_free_disk_mb: int = Field(default=256, ge=0)
    webhook_allowlist: list[str] = Field(
        default_factory=list,
        description="Hosts alert webhooks may reach (a JSON list); empty: no webhooks.")
    webhook_allow_private: bool = Field(
        default=False, description="Let webhooks reach loopback/private addresses; never link-local.")
    train_timeout_seconds: float = Field(default=3600.0, gt=0, description="Per training run.")
    train_memory_mb: int = Field(default=8192, gt=0, description="Address-space cap of a trainer.")
    dask_scheduler: str | None = Field(
        default=None,
        description="Scale-out: train on the Dask cluster whose scheduler is at "
                    "tcp://host:8786 (docs/scale-out.md, Training on Dask). Unset: a child "
                    "process on this host, as always.")
    dask_lost_worker_seconds: float = Field(
        default=60.0, gt=0,
        description="Training on Dask: a run fails this long after a worker holding its "
                    "search trials left the cluster, or once its task has sent nothing for "
                    "this long (the worker holding the training itself: at once).")
    read_memory_mb: int = Field(
        default=4096, gt=0,
        description="Most memory the server may spend holding one dataset version whole "
                    "(revalidation); a bigger version is checked in a stream "
                    "(docs/operations/memory.md).")
    session_ttl_hours: float = Field(default=12.0, gt=0)
    login_failures_per_user: int = Field(
        default=5, ge=1,
        description="Failed logins for one username before each further try waits (1 s, 2 s, 4 s...).")
    login_failures_per_address: int = Field(
        default=20, ge=1,
        description="Failed logins from one client address (not loopback) before back-off starts.")
    login_backoff_max_seconds: float = Field(
        default=300.0, gt=0, description="The longest wait the login back-off asks for.")
    mlflow_log_delay_ms: int = Field(
        default=0, ge=0, le=1000,
        description="0: an MLflow logging call is answered once committed (nothing acknowledged "
                    "is lost). Above 0: answered at once and committed within this many ms, "
                    "about 3x the throughput, but a server crash loses up to this much of a "
                    "run's logged values.")
    api_docs: bool = Field(
        default=True,
        description="Serve /docs, /redoc and /openapi.json (without a token: they hold no data).")
    compat_alias: str = Field(
        default="champion", pattern=r"^[a-z][a-z0-9_-]{0,63}$",
        description="The alias that answers /v2 and /invocations requests naming no version.")
    checkpoint_minutes: float = Field(default=10.0, gt=0)
    backup_keep: int = Field(
        default=7, ge=1, description="Scheduled backups kept in $APPLIANCE_HOME/backups.")
    inbox_scan_seconds: float = Field(
        default=60.0, gt=0, description="The scheduled inbox guard: watcher alive, full scan.")
    jobs_reload_seconds: float = Field(
        default=5.0, gt=0, description="How often job files are checked for changes.")
    job_history_days: float = Field(
        default=90.0, ge=0,
        description="Finished job runs older than this are pruned daily; 0 keeps them forever.")
    retention_predictions_days: float = Field(
        default=0.0, ge=0,
        description="Prediction-log rows older than this are deleted daily; 0 keeps them forever.")
    retention_labels_days: float = Field(
        default=0.0, ge=0,
        description="Delayed labels received longer ago than this are deleted daily; "
                    "0 keeps them forever.")
    job_misfire_grace_seconds: int = Field(
        default=300, ge=1, description="A tick later than this is skipped, not run late.")
    leader_retry_seconds: float = Field(
        default=1.0, gt=0, le=60,
        description="Scale-out: how often a follower tries for the leader lease (and the "
                    "leader checks it still holds it).")
    job_heartbeat_expiry_seconds: float = Field(
        default=60.0, ge=5,
        description="Scale-out: a queued or running job or training run whose heartbeat is "
                    "older than this is another host's dead run, recovered by the leader.")
    change_poll_seconds: float = Field(
        default=CHANGE_POLL_SECONDS, gt=0, le=60,
        description="Scale-out: how often each host reads the change feed (alias moves, "
                    "routing, token revocations made through other hosts); they reach "
                    "every host within twice this. A PostgreSQL NOTIFY wakes it earlier. "
                    "No effect on the embedded store.")
    log_level: str = "info"

    @property
    def change_bound_seconds(self) -> float:
        """Scale-out: a change made through one host is acted on by every host within this."""
        return 2 * self.change_poll_seconds

    @property
    def db_path(self) -> Path:
        return self.home / "appliance.duckdb"

    @property
    def lock_path(self) -> Path:
        return self.home / "appliance.lock"

    @property
    def inbox_dir(self) -> Path:
        return self.home / "inbox"

    @property
    def claimed_dir(self) -> Path:
        return self.home / "claimed"

    @property
    def staging_dir(self) -> Path:
        return self.home / "staging"

    @property
    def archive_dir(self) -> Path:
        return self.home / "archive"

    @property
    def quarantine_dir(self) -> Path:
        return self.home / "quarantine"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def resolved_jobs_dir(self) -> Path:
        return self.jobs_dir if self.jobs_dir is not None else self.home / "jobs"

    @property
    def resolved_api_url(self) -> str:
        if self.api_url:
            return self.api_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"

    def ensure_dirs(self) -> None:
        for d in (
            self.home,
            self.inbox_dir,
            self.claimed_dir,
            self.staging_dir,
            self.archive_dir,
            self.quarantine_dir,
            self.datasets_dir,
            self.artifacts_dir,
        ):
            d.mkdir(parents=True, exist_ok=True)
