"""Datasets as Parquet files (bundled scikit-learn sets and a synthetic mixed-type table)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from appliance.train.child.run import run_job


def mixed_frame(n: int = 400, seed: int = 0) -> pl.DataFrame:
    """Numbers, integers, booleans and strings, with missing values, a date column, and
    a binary label ('yes'/'no') plus a numeric target that depend on them."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50.0, 15.0, n)
    age = rng.integers(18, 80, n)
    score = rng.normal(0.0, 1.0, n)
    color = rng.choice(["red", "green", "blue"], n)
    size = rng.choice(["S", "M", "L", "XL"], n)
    member = rng.random(n) < 0.4
    group = rng.choice(["a", "b"], n)
    logit = 0.08 * (income - 50) + 1.2 * score + 0.9 * (color == "red") - 0.6 * member
    label = np.where(logit + rng.normal(0, 0.5, n) > 0, "yes", "no")
    amount = 2.0 * income + 10 * score + 5 * (size == "XL") + rng.normal(0, 2, n)
    income_missing = rng.random(n) < 0.1
    age_missing = rng.random(n) < 0.05
    color_missing = rng.random(n) < 0.08
    return pl.DataFrame({
        "customer id": np.arange(n),
        "income/month": [None if m else float(v) for v, m in zip(income, income_missing)],
        "age": pl.Series([None if m else int(v) for v, m in zip(age, age_missing)], dtype=pl.Int64),
        "score": score,
        "color": [None if m else str(v) for v, m in zip(color, color_missing)],
        "size": pl.Series(size.tolist(), dtype=pl.Categorical),
        "member": member,
        "group": group.tolist(),
        "signup": [dt.date(2024, 1, 1) + dt.timedelta(days=int(i % 300)) for i in range(n)],
        "label": label.tolist(),
        "amount": amount,
    })


def sklearn_frame(name: str) -> pl.DataFrame:
    from sklearn import datasets

    loader = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
              "diabetes": datasets.load_diabetes}[name]
    return pl.from_pandas(loader(as_frame=True).frame)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("train-data")
    for name in ("breast_cancer", "wine", "diabetes"):
        sklearn_frame(name).write_parquet(d / f"{name}.parquet")
    mixed_frame().write_parquet(d / "mixed.parquet")
    return d


def job(kind: str, target: str = "target", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": "t", "dataset": "d", "target": target,
                            "model": {"kind": kind, "params": extra.pop("params", {})},
                            "split": {"test_size": 0.25, "seed": 7}}
    spec.update(extra)
    return spec


def run(data_dir: Path, out: Path, spec: dict[str, Any], dataset: str, **request: Any) -> dict[str, Any]:
    stages: list[tuple[str, float]] = []
    result = run_job({"job": spec, "parquet_path": str(data_dir / f"{dataset}.parquet"),
                      "out_dir": str(out), **request}, lambda s, f: stages.append((s, f)))
    result["_stages"] = stages
    return result
