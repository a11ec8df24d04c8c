"""A corpus of public, time-ordered tables shipped inside pip packages, and the faults injected into them.

Shared by ``bench/contracts.py`` and the fast subset in
``tests/validate/test_contract_corpus.py`` (which imports this file by path).
Every table is read from the installed package's own files, never downloaded:

==============  ============================================  ==========  ======
name            source (package: file)                        rows        order
==============  ============================================  ==========  ======
stocks_long     matplotlib: sample_data/Stocks.csv, long form 5,240       Date
macrodata       statsmodels: datasets/macrodata/macrodata.csv 203         year, quarter
co2             statsmodels: datasets/co2/co2.csv             2,284       date
grunfeld        statsmodels: datasets/grunfeld/grunfeld.csv   220         year
sunspots        statsmodels: datasets/sunspots/sunspots.csv   309         YEAR
elec_equip      statsmodels: datasets/elec_equip/elec_equip   257         row order
gapminder       plotly: package_data/datasets/gapminder       1,704       year
plotly_stocks   plotly: package_data/datasets/stocks          105         date
seattle_weather vega_datasets: _data/seattle-weather.csv      1,461       date
us_employment   vega_datasets: _data/us-employment.csv        120         month
==============  ============================================  ==========  ======

vega_datasets (210 kB, pure Python) is in the ``test`` extra, so
``seattle_weather`` is always there for the fast subset in the test suite;
matplotlib, statsmodels and plotly come with the ``bench`` extra (a table
whose package is absent is left out of the run, and the run says so).
``stocks_long`` is Stocks.csv (one column per ticker) unpivoted, keeping its
empty cells, to ``Date, symbol, price``: a categorical column over time.

Each table is sorted by time and cut into ``SPLITS`` consecutive parts: the
first is the "first file" a contract is inferred from, the others are the
natural later files. Faults are injected into later parts (``inject``).
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

SPLITS = 4
FAULTS = ("type_change", "missing_column", "null_flood", "category_flood", "unit_change",
          "duplicate_rows")
NULL_FLOOD_SHARE = 0.7       # share of a column's values made null
CATEGORY_FLOOD_SHARE = 0.5   # share of a categorical column's values replaced by unseen ones
UNIT_FACTOR = 1000           # e.g. kilograms arriving as grams
DUPLICATE_FACTOR = 10        # every row ten times


@dataclass(frozen=True)
class Dataset:
    name: str
    package: str                 # the installed distribution's import name
    path: str                    # the file inside the package
    time: tuple[str, ...]        # sort keys; empty: the file is already in time order
    measure: str                 # a numeric column: type change, null flood, unit change
    drop: str                    # the column the missing-column fault removes
    category: str | None = None  # a low-cardinality string column: unseen-category flood
    reshape: Callable[[pl.DataFrame], pl.DataFrame] | None = None


def _stocks_long(df: pl.DataFrame) -> pl.DataFrame:
    return df.unpivot(index="Date", variable_name="symbol", value_name="price")


CORPUS: tuple[Dataset, ...] = (
    Dataset("stocks_long", "matplotlib", "mpl-data/sample_data/Stocks.csv", ("Date", "symbol"),
            measure="price", drop="price", category="symbol", reshape=_stocks_long),
    Dataset("macrodata", "statsmodels", "datasets/macrodata/macrodata.csv", ("year", "quarter"),
            measure="realgdp", drop="unemp"),
    Dataset("co2", "statsmodels", "datasets/co2/co2.csv", ("date",), measure="co2", drop="co2"),
    Dataset("grunfeld", "statsmodels", "datasets/grunfeld/grunfeld.csv", ("year", "firm"),
            measure="invest", drop="capital", category="firm"),
    Dataset("sunspots", "statsmodels", "datasets/sunspots/sunspots.csv", ("YEAR",),
            measure="SUNACTIVITY", drop="SUNACTIVITY"),
    Dataset("elec_equip", "statsmodels", "datasets/elec_equip/elec_equip.csv", (),
            measure="STS.M.I7.W.TOVT.NS0016.4.000", drop="DATE"),
    Dataset("gapminder", "plotly", "package_data/datasets/gapminder.csv.gz", ("year", "country"),
            measure="gdpPercap", drop="lifeExp", category="continent"),
    Dataset("plotly_stocks", "plotly", "package_data/datasets/stocks.csv.gz", ("date",),
            measure="AAPL", drop="MSFT"),
    Dataset("seattle_weather", "vega_datasets", "_data/seattle-weather.csv", ("date",),
            measure="temp_max", drop="wind", category="weather"),
    Dataset("us_employment", "vega_datasets", "_data/us-employment.csv", ("month",),
            measure="construction", drop="utilities"),
)
BY_NAME = {d.name: d for d in CORPUS}


def package_file(package: str, path: str) -> Path:
    """A data file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (pip install {package})")
    found = Path(next(iter(spec.submodule_search_locations))) / path
    if not found.is_file():
        raise FileNotFoundError(f"{package} does not ship {path} (looked at {found})")
    return found


