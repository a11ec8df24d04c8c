"""Scale-out analytics: the prediction log and labels as Parquet parts in a real S3 server
(moto's), metadata in a real PostgreSQL; read by DuckDB, compacted by the leader.

The query tests of tests/store/test_queries.py run here again on a store whose log is
in parts (the ``store`` fixture below): the same answers as the embedded tables.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_testing import PgServer, fresh_database, store_at

from appliance.config import Settings
from appliance.objects import ObjectStore, open_object_store
from appliance.store import erasures as eq
from appliance.store import predictions as preds
from appliance.store.db import Store
from appliance.store.parts import PartsLog
from tests.objects.conftest import s3_settings  # noqa: F401  (fixture)
from tests.store.test_queries import (  # noqa: F401  (collected here: the same tests on parts)
    T0,
    test_drift_reads_the_logged_inputs_as_typed_columns,
    test_the_prediction_log_joins_the_newest_label,
    test_traffic_buckets_percentiles_classes_and_labelled_series,
)

pytestmark = pytest.mark.postgres
TODAY = dt.date(2026, 12, 2)  # T0's day is closed


def _objects(s3: Callable[..., Settings], home: Path) -> ObjectStore:
    return open_object_store(s3(home, f"t-{uuid.uuid4().hex[:12]}"))


@pytest.fixture
def store(pg_server: PgServer, pg_template: str, tmp_path: Path,
          s3_settings: Callable[..., Settings]) -> Iterator[Store]:  # noqa: F811
    """PostgreSQL metadata; the log in parts of a fresh bucket prefix, one part a batch."""
    with fresh_database(pg_server, pg_template) as url:
        opened = store_at(tmp_path / "a.duckdb", url).open()
        opened.use_parts(PartsLog(_objects(s3_settings, tmp_path / "h1"), tmp_path / "spool",
                                  host="h1", roll_rows=1))
        yield opened
        opened.close()


def _entries(n: int, at: dt.datetime, prefix: str = "r") -> list[Any]:
    return [(f"{prefix}{i}", "m", 1, {"x": float(i)}, "yes" if i % 2 else "no", None,
             float(i % 7), at + dt.timedelta(seconds=i), "primary") for i in range(n)]


def _parts(store: Store, table: str = "predictions") -> list[str]:
    assert store.parts is not None
    return [o.key for o in store.parts.objects.list(f"logs/{table}")]


def _ids(store: Store) -> list[str]:
    with store.analytics() as s:
        from sqlalchemy import text
        return sorted(r[0] for r in s.execute(text("SELECT request_id FROM predictions")))


def test_logged_predictions_land_as_parts_in_the_bucket_not_in_postgresql(store: Store) -> None:
    preds.log_predictions(store, _entries(3, T0))
    preds.log_labels(store, "m", [("r1", "yes")], "api", T0 + dt.timedelta(hours=1))
    keys = _parts(store)
    assert len(keys) == 1 and keys[0].startswith("logs/predictions/day=2026-12-01/h1-")
    assert _parts(store, "labels")[0].startswith("logs/labels/day=2026-12-01/h1-")
    assert store.execute("SELECT count(*) FROM predictions") == [(0,)]
    assert store.execute("SELECT count(*) FROM labels") == [(0,)]
    with store.analytics() as s:
        assert preds.known_request_ids(s, "m", ["r1", "r2", "zz"]) == {"r1", "r2"}
        assert preds.logged_prediction(s, "r2", "m") == ("r2", "m", 1, {"x": 2.0})


def test_rows_not_rolled_yet_are_read_from_the_spool_and_a_clean_stop_rolls_them(
        tmp_path: Path, s3_settings: Callable[..., Settings]) -> None:  # noqa: F811
    parts = PartsLog(_objects(s3_settings, tmp_path / "h"), tmp_path / "spool", host="h",
                     roll_rows=1000, roll_seconds=3600)
    parts.add("predictions", preds.prediction_batch(_entries(5, T0)))
    assert parts.objects.list("logs") == [] and parts.pending("predictions").num_rows == 5
    assert parts.close() == 1
    assert [o.key.split("/")[2] for o in parts.objects.list("logs")] == ["day=2026-12-01"]
    assert parts.pending("predictions").num_rows == 0


def test_a_spool_left_by_a_killed_process_is_rolled_once_by_the_next_start(
        tmp_path: Path, s3_settings: Callable[..., Settings]) -> None:  # noqa: F811
    objects = _objects(s3_settings, tmp_path / "h")
    dead = PartsLog(objects, tmp_path / "spool", host="h", roll_rows=1000, roll_seconds=3600)
    dead.add("predictions", preds.prediction_batch(_entries(4, T0)))
    dead.add("predictions", preds.prediction_batch(_entries(2, T0, prefix="s")))
    spool = next((tmp_path / "spool" / "predictions").glob("*.arrows"))
    dead._spools["predictions"].fh.close()  # what kill -9 leaves: the file, no roll
    dead._spools.clear()
    with spool.open("ab") as fh:
        fh.write(b"\x00\x01torn")  # killed mid-write
    after = PartsLog(objects, tmp_path / "spool", host="h")
    assert after.recover() == 1 and after.recover() == 0
    assert not spool.exists()
    import pyarrow.parquet as pq

    [key] = [o.key for o in objects.list("logs")]
    assert pq.read_table(objects.local_path(key)).num_rows == 6


def test_compaction_merges_a_closed_days_parts_and_keeps_every_row_once(store: Store) -> None:
    for i in range(4):
        preds.log_predictions(store, _entries(3, T0, prefix=f"a{i}-"))
    preds.log_predictions(store, _entries(2, dt.datetime(2026, 12, 2, tzinfo=dt.UTC), "b"))
    preds.log_predictions(store, _entries(2, dt.datetime(2026, 12, 2, 1, tzinfo=dt.UTC), "c"))
    before = _ids(store)
    assert len(before) == 16 and len(_parts(store)) == 6
    assert store.parts_reader is not None
    done = store.parts_reader.compact(today=TODAY)
    assert (done.merged_parts, done.written_parts, done.rows) == (4, 1, 12)
    keys = _parts(store)
    assert len(keys) == 3 and sum("day=2026-12-01/m-" in k for k in keys) == 1
    assert _ids(store) == before
    assert preds.compact_parts(store).written_parts == 1  # today now closed by the clock: merged


def test_a_reader_counts_each_row_once_while_a_compaction_is_half_done(store: Store) -> None:
    for i in range(3):
        preds.log_predictions(store, _entries(2, T0, prefix=f"a{i}-"))
    assert store.parts is not None and store.parts_reader is not None
    objects = store.parts.objects
    saved = {k: objects.get_bytes(k) for k in _parts(store)}
    store.parts_reader.compact(today=TODAY)
    for k, data in saved.items():  # a compaction that stopped before its deletes
        objects.put_bytes(k, data)
    assert len(_parts(store)) == 4
    assert _ids(store) == sorted(f"a{i}-{j}" for i in range(3) for j in range(2))
    store.parts_reader.compact(today=TODAY)  # finishes it: the replaced parts go
    assert len(_parts(store)) == 1


def test_a_reader_survives_a_compaction_racing_it(store: Store) -> None:
    for i in range(3):
        preds.log_predictions(store, _entries(2, T0, prefix=f"a{i}-"))
    assert store.parts is not None and store.parts_reader is not None
    reader, objects = store.parts_reader, store.parts.objects
    fetch, raced = objects.local_path, []

    def compacting_first(key: str) -> Path:  # the parts vanish between the list and the read
        if not raced:
            raced.append(key)
            reader.compact(today=TODAY)
        return fetch(key)

    objects.local_path = compacting_first  # type: ignore[method-assign]
    try:
        assert len(_ids(store)) == 6 and raced
    finally:
        objects.local_path = fetch  # type: ignore[method-assign]
    with store.analytics() as s:  # views made, then the parts deleted under the query
        reader.compact(today=dt.date(2026, 12, 9))
        from sqlalchemy import text
        assert s.execute(text("SELECT count(*) FROM predictions")).scalar_one() == 6


def test_erasure_rewrites_the_parts_holding_the_matching_rows_and_their_labels(
        store: Store) -> None:
    preds.log_predictions(store, _entries(4, T0))
    preds.log_predictions(store, _entries(2, T0, prefix="s"))
    preds.log_labels(store, "m", [("r1", "no"), ("r3", "yes")], "api", T0)
    match = [("x", "1", True)]  # r1 and s1
    with store.analytics() as s:
        assert eq.count_matching_predictions(s, match) == (2, 1)
    assert eq.erase_matching_in_parts(store, match, salt="e1") == (2, 1)
    assert _ids(store) == ["r0", "r2", "r3", "s0"]
    with store.analytics() as s:
        assert eq.count_matching_predictions(s, match) == (0, 0)
        assert preds.known_request_ids(s, "m", ["r1", "r3"]) == {"r3"}
    assert eq.delete_in_parts_before(store, "predictions", T0 + dt.timedelta(seconds=1),
                                     salt="ret") == 2  # r0 and s0
    assert _ids(store) == ["r2", "r3"]


@pytest.mark.slow  # a whole appliance built on PostgreSQL and S3: about 11 s
def test_a_host_in_scale_out_mode_serves_into_parts_and_joins_its_labels(
        pg_server: PgServer, pg_template: str, tmp_path: Path,
        s3_settings: Callable[..., Settings]) -> None:  # noqa: F811
    from onnx_models import servable_onnx

    from appliance.domain.principal import SYSTEM
    from appliance.runtime import build

    with fresh_database(pg_server, pg_template) as url:
        settings = s3_settings(tmp_path / "host1", f"t-{uuid.uuid4().hex[:12]}", store_url=url)
        app = build(settings)
        try:
            assert app.store.parts is not None
            app.registry.register(model="m", onnx_bytes=servable_onnx(1.0), flavor="onnx",
                                  by=SYSTEM)
            ids = [app.serving.predict("m", {"x": float(i)}, version=1)["request_ids"][0]
                   for i in range(4)]
            fed = app.serving.feedback("m", [{"request_id": r, "label": float(i) + 1.5}
                                             for i, r in enumerate(ids[:2])])
            assert (fed.matched, fed.unknown_request_ids) == (2, [])  # found in the spool
            [v] = app.serving.performance("m").versions
            assert (v.predictions, v.labelled, v.rmse) == (4, 2, pytest.approx(0.5))
            run = app.jobs.run_here("housekeeping.compact_parts", by=SYSTEM)  # the leader's
            assert run.status == "succeeded"
        finally:
            app.close()  # a clean stop rolls the spool
        objects = open_object_store(settings)
        keys = [o.key for o in objects.list("logs")]
        assert {k.split("/")[1] for k in keys} == {"predictions", "labels"}
        with Store(tmp_path / "unused.duckdb", url=url) as pg:  # no log rows in PostgreSQL
            assert pg.execute("SELECT count(*) FROM predictions") == [(0,)]
            assert pg.execute("SELECT count(*) FROM labels") == [(0,)]


def test_a_part_the_object_store_refuses_stays_readable_and_is_uploaded_on_retry(
        tmp_path: Path) -> None:
    from appliance.objects import LocalObjectStore

    root = tmp_path / "objects"
    root.mkdir()
    (root / "logs").write_text("in the way")  # the store cannot make its folder: it fails
    parts = PartsLog(LocalObjectStore(root), tmp_path / "spool", host="h", roll_rows=2)
    parts.add("predictions", preds.prediction_batch(_entries(3, T0)))  # the roll fails
    assert parts.stats()["stalled_rows"] == 3
    assert parts.pending("predictions").num_rows == 3  # nothing dropped, still read
    with pytest.raises(OSError):
        parts.roll()  # an explicit roll says so
    (root / "logs").unlink()
    assert parts.roll() == 1
    assert parts.pending("predictions").num_rows == 0
    assert [o.key.split("/")[1] for o in parts.objects.list("logs")] == ["predictions"]


def test_a_second_host_reads_the_first_hosts_rolled_parts_beside_its_own_spool(
        tmp_path: Path, s3_settings: Callable[..., Settings]) -> None:  # noqa: F811
    from appliance.store.partsread import PartsReader

    settings = s3_settings(tmp_path / "a", f"t-{uuid.uuid4().hex[:12]}")
    a = PartsLog(open_object_store(settings), tmp_path / "a" / "spool", host="a",
                 roll_rows=1)
    b_settings = s3_settings(tmp_path / "b", settings.object_store.split("/", 3)[3])
    b = PartsLog(open_object_store(b_settings), tmp_path / "b" / "spool", host="b",
                 roll_rows=1000, roll_seconds=3600)
    a.add("predictions", preds.prediction_batch(_entries(3, T0, prefix="a")))
    b.add("predictions", preds.prediction_batch(_entries(2, T0, prefix="b")))
    from sqlalchemy import text

    with PartsReader(b).session() as s:
        got = sorted(r[0] for r in s.execute(text("SELECT request_id FROM predictions")))
    assert got == ["a0", "a1", "a2", "b0", "b1"]
    with PartsReader(a).session() as s:  # b's spool: not visible to a until b rolls
        assert s.execute(text("SELECT count(*) FROM predictions")).scalar_one() == 3


@pytest.mark.slow  # a whole appliance on PostgreSQL, three dataset versions: about 15 s
def test_an_erasure_in_scale_out_mode_rewrites_the_log_parts_without_the_key(
        pg_server: PgServer, pg_template: str, tmp_path: Path) -> None:
    from erasure_data import KEY, populate

    from appliance.domain.principal import Principal
    from appliance.domain.privacy import ErasureRequest, parse_condition
    from appliance.domain.roles import Role
    from appliance.runtime import build
    from tests.support.appliance_test_support import make_settings

    with fresh_database(pg_server, pg_template) as url:
        app = build(make_settings(tmp_path / "home", store_url=url))  # parts in the home
        try:
            assert app.store.parts is not None
            jobs = {j.id for j in app.jobs.list_jobs().items}
            # the leader compacts parts; no nightly embedded backup (it can only refuse here)
            assert "housekeeping.compact_parts" in jobs
            assert "housekeeping.backup" not in jobs
            populate(app)
            app.store.parts.roll()
            assert len(_parts(app.store)) == 1
            report = app.erasure.erase(
                ErasureRequest(where=[parse_condition(f"customer_id={KEY}")]),
                by=Principal(username="admin", role=Role.admin))
            assert (report.predictions_removed, report.labels_removed) == (2, 2)
            assert any("second pass" in step for step in report.next_steps)
            assert _ids(app.store) == ["r2"]
            with app.store.analytics() as s:
                from sqlalchemy import text
                assert s.execute(text("SELECT request_id FROM labels")).fetchall() == [("r2",)]
            import duckdb

            con = duckdb.connect()
            files = sorted((tmp_path / "home" / "logs").rglob("*.parquet"))
            assert len(files) == 2  # the predictions and labels parts, rewritten
            assert sum(con.execute("SELECT count(*) FROM read_parquet(?) AS t "
                                   "WHERE CAST(t AS VARCHAR) LIKE ?",
                                   [str(f), f"%{KEY}%"]).fetchone()[0] for f in files) == 0
        finally:
            app.close()
