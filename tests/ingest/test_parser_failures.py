"""Every way the parser can fail ends with the file quarantined: a reason, an ingest row and an
alert, and nothing left in ``claimed/`` (issue 12)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import make_settings

from appliance.ingest import inbox
from appliance.ingest.parse import ParseLimits
from appliance.ingest.worker import ParserPool
from appliance.runtime import build

from .conftest import big_csv, good_csv_text


@pytest.fixture
def app_with(tmp_path: Path) -> Iterator[Any]:
    """Build an in-process appliance with settings overrides (closed afterwards)."""
    apps: list[Any] = []

    def make(**overrides: Any) -> Any:
        app = build(make_settings(tmp_path / "home", **overrides))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def claim_file(app: Any, src: Path, dataset: str = "d") -> inbox.Claim:
    folder = app.settings.inbox_dir / dataset
    folder.mkdir(parents=True, exist_ok=True)
    dropped = folder / src.name
    src.rename(dropped)
    return inbox.claim(dropped, dataset, app.settings.claimed_dir)


def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "a.csv"
    path.write_text(good_csv_text())
    return path


def assert_quarantined(app: Any, name: str, reason: str, dataset: str = "d") -> dict[str, Any]:
    """The file is in quarantine/ with its reason JSON, in the ledger and alerted on;
    claimed/ is empty."""
    assert not [p for p in app.settings.claimed_dir.rglob("*") if p.is_file()]
    qdir = app.settings.quarantine_dir / dataset
    assert (qdir / name).is_file()
    [why] = qdir.glob("*.reason.json")
    record = json.loads(why.read_text())
    assert record["reason"] == reason
    [row] = app.ingest.recent(dataset=dataset)
    assert (row.outcome, row.reason) == ("quarantined", reason)
    alerts = [a for a in app.alerts.list_alerts() if a.kind == "validation_rejected"]
    assert alerts and reason in json.dumps([a.model_dump(mode="json") for a in alerts])
    return record


def test_ingest_when_parser_cannot_start_quarantines_as_parser_failed(
    app_with: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_FAILPOINT", "parser.start")   # the child dies before ready
    app = app_with()
    out = app.ingest.ingest_claim(claim_file(app, small_csv(tmp_path)))
    assert (out.outcome, out.reason) == ("quarantined", "parser_failed")
    assert "could not start" in out.message and "SIGKILL" not in out.message
    assert_quarantined(app, "a.csv", "parser_failed")


def test_ingest_with_a_cap_too_small_for_the_parser_to_start_is_parser_failed(
    app_with: Any, tmp_path: Path
) -> None:
    app = app_with(parse_memory_mb=48)
    out = app.ingest.ingest_claim(claim_file(app, small_csv(tmp_path)))
    assert (out.outcome, out.reason) == ("quarantined", "parser_failed")
    assert "while starting" in out.message and "48 MB cap" in out.message
    assert_quarantined(app, "a.csv", "parser_failed")


def test_ingest_when_parser_dies_mid_file_quarantines_as_parser_crashed(
    app_with: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLIANCE_FAILPOINT", "parser.parse")   # SIGKILL inside the parse
    app = app_with()
    out = app.ingest.ingest_claim(claim_file(app, small_csv(tmp_path)))
    assert (out.outcome, out.reason) == ("quarantined", "parser_crashed")
    assert "SIGKILL" in out.message
    assert_quarantined(app, "a.csv", "parser_crashed")
    assert not list(app.settings.staging_dir.iterdir())


def test_ingest_past_the_resident_memory_cap_quarantines_as_out_of_memory(
    app_with: Any, tmp_path: Path
) -> None:
    # the warm child holds about 90 MB (anonymous); this 46 MB CSV takes it to about 240 MB
    app = app_with(parse_memory_mb=160)
    src = big_csv(tmp_path / "big.csv", 300_000)
    out = app.ingest.ingest_claim(claim_file(app, src))
    assert (out.outcome, out.reason) == ("quarantined", "out_of_memory"), out.message
    assert "160 MB cap" in out.message
    assert_quarantined(app, "big.csv", "out_of_memory")
    assert not list(app.settings.staging_dir.iterdir())


def test_ingest_past_the_timeout_quarantines_as_timeout(app_with: Any, tmp_path: Path) -> None:
    app = app_with(parse_timeout_seconds=0.01)
    out = app.ingest.ingest_claim(claim_file(app, big_csv(tmp_path / "big.csv", 100_000)))
    assert (out.outcome, out.reason) == ("quarantined", "timeout")
    assert_quarantined(app, "big.csv", "timeout")


def test_ingest_when_parse_raises_unexpectedly_quarantines_as_internal(
    app_with: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = app_with()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("a bug in the pipeline")

    monkeypatch.setattr(app.ingest.pool, "parse", broken)
    out = app.ingest.ingest_claim(claim_file(app, small_csv(tmp_path)))
    assert (out.outcome, out.reason) == ("quarantined", "internal")
    assert "a bug in the pipeline" in out.message
    assert_quarantined(app, "a.csv", "internal")


def test_pool_cannot_start_then_starts_once_the_cap_allows_it(tmp_path: Path) -> None:
    limits = ParseLimits(max_bytes=10**8, max_uncompressed_bytes=10**8, timeout_s=60,
                         memory_mb=48)
    src = small_csv(tmp_path)
    with ParserPool(limits) as pool:
        first = pool.parse(src, tmp_path / "a.parquet", fmt="csv", dataset="d",
                           contract_yaml=None, contract_version=None)
        assert (first.ok, first.reason) == (False, "parser_failed")
        assert pool.pid is None and pool.last_peak_mb > 48
        pool.limits = ParseLimits(10**8, 10**8, 60, 2048)
        again = pool.parse(src, tmp_path / "a.parquet", fmt="csv", dataset="d",
                           contract_yaml=None, contract_version=None)
        assert again.ok and again.rows == 100
        assert 0 < pool.last_peak_mb < 2048
