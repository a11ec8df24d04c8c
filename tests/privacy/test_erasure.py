"""Erasure by key: the subject's rows leave every dataset version, Parquet file, prediction
and label; one audit event with counts (never the value); lineage and the model card say why."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from erasure_data import KEY, add_version, csv_of, home_of, ingest, populate

from appliance.domain.principal import Principal
from appliance.domain.privacy import Condition, ErasureRequest, parse_condition
from appliance.domain.roles import Role
from appliance.errors import Conflict, InvalidInput, NotFound, PermissionDenied

ADMIN = Principal(username="admin", role=Role.admin)
VIEWER = Principal(username="viewer", role=Role.viewer)


def _parquet_rows_holding(home: Path, value: str) -> int:
    """Rows of every Parquet file under the home whose any column, as text, is ``value``."""
    con = duckdb.connect()
    found = 0
    for path in home.rglob("*.parquet"):
        cols = [r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)",
                                          [str(path)]).fetchall()]
        cond = " OR ".join(f'CAST("{c}" AS VARCHAR) = ?' for c in cols)
        found += con.execute(f"SELECT count(*) FROM read_parquet(?) WHERE {cond}",
                             [str(path), *[value] * len(cols)]).fetchone()[0]
    return found


def _table_text_holding(app: Any, value: str) -> dict[str, int]:
    out = {}
    for table in ("predictions", "labels", "dataset_versions", "audit_events", "erasures",
                  "erasure_versions", "lineage_edges"):
        rows = app.store.execute(f"SELECT * FROM {table}")
        out[table] = sum(value in json.dumps([str(c) for c in r]) for r in rows)
    return out


@pytest.fixture
def populated(appliance_app: Any) -> Any:
    """A home to erase from (each test its own)."""
    return populate(appliance_app)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One populated home for the tests that must change nothing (dry runs, refusals)."""
    from appliance_test_support import make_settings

    from appliance.runtime import build

    app = build(make_settings(tmp_path_factory.mktemp("erasure") / "home"))
    yield populate(app)
    app.close()


def _erase(app: Any, *, dry_run: bool = False, dataset: str | None = None,
           **where: Any) -> Any:
    req = ErasureRequest(where=[Condition(column=k, value=v) for k, v in where.items()],
                         dataset=dataset, dry_run=dry_run)
    return app.erasure.erase(req, by=ADMIN)


def test_erase_key_leaves_no_parquet_file_prediction_or_label_holding_it(populated: Any) -> None:
    app = populated
    home = home_of(app)
    assert _parquet_rows_holding(home, KEY) == 3
    report = _erase(app, customer_id=KEY)
    assert [(v.version, v.rows_removed, v.new_version) for v in report.versions] == [
        (1, 1, 4), (2, 2, 5)]
    assert (report.predictions_removed, report.labels_removed) == (2, 2)
    assert sorted(f.path for f in report.files) == ["archive/customers/a.csv",
                                                     "archive/customers/b.csv"]
    assert _parquet_rows_holding(home, KEY) == 0
    # no file under the home but the store itself holds the value in any form
    assert not [p for p in home.rglob("*") if p.is_file() and not p.name.startswith("appliance.")
                and KEY.encode() in p.read_bytes()]
    assert _table_text_holding(app, KEY) == dict.fromkeys(
        ["predictions", "labels", "dataset_versions", "audit_events", "erasures",
         "erasure_versions", "lineage_edges"], 0)
    # everything that did not match is still there
    left = app.store.execute("SELECT request_id FROM predictions ORDER BY 1")
    assert [r[0] for r in left] == ["r2"]
    assert app.store.execute("SELECT request_id FROM labels") == [("r2",)]
    assert (app.datasets.version("customers", 4).rows,
            app.datasets.version("customers", 5).rows) == (3, 3)


