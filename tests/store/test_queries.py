"""Every store module's queries give the same answers on DuckDB and on PostgreSQL.

Each test runs once per engine (the ``store`` fixture is parametrized): the
engine-specific SQL lives in appliance/store/dialect.py, and these are its
proof, query by query, on small data written through the store's own functions.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path

import pytest

from appliance.audit import Auditor
from appliance.domain.drift import DriftReport
from appliance.errors import Conflict
from appliance.store import alerts, datasets, drift, dump, experiments, jobs, lineage, runs
from appliance.store import predictions as preds
from appliance.store import registry as reg
from appliance.store import traffic as tq
from appliance.store.db import Store
from appliance.store.tables import (
    DatasetVersionRow,
    ModelVersionRow,
    RunRow,
)

T0 = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)


def _version(ds_id: uuid.UUID, number: int, status: str = "accepted") -> DatasetVersionRow:
    return DatasetVersionRow(dataset_id=ds_id, number=number, status=status, sha256=f"{number:064d}",
                             size_bytes=10, rows=number * 10, columns=["a"],
                             parquet_path=f"datasets/d/{number}.parquet", source_file="f.csv",
                             claim_id=str(uuid.uuid4()), report={"passed": True})


def test_dataset_versions_number_in_order_and_count_by_status(store: Store) -> None:
    with store.write() as s:
        ds = datasets.get_or_create_dataset(s, "sales")
        assert datasets.get_or_create_dataset(s, "sales").id == ds.id
        for status in ("accepted", "rejected", "accepted"):
            s.add(_version(ds.id, datasets.next_version_number(s, ds.id), status))
            s.flush()
        datasets.add_contract(s, ds.id, yaml="a: 1", inferred=True, created_by="t")
        datasets.add_contract(s, ds.id, yaml="a: 2", inferred=False, created_by="t")
    with store.read() as s:
        assert [v.number for v in datasets.list_versions(s, ds.id)] == [3, 2, 1]
        assert datasets.version_stats(s)[ds.id] == datasets.VersionStats(3, 3, 3, 30)
        assert datasets.count_versions_by_status(s) == {"accepted": 2, "rejected": 1}
        assert [c.version for c in datasets.list_contracts(s, ds.id)] == [2, 1]
        assert datasets.get_version(s, ds.id, 2).columns == ["a"]  # JSON round trip


def test_a_second_version_with_the_same_number_is_refused_by_the_store(store: Store) -> None:
    with store.write() as s:
        ds = datasets.get_or_create_dataset(s, "sales")
        s.add(_version(ds.id, 1))
    with pytest.raises(Conflict, match=r"(?i)unique constraint"), store.write() as s:
        s.add(_version(ds.id, 1))
    with store.write() as s:
        m = reg.get_or_create_model(s, "churn")
        reg.add_version(s, _model_version(m.id, 1))
    with pytest.raises(Conflict, match=r"(?i)unique constraint"), store.write() as s:
        reg.add_version(s, _model_version(m.id, 1))


def _model_version(model_id: uuid.UUID, number: int) -> ModelVersionRow:
    return ModelVersionRow(model_id=model_id, number=number, status="ready", flavor="onnx",
                           onnx_sha256="ab" * 32, onnx_size=1, created_by="t")


def test_runs_list_filters_by_tag_and_sorts_by_a_metric(store: Store) -> None:
    with store.write() as s:
        for i, auc in enumerate([0.7, 0.9, None, 0.8]):
            runs.add_run(s, RunRow(name=f"r{i}", kind="train", status="finished",
                                   experiment="default", attempts=1, created_by="t",
                                   tags={"team": "a" if i % 2 else "b"},
                                   metrics={} if auc is None else {"auc": auc},
                                   created_at=T0 + dt.timedelta(minutes=i)))
    with store.read() as s:
        total, page = runs.list_runs(s, sort="-metric:auc")
        assert total == 4
        assert [r.name for r in page] == ["r1", "r3", "r0", "r2"]  # a run without it last
        total, page = runs.list_runs(s, tag=("team", "a"), sort="created_at")
        assert (total, [r.name for r in page]) == (2, ["r1", "r3"])
        assert runs.list_runs(s, q="r2")[0] == 1


def test_metric_points_append_in_bulk_and_the_latest_point_wins(store: Store) -> None:
    with store.write() as s:
        run = runs.add_run(s, RunRow(name="r", kind="train", status="running",
                                     experiment="default", attempts=1, created_by="t"))
        runs.append_metrics(s, run.id, [("loss", step, 1.0 / (step + 1), T0)
                                        for step in range(100)])
        runs.append_metrics(s, run.id, [("auc", 0, 0.5, T0), ("auc", 1, 0.75, T0)])
    with store.read() as s:
        assert runs.count_metric_points(s, run.id) == 102
        assert runs.metric_points(s, run.id, "auc") == [("auc", 0, 0.5, T0), ("auc", 1, 0.75, T0)]
        latest = runs.latest_points(s, [run.id])[run.id]
        assert [(k, step, v) for k, step, v, _ in latest] == [("auc", 1, 0.75), ("loss", 99, 0.01)]


def _log(store: Store) -> None:
    """Six logged predictions of model m (version 1: a classifier, version 2: shadow), and
    labels for three, one of them labelled twice (the newest label counts)."""
    probs = {"yes": 0.8, "no": 0.2}
    entries = [
        ("r1", "m", 1, {"x": 1.5, "c": "u"}, "yes", probs, 2.0, T0, "primary"),
        ("r2", "m", 1, {"x": 2.5, "c": "v"}, "no", {"yes": 0.3, "no": 0.7}, 4.0, T0, "primary"),
        ("r3", "m", 1, {"x": "bad", "c": "u"}, "yes", probs, 6.0, T0 + dt.timedelta(minutes=1),
         "canary"),
        ("r4", "m", 1, {"x": 4.0, "c": "w"}, "yes", probs, 8.0, T0 + dt.timedelta(minutes=1),
         "primary"),
        ("r1", "m", 2, {"x": 1.5, "c": "u"}, "no", probs, 1.0, T0, "shadow"),
        ("q1", "reg", 1, {"x": 1.0}, 2.5, None, 1.0, T0, "primary"),
    ]
    # the tables (embedded, and PostgreSQL with no parts), or the parts (tests/store/test_parts.py)
    preds.log_predictions(store, entries)
    preds.log_labels(store, "m", [("r1", "no"), ("r2", "no")], "api", T0 + dt.timedelta(hours=1))
    preds.log_labels(store, "m", [("r1", "yes")], "api", T0 + dt.timedelta(hours=2))
    preds.log_labels(store, "reg", [("q1", 3.0)], "api", T0 + dt.timedelta(hours=1))


def test_the_prediction_log_joins_the_newest_label(store: Store) -> None:
    _log(store)
    since = T0 - dt.timedelta(hours=1)
    with store.analytics() as s:
        assert preds.known_request_ids(s, "m", ["r1", "r9", "r4"]) == {"r1", "r4"}
        assert preds.role_counts(s, "m") == {"primary": 3, "canary": 1, "shadow": 1}
        perf = preds.performance(s, "m", since)
        assert [(p.version, p.predictions, p.labelled, p.accuracy) for p in perf] == [(1, 4, 2, 1.0)]
        assert perf[0].mean_label_delay_s == pytest.approx(5400.0)
        reg_perf = preds.performance(s, "reg", since)[0]
        assert reg_perf.rmse == pytest.approx(0.5)
        assert preds.label_classes(s, "m", since) == {1: ["yes", "no"]} or \
            sorted(preds.label_classes(s, "m", since)[1]) == ["no", "yes"]
        scores = sorted(preds.positive_scores(s, "m", since, 1, "yes", 10))
        assert scores == [(0.3, False), (0.8, True)]


def test_traffic_buckets_percentiles_classes_and_labelled_series(store: Store) -> None:
    _log(store)
    since, until = T0 - dt.timedelta(hours=1), T0 + dt.timedelta(hours=1)
    with store.analytics() as s:
        rows = tq.latency(s, "m", since, until, 60.0)
        assert [(r.bucket, r.version, r.shadow, r.requests, r.canary) for r in rows] == [
            (T0.timestamp(), 1, False, 2, 0), (T0.timestamp(), 2, True, 1, 0),
            (T0.timestamp() + 60, 1, False, 2, 1)]
        assert (rows[0].p50_ms, rows[0].p99_ms, rows[0].max_ms) == pytest.approx((3.0, 3.98, 4.0))
        whole = tq.latency(s, "m", since, until, None)
        assert [(r.bucket, r.requests) for r in whole] == [(0.0, 4), (0.0, 1)]
        classes = tq.class_counts(s, "m", since, until, 3600.0, max_classes=5)
        assert {(v, sh, c, n) for _, v, sh, c, n in classes} == {
            (1, False, "yes", 3), (1, False, "no", 1), (2, True, "no", 1)}
        assert tq.class_counts(s, "reg", since, until, 3600.0, max_classes=5) == []  # 2.5: no class
        lab = tq.labelled(s, "m", since, until, None)
        assert [(r.version, r.shadow, r.predictions, r.labelled, r.accuracy, r.classification)
                for r in lab] == [(1, False, 4, 2, 1.0, True), (2, True, 1, 1, 0.0, True)]


def test_drift_reads_the_logged_inputs_as_typed_columns(store: Store) -> None:
    _log(store)
    since = T0 - dt.timedelta(hours=1)
    report = DriftReport(id=drift.new_id(), model="m", version=1, reference="d@1", current="log",
                         drift=False, p_val=0.5, correction="bonferroni", features=[],
                         prediction={"test": "chi2"}, rows_reference=1, rows_current=2,
                         duration_ms=1.5, created_at=T0, created_by="t")
    with store.write() as s:
        drift.add_report(s, report)
    with store.read() as s:
        assert drift.reports(s, "m", limit=5) == [report]
    with store.analytics() as s:
        assert drift.logged_rows(s, "m", since) == 4
        table = drift.logged_inputs(s, "m", since, {"x": True, "c": False}, limit=10)
        assert sorted(table.column("x").to_pylist(), key=lambda v: (v is None, v)) == [
            1.5, 2.5, 4.0, None]  # "bad" is no number
        assert sorted(table.column("c").to_pylist()) == ["u", "u", "v", "w"]
        assert drift.logged_inputs(s, "m", since, {"x": True}, limit=2).num_rows == 2
        assert sorted(drift.logged_predictions(s, "m", 1, since, limit=10)) == [
            "no", "yes", "yes", "yes"]


def test_job_ledger_newest_run_per_job_and_pause_upsert(store: Store) -> None:
    with store.write() as s:
        for i, job in enumerate(["a", "b", "a"]):
            jobs.insert_run(s, job=job, trigger="manual", status="queued", attempt=1,
                            idempotency_key=None, scheduled_for=None,
                            at=T0 + dt.timedelta(minutes=i))
        jobs.set_paused(s, "a", paused=True, by="t", at=T0)
        jobs.set_paused(s, "a", paused=False, by="t", at=T0)
        jobs.set_paused(s, "b", paused=True, by="t", at=T0)
    with store.read() as s:
        last = jobs.last_runs(s)
        assert {job: r["created_at"] for job, r in last.items()} == {
            "a": T0 + dt.timedelta(minutes=2), "b": T0 + dt.timedelta(minutes=1)}
        assert jobs.paused_jobs(s) == {"b"}
        assert jobs.count_runs(s, job="a") == 2


def test_a_keyed_job_attempt_is_recorded_once(store: Store) -> None:
    def queue(attempt: int) -> None:
        with store.write() as s:
            jobs.insert_run(s, job="train", trigger="new_data", status="queued", attempt=attempt,
                            idempotency_key="train:d@1", scheduled_for=T0, at=T0)

    queue(1)
    queue(2)  # a retry is another attempt
    with pytest.raises(Conflict, match=r"(?i)unique constraint"):
        queue(1)
    with store.read() as s:
        assert [r["attempt"] for r in jobs.keyed_runs(s, "train:d@1")] == [1, 2]


def test_alerts_bump_and_resolve(store: Store) -> None:
    with store.write() as s:
        a = alerts.insert_alert(s, kind="drift", key="m", message="x", detail={"p": 1}, at=T0)
        alerts.bump_alert(s, a.id, message="y", detail={"p": 2}, at=T0)
        assert alerts.find_active(s, "drift", "m").count == 2
        assert alerts.resolve_active(s, "drift", "m", T0) == [str(a.id)]
    with store.read() as s:
        assert alerts.count_by_status(s) == {"resolved": 1}
        assert alerts.get_alert(s, a.id).detail == {"p": 2}


def test_the_audit_chain_links_and_verifies(store: Store, tmp_path: Path) -> None:
    auditor = Auditor(store, tmp_path / "audit.head")
    for i in range(3):
        with store.write() as s:
            auditor.record(s, "t", "thing.create", f"thing:{i}", after={"i": i})
            if i == 1:
                auditor.record(s, "t", "thing.update", f"thing:{i}")
    result = auditor.verify()
    assert (result.ok, result.events) == (True, 4)


def test_backup_counts_and_references_read_the_same(store: Store) -> None:
    with store.write() as s:
        ds = datasets.get_or_create_dataset(s, "d")
        s.add(_version(ds.id, 1))
        experiments.ensure(s, "default", by="t")
        lineage.add_edge(s, src="file:1", dst="dataset:d@1", relation="ingested_as")
    parquet, _shas = dump.references(store)
    assert parquet == ["datasets/d/1.parquet"]
    assert dump.counts(store)["dataset_versions"] == 1
    with store.read() as s:
        assert len(lineage.edges_touching(s, "dataset:d@1")) == 1
