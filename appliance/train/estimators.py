"""The estimator allowlist: job files name models, they never give import paths.

A job's ``model.kind`` is looked up in :data:`ALLOWLIST` (by its full name, such
as ``sklearn.ensemble.RandomForestClassifier`` or ``xgboost.XGBClassifier``, or by
its short class name). Only after that lookup is a module imported, and the
module name comes from this table, never from the user's string: ``os.system``
or ``subprocess.Popen`` are simply not found.

``HistGradientBoostingClassifier/Regressor`` are left out: skl2onnx 1.20 cannot
convert them with scikit-learn 1.9 (the TreeEnsemble node fails to build:
"Expected an int, got a boolean"), so their models could never be registered.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from appliance.errors import InvalidInput

CLASSIFICATION = "classification"
REGRESSION = "regression"


@dataclass(frozen=True)
class EstimatorInfo:
    name: str              # canonical, e.g. "sklearn.linear_model.LogisticRegression"
    module: str            # a constant from this file, imported only after lookup
    cls: str
    task: str              # CLASSIFICATION | REGRESSION
    needs_scaling: bool    # StandardScaler in front of the numeric columns
    flavor: str            # "sklearn" | "xgboost"
    tree_based: bool       # split thresholds exist (for the parity check)

    @property
    def short(self) -> str:
        return self.cls


def _e(module: str, cls: str, task: str, *, scale: bool, tree: bool = False) -> EstimatorInfo:
    flavor = "xgboost" if module == "xgboost" else "sklearn"
    return EstimatorInfo(f"{module}.{cls}", module, cls, task, scale, flavor, tree)


_C, _R = CLASSIFICATION, REGRESSION
_ENTRIES = [
    _e("sklearn.linear_model", "LogisticRegression", _C, scale=True),
    _e("sklearn.linear_model", "LinearRegression", _R, scale=True),
    _e("sklearn.linear_model", "Ridge", _R, scale=True),
    _e("sklearn.linear_model", "Lasso", _R, scale=True),
    _e("sklearn.linear_model", "ElasticNet", _R, scale=True),
    _e("sklearn.linear_model", "SGDClassifier", _C, scale=True),
    _e("sklearn.linear_model", "SGDRegressor", _R, scale=True),
    _e("sklearn.tree", "DecisionTreeClassifier", _C, scale=False, tree=True),
    _e("sklearn.tree", "DecisionTreeRegressor", _R, scale=False, tree=True),
    _e("sklearn.ensemble", "RandomForestClassifier", _C, scale=False, tree=True),
    _e("sklearn.ensemble", "RandomForestRegressor", _R, scale=False, tree=True),
    _e("sklearn.ensemble", "ExtraTreesClassifier", _C, scale=False, tree=True),
    _e("sklearn.ensemble", "ExtraTreesRegressor", _R, scale=False, tree=True),
    _e("sklearn.ensemble", "GradientBoostingClassifier", _C, scale=False, tree=True),
    _e("sklearn.ensemble", "GradientBoostingRegressor", _R, scale=False, tree=True),
    _e("sklearn.naive_bayes", "GaussianNB", _C, scale=False),
    _e("sklearn.neighbors", "KNeighborsClassifier", _C, scale=True),
    _e("sklearn.neighbors", "KNeighborsRegressor", _R, scale=True),
    _e("xgboost", "XGBClassifier", _C, scale=False, tree=True),
    _e("xgboost", "XGBRegressor", _R, scale=False, tree=True),
]

ALLOWLIST: dict[str, EstimatorInfo] = {e.name: e for e in _ENTRIES}
_BY_NAME: dict[str, EstimatorInfo] = {**ALLOWLIST, **{e.cls: e for e in _ENTRIES}}

# Defaults we set when the job does not: reproducible (seeded, one thread) and
# free of avoidable warnings. The job's own params always win.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "LogisticRegression": {"max_iter": 1000},
    "SGDClassifier": {"loss": "log_loss"},      # gives predict_proba, so roc_auc/log_loss
    "XGBClassifier": {"verbosity": 0},
    "XGBRegressor": {"verbosity": 0},
}
# Parameters a YAML value cannot sensibly set (objects and callables).
# ``missing`` must stay NaN for the XGBoost converter; the others take objects or
# change what the exported graph would have to do.
_REFUSED_PARAMS = {"callbacks", "missing", "enable_categorical", "feature_types",
                   "feature_weights", "device", "early_stopping_rounds"}


def known_names() -> list[str]:
    return sorted(ALLOWLIST)


def resolve(kind: object) -> EstimatorInfo:
    """The allowlist entry for ``kind``; InvalidInput for anything else."""
    info = _BY_NAME.get(kind) if isinstance(kind, str) else None
    if info is None:
        shown = repr(kind)[:100]
        raise InvalidInput(
            f"unknown estimator {shown}: choose one of {', '.join(known_names())}",
            detail={"field": "model.kind", "allowed": known_names()})
    return info


def estimator_class(info: EstimatorInfo) -> Any:
    import importlib

    module = importlib.import_module(info.module)   # a constant from ALLOWLIST
    return getattr(module, info.cls)


def param_names(info: EstimatorInfo) -> set[str]:
    return set(estimator_class(info)().get_params(deep=False))


def check_params(info: EstimatorInfo, params: dict[str, Any], *, field: str = "model.params") -> None:
    """Refuse a parameter the estimator does not have, naming it."""
    known = param_names(info) - _REFUSED_PARAMS
    for name, value in params.items():
        if name not in known:
            raise InvalidInput(
                f"unknown parameter {name!r} for {info.cls}; known: {', '.join(sorted(known))}",
                detail={"field": f"{field}.{name}"})
        if not _plain(value):
            raise InvalidInput(f"parameter {name!r} must be a number, string, boolean, null or a "
                               "list of those", detail={"field": f"{field}.{name}"})


def _plain(value: object) -> bool:
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_plain(v) for v in value)
    return False


def make_estimator(info: EstimatorInfo, params: dict[str, Any], *, seed: int) -> Any:
    """An unfitted estimator: our defaults, then the job's params. Seeded, one thread."""
    check_params(info, params)
    cls = estimator_class(info)
    names = set(cls().get_params(deep=False))
    merged: dict[str, Any] = dict(_DEFAULTS.get(info.cls, {}))
    if "random_state" in names:
        merged["random_state"] = seed
    if info.flavor == "xgboost":   # sklearn's n_jobs=None already means one thread
        merged["n_jobs"] = 1
    merged.update(params)
    try:
        return cls(**merged)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"bad parameters for {info.cls}: {exc}",
                           detail={"field": "model.params"}) from exc
