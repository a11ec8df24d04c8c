"""A real PostgreSQL for the tests, without Docker: pgserver's (PostgreSQL 16, a pip
package of the test extra), else Debian's `postgresql` binaries; None when neither exists.

As root, pgserver adds a system user `pgserver` (useradd) to run the server as, since
PostgreSQL refuses to run as root; the Debian fallback runs it as the `postgres` user the
package made. One server per test session; each test gets a database of its own
(``fresh_database``), dropped afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class PgServer:
    """A running server: ``uri(db)`` connects to database ``db`` as its superuser."""

    uri: Callable[[str], str]
    kind: str  # "pgserver 16" or "debian <major>"
    stop: Callable[[], None]


def _pgserver() -> Any:
    """The pgserver module (its import warns that XDG_RUNTIME_DIR is unset, harmlessly)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver
    return pgserver


def why_no_postgres() -> str | None:
    """None when a PostgreSQL can be started here, else why not (the skip reason)."""
    try:
        _pgserver()
    except ImportError:
        if not _debian_bin():
            return ("no PostgreSQL to test against: neither the pgserver package (the test "
                    "extra) nor Debian's postgresql binaries (/usr/lib/postgresql/*/bin)")
    return None


def _debian_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def start(base: Path) -> PgServer:
    """A server for tests: durability off (no fsync), which makes creating a database per
    test cheap; nothing here has to survive a power cut."""
    server = _start(base)
    import psycopg

    with psycopg.connect(server.uri("postgres"), autocommit=True) as admin:
        for setting in ("fsync", "synchronous_commit", "full_page_writes"):
            admin.execute(f"ALTER SYSTEM SET {setting} = off")
        admin.execute("SELECT pg_reload_conf()")
    return server


def _start(base: Path) -> PgServer:
    try:
        pgserver = _pgserver()
    except ImportError:
        return _start_debian(base)
    base.chmod(0o755)  # as root the server runs as user pgserver, which must reach it
    server = pgserver.get_server(base / "pgdata", cleanup_mode="stop")

    def uri(db: str) -> str:
        return str(server.get_uri(db))

    return PgServer(uri=uri, kind="pgserver 16", stop=server.cleanup)


def _start_debian(base: Path) -> PgServer:
    bindir = _debian_bin()
    assert bindir is not None
    data, sock = base / "data", base / "sock"
    sock.mkdir(parents=True)
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run as the package's postgres user
        base.chmod(0o755)
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust"], check=True, capture_output=True)
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-l",
                    str(base / "log"), "-o", f"-k {sock} -c listen_addresses=''", "start"],
                   check=True, capture_output=True)

    def stop() -> None:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                        "stop"], check=False, capture_output=True)

    return PgServer(uri=lambda db: f"postgresql://postgres:@/{db}?host={sock}",
                    kind=f"debian {bindir.parent.name}", stop=stop)


@contextlib.contextmanager
def fresh_database(server: PgServer, template: str | None = None) -> Iterator[str]:
    """A new database for one test (empty, or a copy of ``template``: copying a migrated
    database is much faster than migrating one); its SQLAlchemy URL
    (postgresql+psycopg://)."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(server.uri("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"{copy}')
    try:
        yield server.uri(name).replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        with psycopg.connect(server.uri("postgres"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def session_server() -> Iterator[PgServer]:
    """A server for a whole test session (the ``pg_server`` fixtures), removed afterwards.
    Call ``why_no_postgres()`` first and skip with its reason when it says one."""
    import tempfile

    # not under pytest's basetemp: it is 0700 (the server runs as another user when we are
    # root) and other pytest runs of this user prune old basetemps while we run
    base = Path(tempfile.mkdtemp(prefix="appliance-pg-"))
    server = start(base)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def store_at(path: Path, url: str | None) -> Any:
    """A store (to open, or use in ``with``) at the current schema: DuckDB migrates on
    open; PostgreSQL is migrated first by `appliance migrate`'s function, as an operator
    would."""
    from appliance.store.db import Store, migrate

    if url is not None:
        migrate(path, path.with_suffix(".lock"), url)
    return Store(path, url=url)


def migrated_template(server: PgServer, workdir: Path) -> str:
    """A database migrated to the current schema by `appliance migrate`'s function, to copy
    per test (``fresh_database(server, template=...)``); its name."""
    import psycopg

    from appliance.store.db import migrate

    name = f"tpl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.uri("postgres"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = server.uri(name).replace("postgresql://", "postgresql+psycopg://", 1)
    migrate(workdir / "x.duckdb", workdir / "x.lock", url)
    return name
