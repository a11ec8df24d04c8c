"""The training pipeline: column choice, raw-column preparation, preprocessing, split.

The exported ONNX takes the raw columns, so preprocessing lives in the pipeline:
numeric columns get a median imputer (plus a StandardScaler when the estimator
needs scaling), categorical columns a constant imputer and a one-hot encoder
that ignores unknown categories.

Both the native pipeline and the ONNX graph see the same prepared values
(:func:`prepare_frame`): numeric columns are rounded to float32 (what the ONNX
graph takes, and what tree models compare in) and carried as float64 with NaN
for missing; categorical columns are strings with ``""`` for missing. Callers of
the ONNX model must send missing strings as ``""`` and missing numbers as NaN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from appliance.errors import InvalidInput
from appliance.train.estimators import CLASSIFICATION, EstimatorInfo

NUMERIC = "numeric"
CATEGORICAL = "categorical"
MISSING_CATEGORY = "(missing)"   # what an empty categorical value is imputed to
MAX_CLASSES = 500


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str      # the Parquet column's polars dtype, as text
    kind: str       # NUMERIC | CATEGORICAL

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def feature_kind(dtype: Any) -> str | None:
    """NUMERIC, CATEGORICAL, or None when a column of this polars dtype cannot be a feature."""
    import polars as pl

    if dtype.is_numeric() or dtype == pl.Boolean:
        return NUMERIC
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum | pl.Categorical):
        return CATEGORICAL
    return None


def select_features(schema: dict[str, Any], *, target: str, include: list[str] | None,
                    exclude: list[str] | None) -> tuple[list[Feature], list[str]]:
    """The job's feature columns (in data order unless ``include`` orders them) and warnings."""
    warnings: list[str] = []
    for name in include or []:
        if name not in schema:
            raise InvalidInput(f"feature {name!r} is not in the data; columns are: "
                               f"{', '.join(list(schema)[:50])}", detail={"field": "features.include"})
        if name == target:
            raise InvalidInput(f"the target {target!r} cannot also be a feature",
                               detail={"field": "features.include"})
    for name in exclude or []:
        if name not in schema:
            warnings.append(f"features.exclude names {name!r}, which is not in the data")
    dropped = set(exclude or []) | {target}
    names = [n for n in (include if include else list(schema)) if n not in dropped]
    features = []
    for name in names:
        kind = feature_kind(schema[name])
        if kind is None:
            if include:
                raise InvalidInput(f"feature {name!r} has type {schema[name]}, which a model cannot "
                                   "take; use numbers, booleans or strings",
                                   detail={"field": "features.include"})
            warnings.append(f"column {name!r} ({schema[name]}) was left out: not a number or string")
            continue
        features.append(Feature(name, str(schema[name]), kind))
    if not features:
        raise InvalidInput("no feature columns are left after include/exclude",
                           detail={"field": "features"})
    return features, warnings


def prepare_frame(frame: Any, features: list[Feature]) -> Any:
    """A polars frame -> the pandas frame both the pipeline and ONNX inputs are made from."""
    import polars as pl

    exprs = []
    for f in features:
        col = pl.col(f.name)
        if f.kind == NUMERIC:
            exprs.append(col.cast(pl.Float32).cast(pl.Float64).fill_nan(None))
        else:
            exprs.append(col.cast(pl.String).fill_null(""))
    pdf = frame.select(exprs).to_pandas()
    for f in features:
        if f.kind == CATEGORICAL:
            pdf[f.name] = pdf[f.name].astype(object)
    return pdf


def build_pipeline(info: EstimatorInfo, estimator: Any, features: list[Feature]) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [f.name for f in features if f.kind == NUMERIC]
    categorical = [f.name for f in features if f.kind == CATEGORICAL]
    blocks = []
    if numeric:
        steps: list[tuple[str, Any]] = [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True))]
        if info.needs_scaling:
            steps.append(("scale", StandardScaler()))
        blocks.append(("num", Pipeline(steps), numeric))
    if categorical:
        blocks.append(("cat", Pipeline([
            ("impute", SimpleImputer(missing_values="", strategy="constant",
                                     fill_value=MISSING_CATEGORY, keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]), categorical))
    pre = ColumnTransformer(blocks, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("pre", pre), ("model", estimator)])


def numeric_feature_positions(features: list[Feature]) -> dict[int, str]:
    """Transformed column index -> raw numeric column, for pipelines without scaling.

    The ColumnTransformer puts the numeric block first, one output per input.
    """
    numeric = [f.name for f in features if f.kind == NUMERIC]
    return dict(enumerate(numeric))


def encode_target(values: Any, task: str) -> tuple[Any, list[Any] | None]:
    """(y, classes): class indices 0..k-1 plus the sorted original labels, or floats."""
    import numpy as np

    if task == CLASSIFICATION:
        classes, y = np.unique(values, return_inverse=True)
        labels = [c.item() if hasattr(c, "item") else c for c in classes]
        if len(labels) < 2:
            shown = repr(labels[0] if labels else None)
            raise InvalidInput(f"the target has one class only ({shown}); a classifier needs "
                               "at least two", detail={"field": "target"})
        if len(labels) > MAX_CLASSES:
            raise InvalidInput(f"the target has {len(labels)} distinct values, more than the "
                               f"{MAX_CLASSES} classes a classifier here may have; is it a "
                               "regression target?", detail={"field": "target"})
        return y.astype(np.int64), labels
    try:
        return np.asarray(values, dtype=np.float64), None
    except (TypeError, ValueError) as exc:
        raise InvalidInput("a regression target must be numeric", detail={"field": "target"}) from exc


def split_rows(y: Any, task: str, *, test_size: float, seed: int) -> tuple[Any, Any]:
    """Seeded train/test row positions, stratified for classification when possible."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    n_test = int(np.ceil(test_size * len(y)))
    if len(y) < 4 or n_test < 1 or len(y) - n_test < 2:
        raise InvalidInput(f"too few rows ({len(y)}) to split into train and test",
                           detail={"field": "split.test_size"})
    stratify = None
    if task == CLASSIFICATION:
        counts = np.bincount(y)
        k = int((counts > 0).sum())
        if counts[counts > 0].min() >= 2 and n_test >= k and len(y) - n_test >= k:
            stratify = y
    train, test = train_test_split(rows, test_size=test_size, random_state=seed, shuffle=True,
                                   stratify=stratify)
    if task == CLASSIFICATION and len(np.unique(y[train])) < 2:
        raise InvalidInput("the training split holds one class only; add rows or change the split",
                           detail={"field": "split"})
    return np.sort(train), np.sort(test)
