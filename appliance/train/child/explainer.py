"""What explanations need from training, written beside ``model.onnx`` (never pickled).

``explain/background.parquet``: up to :data:`BACKGROUND_ROWS` prepared training rows
(seeded sample), the reference the model-agnostic method replaces features with.

``explain/preprocess.json`` and ``explain/booster.json`` (XGBoost only): the fitted
preprocessing as plain numbers and strings (numeric medians and, if any, scaler
means and scales; categorical categories in one-hot order), and the booster in
XGBoost's own JSON format. Loading either parses JSON; no code runs. The
preprocessing is checked at training against the pipeline's own transform on
the holdout: if the two differ by a bit, no booster is written and the version
is explained by the model-agnostic method instead.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.train.child.pipeline import MISSING_CATEGORY, NUMERIC, Feature

BACKGROUND_ROWS = 100
FOLDER = "explain"
BACKGROUND = "explain/background.parquet"
PREPROCESS = "explain/preprocess.json"
BOOSTER = "explain/booster.json"
ARTIFACTS = (BACKGROUND, PREPROCESS, BOOSTER)


@dataclass(frozen=True)
class Preprocess:
    """The pipeline's ColumnTransformer as data: raw columns in, the booster's matrix out."""

    numeric: tuple[str, ...]
    medians: tuple[float, ...]
    means: tuple[float, ...] | None
    scales: tuple[float, ...] | None
    categorical: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]

    @property
    def owners(self) -> list[str]:
        """The raw column behind each transformed column, in the matrix's order."""
        return list(self.numeric) + [c for c, cats in zip(self.categorical, self.categories,
                                                          strict=True) for _ in cats]

    def transform(self, columns: dict[str, Any]) -> Any:
        """Raw columns (numbers as floats with NaN missing, text with ``""`` missing)
        -> the float64 matrix the estimator was fitted on."""
        import numpy as np

        blocks = []
        for i, name in enumerate(self.numeric):
            values = np.asarray(columns[name], dtype=np.float64).reshape(-1)
            values = np.where(np.isnan(values), self.medians[i], values)
            if self.means is not None and self.scales is not None:
                values = (values - self.means[i]) / self.scales[i]
            blocks.append(values[:, None])
        for name, cats in zip(self.categorical, self.categories, strict=True):
            raw = np.asarray(columns[name], dtype=object).reshape(-1)
            text = np.array([MISSING_CATEGORY if v is None or v == "" else str(v) for v in raw],
                            dtype=object)
            blocks.append((text[:, None] == np.array(cats, dtype=object)[None, :])
                          .astype(np.float64))
        n = len(next(iter(columns.values()))) if columns else 0
        return np.hstack(blocks) if blocks else np.zeros((n, 0))

    def to_json(self) -> str:
        return json.dumps({"numeric": list(self.numeric), "medians": list(self.medians),
                           "means": None if self.means is None else list(self.means),
                           "scales": None if self.scales is None else list(self.scales),
                           "categorical": list(self.categorical),
                           "categories": [list(c) for c in self.categories]})

    @classmethod
    def from_json(cls, text: str | bytes) -> Preprocess:
        doc = json.loads(text)
        means, scales = doc.get("means"), doc.get("scales")
        return cls(numeric=tuple(str(n) for n in doc["numeric"]),
                   medians=tuple(float(v) for v in doc["medians"]),
                   means=None if means is None else tuple(float(v) for v in means),
                   scales=None if scales is None else tuple(float(v) for v in scales),
                   categorical=tuple(str(n) for n in doc["categorical"]),
                   categories=tuple(tuple(str(c) for c in cats) for cats in doc["categories"]))


def preprocess_of(pipeline: Any, features: list[Feature]) -> Preprocess:
    """The fitted ColumnTransformer of ``build_pipeline`` read into a :class:`Preprocess`."""
    pre = pipeline.steps[0][1]
    numeric = tuple(f.name for f in features if f.kind == NUMERIC)
    categorical = tuple(f.name for f in features if f.kind != NUMERIC)
    medians: tuple[float, ...] = ()
    means = scales = None
    categories: tuple[tuple[str, ...], ...] = ()
    for name, block, _ in pre.transformers_:
        if name == "num":
            stats = block.named_steps["impute"].statistics_
            medians = tuple(0.0 if not math.isfinite(float(v)) else float(v) for v in stats)
            if "scale" in block.named_steps:
                scaler = block.named_steps["scale"]
                means = tuple(float(v) for v in scaler.mean_)
                scales = tuple(float(v) for v in scaler.scale_)
        elif name == "cat":
            categories = tuple(tuple(str(c) for c in cats)
                               for cats in block.named_steps["onehot"].categories_)
    return Preprocess(numeric, medians, means, scales, categorical, categories)


def frame_columns(frame: Any) -> dict[str, Any]:
    """A prepared pandas frame as raw column arrays."""
    return {str(c): frame[c].to_numpy() for c in frame.columns}


def write_explainer(pipeline: Any, features: list[Feature], flavor: str, X_train: Any,
                    X_test: Any, out_dir: Path, seed: int) -> list[str]:
    """Write the explanation artifacts; returns warnings (sentences) for the run."""
    import numpy as np
    import polars as pl

    folder = out_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    n = min(BACKGROUND_ROWS, len(X_train))
    pick = np.sort(rng.choice(len(X_train), size=n, replace=False))
    pl.from_pandas(X_train.iloc[pick].reset_index(drop=True)).write_parquet(folder / "background.parquet")
    if flavor != "xgboost":
        return []
    spec = preprocess_of(pipeline, features)
    sample = X_test.iloc[:2000]
    ours = spec.transform(frame_columns(sample))
    theirs = np.asarray(pipeline.steps[0][1].transform(sample), dtype=np.float64)
    if ours.shape != theirs.shape or not np.array_equal(ours, theirs):
        return ["the preprocessing could not be recorded exactly, so this version is "
                "explained by sampling Shapley values rather than exact TreeSHAP"]
    (folder / "preprocess.json").write_text(spec.to_json())
    booster = pipeline.steps[-1][1].get_booster()
    (folder / "booster.json").write_bytes(bytes(booster.save_raw(raw_format="json")))
    return []