def test_erase_key_writes_new_versions_with_lineage_and_marks_the_old_ones(populated: Any) -> None:
    app = populated
    report = _erase(app, customer_id=KEY)
    versions = {v.number: v for v in app.datasets.versions("customers")}
    assert [versions[n].status for n in (1, 2, 3, 4, 5)] == [
        "erased", "erased", "accepted", "accepted", "accepted"]
    assert versions[5].sha256 == report.versions[1].new_sha256
    assert app.datasets.current_version("customers") == 5
    down = app.lineage.walk("dataset:customers@2", direction="down", depth=1)
    assert ("dataset:customers@2", "dataset:customers@5", "erasure") in {
        (e.src, e.dst, e.relation) for e in down.edges}
    up = app.lineage.walk("dataset:customers@5", direction="up", depth=1)
    assert (f"erasure:{report.id}", "dataset:customers@5", "erased_into") in {
        (e.src, e.dst, e.relation) for e in up.edges}
    # the old number reads the erased rows: its own file is gone
    assert app.datasets.parquet_path("customers", 2) == app.datasets.parquet_path("customers", 5)
    with pytest.raises(Conflict, match="erased"):
        app.datasets.revalidate("customers", 2, by=ADMIN)


def test_erase_rewrites_holdouts_on_disk_and_as_run_artifacts(populated: Any) -> None:
    """A training run keeps its holdout as runs/<id>/holdout.parquet and as a run artifact
    (content-addressed, no suffix): both lose the rows, the artifact under a new sha256."""
    import polars as pl

    app = populated
    home = home_of(app)
    buf = io.BytesIO()
    pl.DataFrame({"customer_id": [KEY, "c1", KEY], "n": [1, 2, 3]}).write_parquet(buf)
    (home / "runs" / "r1").mkdir(parents=True)
    (home / "runs" / "r1" / "holdout.parquet").write_bytes(buf.getvalue())
    art = app.artifacts.put_bytes(buf.getvalue())
    app.store.execute("INSERT INTO run_artifacts VALUES (uuid(), uuid(), 'holdout.parquet', "
                      ":s, :z, now())", {"s": art.sha256, "z": art.size})
    report = _erase(app, customer_id=KEY)
    rewritten = {f.path: f.rows_removed for f in report.files if f.action == "rewritten"}
    assert rewritten == {"runs/r1/holdout.parquet": 2,
                         f"artifacts/{art.sha256[:2]}/{art.sha256[2:4]}/{art.sha256}": 2}
    assert not art.path.exists()
    (sha,), = app.store.execute("SELECT sha256 FROM run_artifacts")
    assert sha != art.sha256 and app.artifacts.path_for(sha).is_file()
    assert pl.read_parquet(app.artifacts.path_for(sha))["customer_id"].to_list() == ["c1"]
    assert _parquet_rows_holding(home, KEY) == 0
    assert not [p for p in home.rglob("*") if p.is_file() and not p.name.startswith("appliance.")
                and KEY.encode() in p.read_bytes()]


def test_erase_twice_keeps_every_erased_version_readable_and_clean(populated: Any) -> None:
    app = populated
    _erase(app, customer_id=KEY)  # v1 -> v4, v2 -> v5
    second = _erase(app, customer_id="c5")  # in v5 (from b.csv), so v2 and v5 move to v6
    assert [(v.version, v.new_version) for v in second.versions] == [(5, 6)]
    paths = {n: app.datasets.parquet_path("customers", n) for n in (2, 5, 6)}
    assert paths[2] == paths[5] == paths[6] and paths[6].is_file()
    assert [v.status for v in app.datasets.versions("customers")][::-1] == [
        "erased", "erased", "accepted", "accepted", "erased", "accepted"]
    assert _parquet_rows_holding(home_of(app), KEY) == 0
    assert _parquet_rows_holding(home_of(app), "c5") == 0


