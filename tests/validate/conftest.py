"""Shared frames for the contract and summary tests: small, real polars frames."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest


def people(n: int = 200, seed: int = 0) -> pl.DataFrame:
    """A frame shaped like a first file: ints, floats, a low-cardinality string, a nullable column."""
    rng = np.random.default_rng(seed)
    return pl.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "balance": rng.normal(100.0, 50.0, n),
            "city": rng.choice(["berlin", "lima", "oslo", "pune"], n),
            "email": [f"user{i}@example.com" for i in range(n)],
            "score": [None if i % 10 == 0 else float(i % 7) for i in range(n)],
            "active": rng.random(n) > 0.5,
            "joined": [dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 365, n)],
        }
    )


@pytest.fixture
def first_file() -> pl.DataFrame:
    return people()


@pytest.fixture
def second_file() -> pl.DataFrame:
    return people(seed=1)
