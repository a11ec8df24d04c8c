"""Numbered migrations that move data: each is applied to a store written before it."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from appliance.store.db import Store
from appliance.store.migrations import _statements, apply_migrations, migration_files


def _store_at(tmp_path: Path, level: int) -> Store:
    """A store whose schema stops at migration ``level`` (as an older appliance left it)."""
    store = Store(tmp_path / "old.duckdb").open(migrate=False)
    with store._engine().begin() as conn:
        conn.execute(text("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                          "name VARCHAR NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"))
        for number, name, sql in migration_files():
            if number > level:
                break
            for statement in _statements(sql):
                conn.execute(text(statement))
            conn.execute(text("INSERT INTO schema_migrations VALUES (:v, :n, now())"),
                         {"v": number, "n": name})
    return store


def test_migrate_0011_backfills_job_run_dataset_versions_from_their_keys(tmp_path: Path) -> None:
    store = _store_at(tmp_path, 10)
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    keys = ["train.churn:customers@3", "train.my-job_2:sales_eu@12", None]
    try:
        with store._engine().begin() as conn:
            for key in keys:
                conn.execute(text(
                    "INSERT INTO job_runs (id, job, trigger, status, attempt, idempotency_key, "
                    "created_at) VALUES (:id, 'train.churn', 'new_data', 'succeeded', 1, :k, :at)"),
                    {"id": uuid.uuid4(), "k": key, "at": at})
        assert apply_migrations(store._engine(), store.db_path) == [
            n for n, _, _ in migration_files() if n > 10]
        rows = store.execute("SELECT idempotency_key, dataset, dataset_version FROM job_runs "
                             "ORDER BY idempotency_key NULLS LAST")
    finally:
        store.close()
    assert [tuple(r) for r in rows] == [("train.churn:customers@3", "customers", 3),
                                        ("train.my-job_2:sales_eu@12", "sales_eu", 12),
                                        (None, None, None)]


def test_migrate_0012_gives_every_experiment_named_by_a_run_an_id(tmp_path: Path) -> None:
    store = _store_at(tmp_path, 11)
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    try:
        with store._engine().begin() as conn:
            for name, experiment in [("a", "default"), ("b", "churn"), ("c", "churn"),
                                     ("d", "sales eu")]:
                conn.execute(text(
                    "INSERT INTO runs (id, name, kind, status, experiment, attempts, created_by, "
                    "created_at) VALUES (:id, :n, 'external', 'running', :e, 1, 'x', :at)"),
                    {"id": uuid.uuid4(), "n": name, "e": experiment, "at": at})
        apply_migrations(store._engine(), store.db_path)
        rows = store.execute("SELECT id, name, lifecycle_stage FROM experiments ORDER BY name")
        deleted = store.execute("SELECT count(*) FROM runs WHERE deleted_at IS NULL")
    finally:
        store.close()
    by_name = {name: (exp_id, stage) for exp_id, name, stage in rows}
    assert sorted(by_name) == ["churn", "default", "sales eu"]
    assert by_name["default"] == ("0", "active")
    assert len(by_name["churn"][0]) == 32 and by_name["churn"][0] != by_name["sales eu"][0]
    assert deleted[0][0] == 4


def test_migrate_0012_on_an_empty_store_seeds_no_experiment(tmp_path: Path) -> None:
    """A restore loads the backup's rows into a fresh schema: a seeded row would collide."""
    store = _store_at(tmp_path, 11)
    try:
        apply_migrations(store._engine(), store.db_path)
        rows = store.execute("SELECT count(*) FROM experiments")
    finally:
        store.close()
    assert rows[0][0] == 0


def test_migrate_0014_leaves_old_predictions_and_versions_without_outlier_data(
        tmp_path: Path) -> None:
    store = _store_at(tmp_path, 12)
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    try:
        with store._engine().begin() as conn:
            conn.execute(text(
                "INSERT INTO predictions (request_id, model, version, inputs, prediction, "
                "latency_ms, created_at) VALUES ('old', 'churn', 1, '{}', '1', 0.5, :at)"),
                {"at": at})
        assert 14 in apply_migrations(store._engine(), store.db_path)
        rows = store.execute("SELECT request_id, outlier, outlier_score FROM predictions")
        columns = store.execute("SELECT column_name FROM information_schema.columns "
                                "WHERE table_name = 'model_versions'")
    finally:
        store.close()
    assert [tuple(r) for r in rows] == [("old", None, None)]
    assert "outlier_sha256" in {r[0] for r in columns}
def test_migrate_0021_makes_a_job_slot_and_attempt_unique_over_rows_written_before(
        tmp_path: Path) -> None:
    from appliance.errors import Conflict
    from appliance.store import jobs as q

    store = _store_at(tmp_path, 18)
    at = dt.datetime(2026, 1, 1, 3, 30, tzinfo=dt.UTC)
    try:
        with store._engine().begin() as conn:  # as releases before wrote them: the clock
            for i, trigger in enumerate(["cron", "manual", "new_data"]):
                conn.execute(text(
                    "INSERT INTO job_runs (id, job, trigger, status, attempt, scheduled_for, "
                    "created_at) VALUES (:id, 'housekeeping.retention', :t, 'succeeded', 1, "
                    ":s, :s)"), {"id": uuid.uuid4(), "t": trigger,
                                 "s": at + dt.timedelta(microseconds=i)})
        assert apply_migrations(store._engine(), store.db_path) == [
            n for n, _, _ in migration_files() if n > 18]
        assert store.execute("SELECT count(*) FROM job_runs")[0][0] == 3  # kept as they were
        with store.write() as s:  # queued runs have no slot: any number of them
            for _ in range(2):
                q.insert_run(s, job="housekeeping.retention", trigger="manual", status="queued",
                             attempt=1, idempotency_key=None, scheduled_for=None, at=at)
        with pytest.raises(Conflict), store.write() as s:  # a second row for the tick's slot
            q.insert_run(s, job="housekeeping.retention", trigger="cron", status="running",
                         attempt=1, idempotency_key=None, scheduled_for=at, at=at)
    finally:
        store.close()