def available(dataset: Dataset) -> bool:
    return importlib.util.find_spec(dataset.package) is not None


def load(dataset: Dataset) -> pl.DataFrame:
    """The whole table, typed by a full scan, reshaped and in time order."""
    df = pl.read_csv(package_file(dataset.package, dataset.path), comment_prefix="#",
                     infer_schema_length=None)
    if dataset.reshape is not None:
        df = dataset.reshape(df)
    return df.sort(list(dataset.time), maintain_order=True) if dataset.time else df


def splits(df: pl.DataFrame, parts: int = SPLITS) -> list[pl.DataFrame]:
    """``parts`` consecutive slices of nearly equal size, in order."""
    bounds = np.linspace(0, df.height, parts + 1).round().astype(int)
    return [df.slice(int(a), int(b - a)) for a, b in itertools.pairwise(bounds)]


def inject(fault: str, later: pl.DataFrame, dataset: Dataset, *, seed: int = 0) -> pl.DataFrame | None:
    """``later`` with one fault; None where the fault does not apply (no categorical column)."""
    rng = np.random.default_rng(seed)
    m = dataset.measure
    if fault == "type_change":
        # the numbers arrive as text with a decimal comma, as a spreadsheet in another locale writes them
        return later.with_columns(pl.col(m).cast(pl.String).str.replace(".", ",", literal=True))
    if fault == "missing_column":
        return later.drop(dataset.drop)
    if fault == "null_flood":
        hit = pl.Series(rng.random(later.height) < NULL_FLOOD_SHARE)
        return later.with_columns(pl.when(hit).then(None).otherwise(pl.col(m)).alias(m))
    if fault == "category_flood":
        if dataset.category is None:
            return None
        hit = rng.random(later.height) < CATEGORY_FLOOD_SHARE
        unseen = pl.Series([f"unseen_{k}" for k in rng.integers(0, 3, later.height)])
        c = dataset.category
        return later.with_columns(pl.when(pl.Series(hit)).then(unseen).otherwise(pl.col(c)).alias(c))
    if fault == "unit_change":
        return later.with_columns(pl.col(m) * UNIT_FACTOR)
    if fault == "duplicate_rows":
        return pl.concat([later] * DUPLICATE_FACTOR)
    raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")


# -- the two inferrers compared -----------------------------------------------------------

Outcome = str  # "clean", "warning" or "rejected"


class Ours:
    """The appliance's own inference and validation: the code the ingest path runs."""

    name = "appliance"

    def __init__(self, first: pl.DataFrame, dataset: str) -> None:
        from appliance.validate.contracts import infer_contract

        self.contract = infer_contract(first, dataset=dataset)

    def check(self, later: pl.DataFrame) -> tuple[Outcome, str]:
        from appliance.validate.contracts import validate_frame

        report = validate_frame(later, self.contract, contract_version=1)
        if not report.passed:
            return "rejected", report.headline()
        return ("warning", report.headline()) if report.warnings else ("clean", "")


class PanderaInferred:
    """``pandera.infer_schema`` on pandas, as a pandas + pandera user would write it."""

    name = "pandera"

    def __init__(self, first: pl.DataFrame, dataset: str) -> None:
        import pandera.pandas as pa

        self.schema = pa.infer_schema(first.to_pandas())

    def check(self, later: pl.DataFrame) -> tuple[Outcome, str]:
        from pandera.errors import SchemaError, SchemaErrors

        try:
            self.schema.validate(later.to_pandas(), lazy=True)
        except SchemaErrors as exc:
            cases = exc.failure_cases
            first = cases.iloc[0] if len(cases) else None
            return "rejected", "" if first is None else f"{first['column']}: {first['check']}"
        except SchemaError as exc:
            return "rejected", str(exc).splitlines()[0]
        return "clean", ""


INFERRERS: dict[str, type[Ours] | type[PanderaInferred]] = {
    Ours.name: Ours, PanderaInferred.name: PanderaInferred,
}


@dataclass(frozen=True)
class Trial:
    dataset: str
    split: int
    fault: str | None        # None: the natural later split
    outcome: Outcome
    headline: str


def run_dataset(dataset: Dataset, inferrer: str, *, parts: int = SPLITS) -> list[Trial]:
    """Infer from the first split, then check every later split as is and with each fault."""
    df = load(dataset)
    first, *later = splits(df, parts)
    judge = INFERRERS[inferrer](first, dataset.name)
    trials: list[Trial] = []
    for k, part in enumerate(later, start=1):
        trials.append(Trial(dataset.name, k, None, *judge.check(part)))
        for fault in FAULTS:
            faulty = inject(fault, part, dataset, seed=k)
            if faulty is not None:
                trials.append(Trial(dataset.name, k, fault, *judge.check(faulty)))
    return trials
