"""The demo generator is deterministic and its inbox drops are atomic."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import polars as pl
import pytest

from appliance.config import Settings
from appliance.demo import (
    GENDERS,
    PLANS,
    REGIONS,
    SCHEMA,
    DemoFeeder,
    customer_ids,
    make_customers,
    seed_home,
    write_demo_file,
)

REPO = Path(__file__).resolve().parents[1]


def test_make_customers_same_seed_same_frame() -> None:
    a = make_customers(300, seed=3)
    b = make_customers(300, seed=3)
    assert a.equals(b)
    assert not a.equals(make_customers(300, seed=4))


def test_make_customers_start_id_changes_ids_only() -> None:
    a = make_customers(50, seed=1)
    b = make_customers(50, seed=1, start_id=1001)
    assert b["customer_id"].to_list() == customer_ids(1001, 50).tolist()
    assert not set(a["customer_id"]) & set(b["customer_id"])
    assert a.drop("customer_id").equals(b.drop("customer_id"))


def test_customer_ids_are_distinct_seven_digit_numbers() -> None:
    ids = customer_ids(0, 200_000)
    assert len(set(ids.tolist())) == 200_000
    assert ids.min() >= 1 and ids.max() <= 9_999_991
    with pytest.raises(ValueError):
        customer_ids(-1, 5)


def test_make_customers_schema_and_ranges() -> None:
    df = make_customers(5000, seed=11)
    assert df.schema == pl.Schema(SCHEMA)
    assert df.height == 5000
    assert df["customer_id"].is_unique().all()
    assert df["age"].min() >= 18 and df["age"].max() <= 90
    assert df["tenure_months"].min() >= 0
    assert df["monthly_charges"].min() > 0
    assert set(df["plan"].unique()) == set(PLANS)
    assert set(df["region"].unique()) == set(REGIONS)
    assert set(df["gender"].unique()) == set(GENDERS)
    assert set(df["churned"].unique()) == {0, 1}
    for col in df.columns:
        if col != "total_charges":
            assert df[col].null_count() == 0, col
    assert 0.01 <= df["total_charges"].null_count() / df.height <= 0.03


def test_make_customers_churn_follows_tenure_and_charges() -> None:
    df = make_customers(20_000, seed=5)
    short = df.filter(pl.col("tenure_months") < 12)["churned"].mean()
    long = df.filter(pl.col("tenure_months") > 48)["churned"].mean()
    cheap = df.filter(pl.col("monthly_charges") < 40)["churned"].mean()
    dear = df.filter(pl.col("monthly_charges") > 80)["churned"].mean()
    assert short > long + 0.2
    assert dear > cheap


def test_make_customers_zero_rows() -> None:
    assert make_customers(0, seed=1).height == 0


def test_shipped_sample_matches_generator() -> None:
    # data/samples/customers.csv is make_customers(1000, seed=7); `init --demo` may regenerate it.
    sample = REPO / "data" / "samples" / "customers.csv"
    assert sample.read_bytes() == make_customers(1000, seed=7).write_csv().encode()


def test_write_demo_file_leaves_only_the_final_file(tmp_path: Path) -> None:
    df = make_customers(120, seed=2, start_id=7)
    path = write_demo_file(tmp_path, "customers", df)
    assert path.parent == tmp_path / "customers"
    assert path.name.startswith("customers-") and path.suffix == ".csv"
    assert os.listdir(tmp_path / "customers") == [path.name]
    back = pl.read_csv(path, schema=SCHEMA)
    assert back.equals(df)


def test_write_demo_file_failed_write_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        write_demo_file(tmp_path, "customers", make_customers(10, seed=1))
    assert os.listdir(tmp_path / "customers") == []


def test_write_demo_file_refuses_bad_names_and_existing_files(tmp_path: Path) -> None:
    from appliance.errors import InvalidName

    df = make_customers(5, seed=1)
    with pytest.raises(InvalidName):
        write_demo_file(tmp_path, "../escape", df)
    with pytest.raises(InvalidName):
        write_demo_file(tmp_path, "customers", df, name="../x")
    write_demo_file(tmp_path, "customers", df, name="batch")
    with pytest.raises(FileExistsError):
        write_demo_file(tmp_path, "customers", df, name="batch")


def test_write_demo_file_reader_never_sees_a_partial_file(tmp_path: Path) -> None:
    """A scanner that ignores hidden files only ever reads complete CSVs."""
    folder = tmp_path / "customers"
    folder.mkdir()
    rows = 20_000
    done = threading.Event()
    seen: dict[str, int] = {}
    errors: list[str] = []

    def scan() -> None:
        while True:
            finished = done.is_set()
            for entry in os.scandir(folder):
                if entry.name.startswith(".") or entry.name in seen:
                    continue
                try:
                    n = pl.read_csv(entry.path, schema=SCHEMA).height
                except Exception as exc:  # a torn file fails to parse
                    n = -1
                    errors.append(f"{entry.name}: {exc}")
                seen[entry.name] = n
                if n != rows:
                    errors.append(f"{entry.name}: {n} rows")
            if finished:
                return
            time.sleep(0.001)

    scanner = threading.Thread(target=scan)
    scanner.start()
    try:
        for k in range(8):
            write_demo_file(tmp_path, "customers", make_customers(rows, seed=k, start_id=k * rows))
    finally:
        done.set()
        scanner.join(30)
    assert errors == []
    assert len(seen) == 8


def test_demo_feeder_drops_new_ids_until_stopped(tmp_path: Path) -> None:
    feeder = DemoFeeder(tmp_path, interval_s=0.02, batch_rows=40)
    feeder.start()
    try:
        deadline = time.monotonic() + 10
        while feeder.dropped < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        feeder.stop()
    assert not feeder.running
    files = sorted((tmp_path / "customers").glob("*.csv"))
    assert len(files) >= 3
    frames = [pl.read_csv(f, schema=SCHEMA) for f in files]
    ids = pl.concat(frames)["customer_id"]
    assert ids.is_unique().all()
    assert not list((tmp_path / "customers").glob(".*"))


def test_demo_feeder_is_deterministic(tmp_path: Path) -> None:
    a = DemoFeeder(tmp_path / "a", batch_rows=30)
    b = DemoFeeder(tmp_path / "b", batch_rows=30, first_batch=1)
    a.drop_once()
    second = a.drop_once()
    resumed = b.drop_once()
    assert second.name == resumed.name == "customers-batch00001.csv"
    assert second.read_bytes() == resumed.read_bytes()


def test_demo_feeder_restart_carries_on(tmp_path: Path) -> None:
    first = DemoFeeder(tmp_path, batch_rows=10)
    first.drop_once()
    first.drop_once()
    again = DemoFeeder(tmp_path, batch_rows=10)
    assert again.drop_once().name == "customers-batch00002.csv"
    # The state file is hidden, so the inbox watcher never takes it.
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == [".demo-feeder-customers.json"]


def test_demo_feeder_rejects_bad_interval(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        DemoFeeder(tmp_path, interval_s=0)


def test_seed_home_demo_seeds_once_and_keeps_edits(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    lines = list(seed_home(settings, demo=True))
    assert any("demo data: dropped" in ln for ln in lines)
    inbox_files = list((settings.inbox_dir / "customers").glob("*.csv"))
    assert [p.name for p in inbox_files] == ["customers-initial.csv"]
    sample = settings.home / "samples" / "customers.csv"
    assert sample.read_bytes() == (REPO / "data" / "samples" / "customers.csv").read_bytes()
    # The initial batch differs from the sample, so dropping the sample makes a new version.
    assert inbox_files[0].read_bytes() != sample.read_bytes()
    job = settings.resolved_jobs_dir / "churn.yaml"
    assert job.read_text() == (REPO / "jobs" / "churn.yaml").read_text()

    job.write_text("# edited\n")
    inbox_files[0].unlink()  # the server took it
    again = list(seed_home(settings, demo=True))
    assert "demo data: already seeded" in again
    assert job.read_text() == "# edited\n"
    assert not list((settings.inbox_dir / "customers").glob("*.csv"))


def test_seed_home_without_demo_only_makes_folders(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    assert list(seed_home(settings, demo=False)) == [f"home: {settings.home.resolve()}"]
    assert settings.inbox_dir.is_dir()
    assert not (settings.home / "samples").exists()
    assert not settings.resolved_jobs_dir.exists()


# -- scripts/demo refuses to start over a running appliance ---------------------------


def demo_checkout(tmp_path: Path) -> Path:
    """A copy of scripts/demo in a fake checkout whose install step and `appliance` only
    leave a note: the real ones would rewrite a venv a running appliance uses."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "demo").write_bytes((REPO / "scripts" / "demo").read_bytes())
    (root / "scripts" / "install-wheel.sh").write_text(
        '#!/bin/sh\necho installed >> "$(dirname "$0")/../notes"\n')
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "appliance").write_text(
        '#!/bin/sh\necho "started $*" >> "$(dirname "$0")/../../notes"\n')
    for script in ("scripts/demo", "scripts/install-wheel.sh", ".venv/bin/appliance"):
        os.chmod(root / script, 0o755)
    return root


