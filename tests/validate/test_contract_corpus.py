"""The contract benchmark's fast subset: one real, time-ordered table, all six faults.

``bench/contract_corpus.py`` is imported by path (bench/ is not a package and
not installed). ``seattle_weather`` is vega_datasets' seattle-weather.csv;
vega_datasets is in the ``test`` extra, so this never needs the bench extra.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

CORPUS_FILE = Path(__file__).resolve().parents[2] / "bench" / "contract_corpus.py"


@pytest.fixture(scope="module")
def corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("contract_corpus", CORPUS_FILE)
    assert spec and spec.loader, CORPUS_FILE
    module = importlib.util.module_from_spec(spec)
    sys.modules["contract_corpus"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def trials(corpus: ModuleType) -> list:
    return corpus.run_dataset(corpus.BY_NAME["seattle_weather"], "appliance")


def test_corpus_table_is_read_from_the_installed_package(corpus: ModuleType):
    df = corpus.load(corpus.BY_NAME["seattle_weather"])
    assert df.columns == ["date", "precipitation", "temp_max", "temp_min", "wind", "weather"]
    assert df.height == 1461 and df["weather"].n_unique() == 5
    assert df["date"].is_sorted()
    parts = corpus.splits(df)
    assert [p.height for p in parts] == [365, 365, 366, 365]


def test_contract_corpus_natural_splits_are_never_rejected(trials: list):
    natural = [t for t in trials if t.fault is None]
    assert len(natural) == 3
    assert [t.outcome for t in natural if t.outcome == "rejected"] == [], [t.headline for t in natural]


def test_contract_corpus_meets_the_fault_targets(corpus: ModuleType, trials: list):
    outcomes = {f: {t.outcome for t in trials if t.fault == f} for f in corpus.FAULTS}
    assert all(len([t for t in trials if t.fault == f]) == 3 for f in corpus.FAULTS)
    caught = [f for f, seen in outcomes.items() if "clean" not in seen]
    assert len(caught) >= 5, outcomes
    for fault in ("type_change", "missing_column", "null_flood", "category_flood"):
        assert outcomes[fault] == {"rejected"}, (fault, outcomes[fault])
    # what catches the last two: the soft expected range and the duplicate-row share
    assert outcomes["unit_change"] == {"warning"}
    assert outcomes["duplicate_rows"] == {"warning"}


def test_contract_corpus_reports_name_the_column_and_the_check(trials: list):
    by_fault = {t.fault: t.headline for t in trials if t.split == 1}
    assert by_fault["missing_column"] == "column 'wind' is missing (required by contract v1)"
    assert by_fault["category_flood"].startswith("weather: ")
    assert "not in contract v1's categories ('unseen_" in by_fault["category_flood"]
    assert by_fault["null_flood"].startswith("temp_max: ") and "allows at most" in by_fault["null_flood"]
    assert by_fault["type_change"].startswith("temp_max: type String, but contract v1 says Float64")
    assert "outside the expected range" in by_fault["unit_change"]
    assert "repeat an earlier row exactly (90%)" in by_fault["duplicate_rows"]


def test_contract_corpus_pandera_reference_runs_on_the_same_split(corpus: ModuleType):
    """The benchmark's reference: pandera's own inference rejects natural later files."""
    df = corpus.load(corpus.BY_NAME["seattle_weather"])
    first, later, *_ = corpus.splits(df)
    outcome, headline = corpus.PanderaInferred(first, "seattle_weather").check(later)
    # its exact observed bounds: last year's coldest day is this year's floor
    assert outcome == "rejected" and "greater_than_or_equal_to" in headline