def test_erase_key_audits_one_event_with_counts_and_flags_the_model_card(populated: Any) -> None:
    app = populated
    report = _erase(app, customer_id=KEY)
    events = app.store.execute("SELECT target, after FROM audit_events "
                               "WHERE action = 'erasure.apply'")
    assert len(events) == 1
    target, after = events[0]
    after = json.loads(after) if isinstance(after, str) else after
    assert target == f"erasure:{report.id}"
    assert after["rows_removed"] == 3 and after["tables"] == {"predictions": 2, "labels": 2}
    assert after["columns"] == ["customer_id"] and after["models_flagged"] == ["churn@1"]
    assert KEY not in json.dumps(after)
    assert app.auditor.verify().ok
    card = app.registry.card("churn", 1)
    assert [n.erasure_id for n in card.erased_data] == [report.id]
    assert "Trained on data since erased" in app.registry.card_markdown("churn", 1)
    listed = app.erasure.erasures()
    assert [(e.id, e.status, e.rows_removed, e.predictions_removed) for e in listed] == [
        (report.id, "done", 3, 2)]


def test_recover_finishes_the_file_deletions_a_crash_left_and_stays_in_the_home(
        appliance_app: Any, tmp_path: Path) -> None:
    from appliance.store import erasures as eq

    app = appliance_app
    home = home_of(app)
    left = home / "datasets" / "customers" / "old.parquet"
    left.parent.mkdir(parents=True)
    left.write_bytes(b"PAR1")
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    with app.store.write() as s:
        eq.add_erasure(s, erasure_id=uuid.uuid4(), actor="admin", columns=["customer_id"],
                       dataset=None, counts={}, at=dt.datetime.now(dt.UTC),
                       pending_files=["datasets/customers/old.parquet",
                                      os.path.relpath(outside, home)])
    assert [e.status for e in app.erasure.erasures()] == ["cleaning"]
    assert app.erasure.recover() == 1
    assert not left.exists() and outside.read_text() == "keep me"
    assert [e.status for e in app.erasure.erasures()] == ["done"]


def test_erase_keeps_rows_whose_key_is_null(appliance_app: Any) -> None:
    app = appliance_app
    add_version(app, "a.csv", b"customer_id,n\n,1\nx,2\n,3\nk,4\n")
    report = _erase(app, customer_id="k")
    assert report.versions[0].rows_removed == 1
    assert app.datasets.version("customers", 2).rows == 3


def test_erase_an_injection_looking_value_is_a_plain_value(populated: Any) -> None:
    app = populated
    report = _erase(app, customer_id="x' OR '1'='1")
    assert report.versions == [] and report.predictions_removed == 0
    assert app.store.execute("SELECT count(*) FROM predictions")[0][0] == 3
    assert app.store.execute("SELECT count(*) FROM labels")[0][0] == 3
    assert _parquet_rows_holding(home_of(app), KEY) == 3


# -- dry runs and refusals: one shared home, which they must leave as it was ---------------


def test_dry_run_counts_and_changes_nothing(shared: Any) -> None:
    app = shared
    home = home_of(app)
    before_files = sorted(p.relative_to(home) for p in home.rglob("*") if p.is_file()
                          and not p.name.startswith("appliance."))
    before_audit = app.store.execute("SELECT count(*) FROM audit_events")
    report = _erase(app, customer_id=KEY, dry_run=True)
    assert report.id is None and report.dry_run
    assert [(v.version, v.rows_removed, v.new_version) for v in report.versions] == [
        (1, 1, None), (2, 2, None)]
    assert (report.predictions_removed, report.labels_removed) == (2, 2)
    assert {f.action for f in report.files} == {"would delete"}
    assert sorted(p.relative_to(home) for p in home.rglob("*") if p.is_file()
                  and not p.name.startswith("appliance.")) == before_files
    assert _parquet_rows_holding(home, KEY) == 3
    assert app.store.execute("SELECT count(*) FROM audit_events") == before_audit
    assert app.store.execute("SELECT count(*) FROM predictions")[0][0] == 3
    assert app.erasure.erasures() == []


def test_erase_with_two_conditions_matches_rows_holding_both(shared: Any) -> None:
    report = _erase(shared, customer_id=KEY, n=1, dry_run=True)
    assert [(v.version, v.rows_removed) for v in report.versions] == [(1, 1), (2, 1)]
    assert report.predictions_removed == 1  # r1 has n=1; r3 has n=3


