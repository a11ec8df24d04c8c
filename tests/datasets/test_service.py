"""The datasets service answers typed results, and methods for what callers need from them."""

from __future__ import annotations

import io
from typing import Any

import pytest

from appliance.domain.datasets import Dataset, VersionDetail
from appliance.domain.principal import SYSTEM
from appliance.errors import InvalidInput, NotFound, TooLarge

GOOD = "id,x,kind\n" + "".join(f"{i},{i * 1.5},{'ab'[i % 2]}\n" for i in range(40))
BAD = "id,x,kind\n" + "".join(f"{i},,a\n" for i in range(40))  # x all null: contract fails


def _ingest(app: Any, name: str, text: str) -> str:
    out = app.ingest.ingest_stream(io.BytesIO(text.encode()), file_name=name, dataset="d",
                                   who=SYSTEM)
    return str(out.outcome)


def test_current_version_is_the_newest_accepted_one(appliance_app: Any) -> None:
    app = appliance_app
    assert _ingest(app, "a.csv", GOOD) == "accepted"
    assert _ingest(app, "b.csv", BAD) == "rejected"  # version 2, against contract v1
    assert app.datasets.current_version("d") == 1
    shown = app.datasets.show("d")
    assert isinstance(shown, Dataset)
    assert (shown.versions, shown.latest_version, shown.current_version) == (2, 2, 1)
    assert [d.name for d in app.datasets.list_datasets()] == ["d"]


def test_current_version_of_an_unknown_dataset_is_not_found(appliance_app: Any) -> None:
    with pytest.raises(NotFound):
        appliance_app.datasets.current_version("nope")


def test_version_detail_names_its_columns_and_their_summaries(appliance_app: Any) -> None:
    app = appliance_app
    _ingest(app, "a.csv", GOOD)
    app.ingest._summaries.submit(lambda: None).result()  # the summary follows the version
    detail = app.datasets.version("d", 1)
    assert isinstance(detail, VersionDetail)
    assert detail.column_names() == ["id", "x", "kind"]
    assert detail.summary_status == "ready"
    kind = detail.column_summary("kind")
    assert kind is not None and kind["n_unique"] == 2
    assert detail.column_summary("missing") is None
    assert detail.lineage_node == "dataset:d@1"


def test_counts_are_numbers_of_datasets_versions_and_users(appliance_app: Any) -> None:
    app = appliance_app
    _ingest(app, "a.csv", GOOD)
    _ingest(app, "b.csv", BAD)
    counts = app.datasets.counts()
    assert (counts.datasets, counts.versions, counts.accepted, counts.rejected) == (1, 2, 1, 1)
    assert counts.users == 1


def _no_whole_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import polars as pl

    def no_read(*_: Any, **__: Any) -> Any:
        raise AssertionError("the version was read whole")

    monkeypatch.setattr(pl, "read_parquet", no_read)


def test_revalidate_version_over_read_limit_checked_in_a_stream_like_in_memory(
        appliance_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app = appliance_app
    assert _ingest(app, "a.csv", GOOD) == "accepted"
    assert _ingest(app, "b.csv", BAD) == "rejected"
    in_memory = [app.datasets.revalidate("d", n, by=SYSTEM) for n in (1, 2)]
    app.datasets.read_memory_mb = 0       # every version is over the limit: streamed
    with monkeypatch.context() as m:
        _no_whole_read(m)
        streamed = [app.datasets.revalidate("d", n, by=SYSTEM) for n in (1, 2)]
    assert [v.status for v in streamed] == ["accepted", "rejected"]
    assert [v.report for v in streamed] == [v.report for v in in_memory]


def test_revalidate_version_over_read_limit_with_whole_table_checks_refused(
        appliance_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app = appliance_app
    big = "id,x,kind\n" + "".join(f"{i},{i * 1.5},{'ab'[i % 2]}\n" for i in range(20_000))
    assert _ingest(app, "big.csv", big) == "accepted"
    yaml = app.datasets.contract("d").yaml
    assert "  id:\n" in yaml
    app.datasets.set_contract("d", yaml.replace("  id:\n", "  id:\n    unique: true\n", 1),
                              by=SYSTEM)
    app.datasets.read_memory_mb = 1   # 20,000 x 3 x 8 bytes x 3 copies: 1.4 MB
    with monkeypatch.context() as m:
        _no_whole_read(m)
        with pytest.raises(TooLarge) as caught:
            app.datasets.revalidate("d", 1, by=SYSTEM)
    assert "APPLIANCE_READ_MEMORY_MB" in caught.value.message
    assert "only pandera runs" in caught.value.message
    assert caught.value.detail["limit_mb"] == 1 and caught.value.detail["rows"] == 20_000
    assert caught.value.detail["estimated_mb"] > 1
    detail = app.datasets.version("d", 1)
    assert (detail.status, detail.contract_version) == ("accepted", 1)   # nothing changed
    app.datasets.read_memory_mb = 4096    # in memory, pandera runs the unique check
    assert app.datasets.revalidate("d", 1, by=SYSTEM).status == "accepted"


def test_rows_of_a_version_first_or_seeded_sample_and_limit_checked(appliance_app: Any) -> None:
    app = appliance_app
    _ingest(app, "a.csv", GOOD)
    first = app.datasets.rows("d", 1, limit=3)
    assert (first.how, first.seed, first.total_rows) == ("head", None, 40)
    assert first.columns == ["id", "x", "kind"]
    assert first.rows == [{"id": 0, "x": 0.0, "kind": "a"}, {"id": 1, "x": 1.5, "kind": "b"},
                          {"id": 2, "x": 3.0, "kind": "a"}]
    sampled = app.datasets.rows("d", 1, limit=5, sample=True, seed=9)
    assert sampled.how == "sample" and sampled.seed == 9 and len(sampled.rows) == 5
    assert sampled == app.datasets.rows("d", 1, limit=5, sample=True, seed=9)
    for bad in (0, 1001):
        with pytest.raises(InvalidInput):
            app.datasets.rows("d", 1, limit=bad)
    with pytest.raises(NotFound):
        app.datasets.rows("d", 7)


def test_sample_frame_of_a_version_over_the_limit_reads_a_seeded_sample(
        appliance_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    app = appliance_app
    assert _ingest(app, "a.csv", GOOD) == "accepted"
    whole = app.datasets.sample_frame("d", 1, limit=40, seed=0, columns=["x", "kind"])
    assert whole.columns == ["x", "kind"] and whole.height == 40
    with monkeypatch.context() as m:
        _no_whole_read(m)
        first = app.datasets.sample_frame("d", 1, limit=7, seed=3, columns=["x"])
        again = app.datasets.sample_frame("d", 1, limit=7, seed=3, columns=["x"])
        other = app.datasets.sample_frame("d", 1, limit=7, seed=4, columns=["x"])
    assert first.columns == ["x"] and first.height == 7
    assert first.equals(again) and not first.equals(other)
    assert set(first["x"].to_list()) <= set(whole["x"].to_list())