def run_demo(root: Path, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    from appliance_test_support import free_port

    full = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    full.update({"APPLIANCE_HOME": str(home), "APPLIANCE_PORT": str(free_port()),
                 "APPLIANCE_CONSOLE_PORT": str(free_port()), **env})
    return subprocess.run([str(root / "scripts" / "demo")], env=full, capture_output=True,
                          text=True, timeout=60, check=False)


def test_demo_script_stops_at_once_when_the_home_is_locked(tmp_path: Path) -> None:
    from appliance.store.db import ProcessLock

    root, home = demo_checkout(tmp_path), tmp_path / "home"
    lock = ProcessLock(home / "appliance.lock")
    lock.acquire()
    try:
        started = time.monotonic()
        out = run_demo(root, home)
    finally:
        lock.release()
    assert out.returncode == 3, out
    assert time.monotonic() - started < 10
    assert f"an appliance is already running on {home}" in out.stderr
    assert f"PID {os.getpid()}" in out.stderr and "nothing was installed" in out.stderr
    assert not (root / "notes").exists()  # neither installed nor started
    assert "appliance is up" not in out.stdout


def test_demo_script_stops_at_once_when_the_api_port_is_taken(tmp_path: Path) -> None:
    import socket

    root = demo_checkout(tmp_path)
    with socket.create_server(("127.0.0.1", 0)) as taken:
        out = run_demo(root, tmp_path / "home", APPLIANCE_PORT=str(taken.getsockname()[1]))
    assert out.returncode == 3, out
    assert "the API port" in out.stderr and "APPLIANCE_PORT" in out.stderr
    assert not (root / "notes").exists()


def test_demo_script_installs_then_starts_when_nothing_runs(tmp_path: Path) -> None:
    root, home = demo_checkout(tmp_path), tmp_path / "home"
    out = run_demo(root, home, APPLIANCE_HOME=str(home))
    assert out.returncode == 0, out
    assert (root / "notes").read_text().splitlines() == ["installed", "started up --demo"]


def test_demo_feeder_stops_after_its_batches_and_stays_stopped_on_restart(tmp_path: Path) -> None:
    feeder = DemoFeeder(tmp_path, interval_s=0.02, batch_rows=10, max_batches=3)
    feeder.start()
    deadline = time.monotonic() + 10
    while feeder.running and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not feeder.running and feeder.exhausted  # the thread ended by itself
    names = sorted(p.name for p in (tmp_path / "customers").glob("*.csv"))
    assert names == [f"customers-batch{k:05d}.csv" for k in range(3)]
    again = DemoFeeder(tmp_path, interval_s=0.02, batch_rows=10, max_batches=3)
    again.start()
    time.sleep(0.2)
    again.stop()
    assert again.dropped == 0 and len(list((tmp_path / "customers").glob("*.csv"))) == 3


def test_demo_feeder_rejects_a_negative_batch_count(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        DemoFeeder(tmp_path, max_batches=-1)