def test_erase_a_numeric_key_matches_the_columns_type(shared: Any) -> None:
    assert [v.rows_removed for v in _erase(shared, n="1", dry_run=True).versions] == [1, 1, 1]
    by_number = _erase(shared, n=1, dry_run=True)
    assert [v.rows_removed for v in by_number.versions] == [1, 1, 1]
    assert by_number.predictions_removed == 1  # r1's inputs hold n: 1, compared as numbers
    assert [v.rows_removed for v in _erase(shared, x="1.5", dry_run=True).versions] == [1, 1, 1]
    with pytest.raises(InvalidInput, match="BIGINT"):
        _erase(shared, n="one", dry_run=True)
    with pytest.raises(InvalidInput, match="BIGINT"):
        _erase(shared, n="1.5", dry_run=True)


@pytest.mark.parametrize("value", ["x' OR '1'='1", "1; DROP TABLE predictions; --",
                                   '" OR 1=1 --', "'); DELETE FROM labels; --"])
def test_erase_an_injection_looking_value_counts_nothing(shared: Any, value: str) -> None:
    report = _erase(shared, customer_id=value, dry_run=True)
    assert report.versions == [] and report.predictions_removed == 0


def test_erase_an_unknown_column_is_a_clear_error(shared: Any) -> None:
    with pytest.raises(InvalidInput, match="'email'"):
        _erase(shared, email="a@b.c")
    with pytest.raises(InvalidInput, match="quotes"):
        _erase(shared, **{'customer_id" = 1 OR "a': "1"})
    with pytest.raises(InvalidInput, match="COLUMN=VALUE"):
        parse_condition("customer_id")
    with pytest.raises(InvalidInput, match="at least one"):
        shared.erasure.erase(ErasureRequest(where=[]), by=ADMIN)
    with pytest.raises(InvalidInput, match="at most 1000"):
        _erase(shared, customer_id="x" * 1001)
    with pytest.raises(InvalidInput, match="at most 8"):
        _erase(shared, **{f"c{i}": "1" for i in range(9)})


def test_erase_in_an_unknown_dataset_is_not_found(shared: Any) -> None:
    with pytest.raises(NotFound):
        _erase(shared, customer_id=KEY, dataset="nope")
    with pytest.raises(InvalidInput):
        _erase(shared, customer_id=KEY, dataset="../etc")


def test_erase_needs_the_admin_role(shared: Any) -> None:
    req = ErasureRequest(where=[Condition(column="customer_id", value=KEY)])
    with pytest.raises(PermissionDenied):
        shared.erasure.erase(req, by=VIEWER)
    assert _parquet_rows_holding(home_of(shared), KEY) == 3


@pytest.mark.slow
def test_erase_key_from_ingested_versions_revalidates_and_summarizes(appliance_app: Any) -> None:
    """Through the real ingest (contract inferred, summaries, archive): the new versions are
    checked against the old ones' contract version and summarised afresh."""
    app = appliance_app
    ingest(app, "a.csv", csv_of(["c1", KEY, "c3", "c4"]))
    ingest(app, "b.csv", csv_of(["c5", KEY, "c7", "c8"]))
    report = _erase(app, customer_id=KEY)
    assert [(v.version, v.new_version) for v in report.versions] == [(1, 3), (2, 4)]
    assert sorted(f.path for f in report.files) == ["archive/customers/a.csv",
                                                     "archive/customers/b.csv"]
    new = app.datasets.version("customers", 4)
    assert (new.status, new.rows, new.contract_version) == ("accepted", 3, 1)
    assert new.summary_status == "ready" and new.column_summary("n") is not None
    assert _parquet_rows_holding(home_of(app), KEY) == 0
    assert not list((home_of(app) / "archive").rglob("*.csv"))
    assert KEY not in json.dumps([app.datasets.version("customers", n).model_dump(mode="json")
                                  for n in (1, 2, 3, 4)])
