"""The outlier detector fitted beside a model: an isolation forest, exported as its own ONNX.

At training, :func:`fit_detector` fits a scikit-learn ``IsolationForest`` on the training
rows' model inputs, preprocessed as the model preprocesses them (numeric columns
imputed with their median, categorical columns one-hot encoded with the same
missing-value rule; no scaling: an isolation tree splits at a uniform random point
between a column's minimum and maximum, so scaling changes nothing). ``contamination``
sets its threshold: that share of the training rows scores below it.

A numeric value far outside the training range (below ``min - m * range`` or above
``max + m * range``, ``m = range_margin``) also makes a row an outlier: an isolation
tree sends such a value where the most extreme training value goes, so on its own it
barely shortens the row's path (a row with age 500 among customers aged 18-90 scores
like the oldest customer).

The export (:func:`detector_onnx`) is a small graph built here rather than by
skl2onnx's IsolationForest converter, which makes a graph of thousands of nodes
(1.9 ms a row and 11 s to convert, measured) where this one has ``k + 3`` nodes for
``k`` categorical columns (about 20 us a row):

- each categorical input through one ``LabelEncoder`` (category -> its index, ``""``
  -> the index of ``(missing)``, an unknown category -> -1), concatenated after the
  numeric inputs;
- one ``TreeEnsembleRegressor`` (SUM) holding every isolation tree, a leaf weighing the
  path length sklearn adds up for a row that ends there (depth + the average path
  length of the leaf's training rows - 1), divided by ``n_trees * c(max_samples)``.
  A split on a one-hot column "category == c" becomes ``BRANCH_NEQ`` on that column's
  index (one-hot ``x <= t`` for a threshold ``t`` in [0, 1) is "not c"); a numeric
  threshold is the largest float32 not above sklearn's double threshold, so a float32
  input takes the branch sklearn takes; a missing number takes its median's branch
  (the imputer's effect). Its base value is minus the threshold sklearn's
  ``offset_`` (the contamination quantile) stands for, and one small tree per numeric
  column adds -1 when the value is out of range.
- ``score`` is that sum: the row's mean normalized path length minus the threshold
  (negative: an outlier; each out-of-range value takes 1 more off); ``outlier`` is
  ``score < 0``. sklearn's ``decision_function`` is ``-2 ** -(score + threshold) - offset``
  for a row in range, with the same sign.

The graph takes the model's own inputs (same names and types), so serving feeds it
the very tensors it fed the model. :func:`detector_parity` checks it against the
native detector as the model's parity check does.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from appliance.train.child.export import TARGET_OPSET, canonical, check_onnx_bytes
from appliance.train.child.parity import onnx_feeds, onnx_session
from appliance.train.child.pipeline import CATEGORICAL, MISSING_CATEGORY, NUMERIC, Feature
from appliance.train.estimators import EstimatorInfo

N_ESTIMATORS = 100
MIN_ROWS = 20                 # fewer training rows than this: no detector
SCORE_ABS_TOL = 1e-5          # parity: |onnx - native| score
OUT_OF_RANGE = 1.0            # taken off the score for each out-of-range value
PARITY_ROWS = 20_000
OUTPUTS = ("score", "outlier")  # suffixed with "_" while an input has the name


def fit_detector(info: EstimatorInfo, features: list[Feature], X_train: Any, *,
                 contamination: float, seed: int) -> Any:
    """The fitted ``Pipeline([("pre", ColumnTransformer), ("iforest", IsolationForest)])``."""
    from sklearn.ensemble import IsolationForest
    from sklearn.pipeline import Pipeline

    from appliance.train.child.pipeline import build_pipeline

    forest = IsolationForest(n_estimators=N_ESTIMATORS, contamination=contamination,
                             random_state=seed)
    pre = build_pipeline(replace(info, needs_scaling=False), forest, features).steps[0][1]
    Xt = pre.fit_transform(X_train)
    forest.fit(Xt)
    return Pipeline([("pre", pre), ("iforest", forest)])


def detector_onnx(detector: Any, features: list[Feature], input_names: list[str], *,
                  bounds: Any = None, metadata: dict[str, str] | None = None) -> bytes:
    """Single-file ONNX bytes for a fitted detector, taking ``input_names`` (the model's inputs,
    one per feature, in order) and answering ``score`` (float) and ``outlier`` (bool), in that
    order (each name suffixed with ``_`` if an input has it).
    ``bounds`` (from :func:`range_bounds`) adds the out-of-range rule."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    pre, forest = detector.steps[0][1], detector.steps[1][1]
    numeric = [n for f, n in zip(features, input_names, strict=True) if f.kind == NUMERIC]
    categorical = [n for f, n in zip(features, input_names, strict=True) if f.kind == CATEGORICAL]
    blocks = {name: step for name, step, _ in pre.transformers_}
    medians = np.asarray(blocks["num"].named_steps["impute"].statistics_, dtype=np.float32) \
        if numeric else np.zeros(0, dtype=np.float32)
    categories = [[str(c) for c in cats]
                  for cats in blocks["cat"].named_steps["onehot"].categories_] \
        if categorical else []
    taken = set(input_names)

    def name_of(wanted: str) -> str:   # never an input's name (a column may be "score")
        while wanted in taken:
            wanted += "_"
        taken.add(wanted)
        return wanted

    score, outlier = name_of(OUTPUTS[0]), name_of(OUTPUTS[1])
    X, zero = name_of("outliers.X"), name_of("outliers.zero")
    nodes, pieces = [], list(numeric)
    for k, (name, cats) in enumerate(zip(categorical, categories, strict=True)):
        keys, values = list(cats), [float(i) for i in range(len(cats))]
        if MISSING_CATEGORY in cats:   # "" is imputed to (missing) before the one-hot
            keys.append("")
            values.append(float(cats.index(MISSING_CATEGORY)))
        code = name_of(f"outliers.code_{k}")
        nodes.append(helper.make_node("LabelEncoder", [name], [code], domain="ai.onnx.ml",
                                      keys_strings=keys, values_floats=values,
                                      default_float=-1.0))
        pieces.append(code)
    trees = _Trees()
    _add_forest(trees, forest, medians, [len(c) for c in categories])
    if bounds is not None:
        for j, (lo, hi) in enumerate(bounds):
            if np.isfinite(lo) and np.isfinite(hi):
                trees.range_tree(j, float(lo), float(hi))
    threshold, _ = _path_threshold(forest)
    nodes += [helper.make_node("Concat", pieces, [X], axis=1),
              trees.node(X, score, base=-threshold),
              helper.make_node("Less", [score, zero], [outlier])]
    inputs = [helper.make_tensor_value_info(
        n, TensorProto.FLOAT if f.kind == NUMERIC else TensorProto.STRING, [None, 1])
        for f, n in zip(features, input_names, strict=True)]
    outputs = [helper.make_tensor_value_info(score, TensorProto.FLOAT, [None, 1]),
               helper.make_tensor_value_info(outlier, TensorProto.BOOL, [None, 1])]
    graph = helper.make_graph(nodes, "outliers", inputs, outputs, initializer=[
        helper.make_tensor(zero, TensorProto.FLOAT, [1], [0.0])])
    model = helper.make_model(graph, opset_imports=[
        helper.make_opsetid(domain, version) for domain, version in TARGET_OPSET.items()])
    model.ir_version = 8
    meta = {"appliance.kind": "outliers", "appliance.contamination": str(forest.contamination),
            "appliance.trees": str(len(forest.estimators_)), **(metadata or {})}
    onnx.helper.set_model_props(model, meta)
    data: bytes = canonical(model).SerializeToString()
    check_onnx_bytes(data)
    return data


class _Trees:
    """The attributes of one ``TreeEnsembleRegressor`` (SUM of leaf weights), tree by tree."""

    def __init__(self) -> None:
        self.n = 0
        self.attrs: dict[str, list[Any]] = {k: [] for k in (
            "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_modes", "nodes_values",
            "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
            "target_treeids", "target_nodeids", "target_ids", "target_weights")}

    def add(self, tree: int, node: int, mode: str, feature: int = 0, value: float = 0.0,
            true: int = 0, false: int = 0, missing_true: bool = False,
            weight: float | None = None) -> None:
        a = self.attrs
        for key, v in (("nodes_treeids", tree), ("nodes_nodeids", node),
                       ("nodes_featureids", feature), ("nodes_modes", mode),
                       ("nodes_values", value), ("nodes_truenodeids", true),
                       ("nodes_falsenodeids", false),
                       ("nodes_missing_value_tracks_true", int(missing_true))):
            a[key].append(v)
        if weight is not None:
            for key, v in (("target_treeids", tree), ("target_nodeids", node),
                           ("target_ids", 0), ("target_weights", weight)):
                a[key].append(v)

    def range_tree(self, column: int, lo: float, hi: float) -> None:
        """-1 when ``column`` is below ``lo`` or above ``hi`` (a missing value is in range)."""
        t, self.n = self.n, self.n + 1
        self.add(t, 0, "BRANCH_LT", column, lo, true=1, false=2)
        self.add(t, 1, "LEAF", weight=-OUT_OF_RANGE)
        self.add(t, 2, "BRANCH_LEQ", column, hi, true=3, false=4, missing_true=True)
        self.add(t, 3, "LEAF", weight=0.0)
        self.add(t, 4, "LEAF", weight=-OUT_OF_RANGE)

    def node(self, x: str, y: str, *, base: float) -> Any:
        from onnx import helper

        attrs: dict[str, Any] = dict(self.attrs)
        return helper.make_node("TreeEnsembleRegressor", [x], [y], domain="ai.onnx.ml",
                                n_targets=1, aggregate_function="SUM", post_transform="NONE",
                                base_values=[base], **attrs)


def _add_forest(trees: _Trees, forest: Any, medians: Any, n_categories: list[int]) -> None:
    """Every isolation tree; a leaf weighs its path length / (n_trees * c(max_samples))."""
    import numpy as np

    n_numeric = len(medians)
    # transformed column -> detector column, and its category index (-1: a number)
    target = np.arange(n_numeric).tolist()
    category = [-1] * n_numeric
    for k, n in enumerate(n_categories):
        target += [n_numeric + k] * n
        category += list(range(n))
    to_column, to_category = np.asarray(target), np.asarray(category)
    _, denominator = _path_threshold(forest)
    a = trees.attrs
    for t, (tree, used) in enumerate(zip(forest.estimators_, forest.estimators_features_,
                                         strict=True)):
        nodes = tree.tree_
        n = nodes.node_count
        leaf = nodes.children_left == -1
        split = np.asarray(used)[np.where(leaf, 0, nodes.feature)]
        column, cat = to_column[split], to_category[split]
        number = ~leaf & (cat < 0)
        # x32 <= t (t a double) is x32 <= the largest float32 not above t
        cut = nodes.threshold.astype(np.float32)
        cut = np.where(cut.astype(np.float64) > nodes.threshold,
                       np.nextafter(cut, np.float32(-np.inf)), cut)
        # one-hot "x <= t" (t in [0, 1)) is "this row's category is not c"
        value = np.where(number, cut, np.where(leaf, 0.0, cat)).astype(np.float64)
        medians_at = np.asarray(medians, dtype=np.float32)[np.where(number, column, 0)] \
            if n_numeric else np.zeros(n, dtype=np.float32)
        a["nodes_treeids"] += [trees.n + t] * n
        a["nodes_nodeids"] += list(range(n))
        a["nodes_featureids"] += np.where(leaf, 0, column).tolist()
        a["nodes_modes"] += np.where(leaf, "LEAF", np.where(number, "BRANCH_LEQ",
                                                            "BRANCH_NEQ")).tolist()
        a["nodes_values"] += value.tolist()
        a["nodes_truenodeids"] += np.where(leaf, 0, nodes.children_left).tolist()
        a["nodes_falsenodeids"] += np.where(leaf, 0, nodes.children_right).tolist()
        # a missing number takes its median's branch (what the imputer does)
        a["nodes_missing_value_tracks_true"] += (number & (medians_at <= cut)).astype(int).tolist()
        leaves = np.flatnonzero(leaf)
        weight = (forest._decision_path_lengths[t] + forest._average_path_length_per_tree[t]
                  - 1.0) / denominator
        a["target_treeids"] += [trees.n + t] * len(leaves)
        a["target_nodeids"] += leaves.tolist()
        a["target_ids"] += [0] * len(leaves)
        a["target_weights"] += weight[leaves].tolist()
    trees.n += len(forest.estimators_)


def _float32_at_most(value: float) -> float:
    import numpy as np

    v = np.float32(value)
    if float(v) > value:
        v = np.nextafter(v, np.float32(-np.inf))
    return float(v)


def _path_threshold(forest: Any) -> tuple[float, float]:
    """(the normalized mean path length below which a row is an outlier, n_trees * c(psi)).

    sklearn: ``decision = -2 ** (-paths / denominator) - offset`` is negative exactly when
    ``paths / denominator < -log2(-offset)``."""
    import math

    denominator = len(forest.estimators_) * _average_path_length(forest.max_samples_)
    offset = float(forest.offset_)
    return (-math.log2(-offset) if offset < 0 else math.inf), (denominator or 1.0)


def native_scores(detector: Any, frame: Any, bounds: Any = None) -> Any:
    """What the ONNX graph's ``score`` should be, from the native detector (float64)."""
    import numpy as np

    forest = detector.steps[1][1]
    decision = np.asarray(detector.decision_function(frame), dtype=np.float64)
    threshold, _ = _path_threshold(forest)
    paths = -np.log2(-(decision + float(forest.offset_)))
    score = paths - threshold
    if bounds is not None:
        numeric = detector.steps[0][1].transformers_[0][2] if bounds.shape[0] else []
        values = frame[list(numeric)].to_numpy(dtype=np.float32)
        lo, hi = bounds[:, 0].astype(np.float32), bounds[:, 1].astype(np.float32)
        with np.errstate(invalid="ignore"):
            out = ((values < lo) | (values > hi)) & np.isfinite(lo) & np.isfinite(hi)
        score = score - OUT_OF_RANGE * out.sum(axis=1)
    return score


def range_bounds(X_train: Any, features: list[Feature], margin: float | None) -> Any:
    """Per numeric feature (in order): [min - margin * range, max + margin * range], or None."""
    import numpy as np

    numeric = [f.name for f in features if f.kind == NUMERIC]
    if margin is None or not numeric:
        return None
    values = X_train[numeric].to_numpy(dtype=np.float64)
    empty = np.isnan(values).all(axis=0)   # no value: no bounds (nanmin would warn)
    values[:, empty] = np.inf
    lo, hi = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    width = hi - lo
    return np.stack([lo - margin * width, hi + margin * width], axis=1)


def _average_path_length(n: int) -> float:
    """sklearn's ``c(n)``: the average path length of an unsuccessful search in a BST of n."""
    import math

    if n <= 1:
        return 0.0
    if n == 2:
        return 1.0
    return 2.0 * (math.log(n - 1.0) + 0.5772156649015329) - 2.0 * (n - 1.0) / n


def detector_parity(onnx_bytes: bytes, frame: Any, features: list[Feature],
                    native: Any) -> dict[str, Any]:
    """The ONNX detector against ``native`` (:func:`native_scores` of ``frame``, a prepared
    frame): scores within :data:`SCORE_ABS_TOL`, flags identical except where the native
    score is within that tolerance of the threshold."""
    import numpy as np

    session = onnx_session(onnx_bytes)
    columns = {inp.name: f.name for inp, f in zip(session.get_inputs(), features, strict=True)}
    score, flag = session.run(None, onnx_feeds(session, frame, columns))
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    flag = np.asarray(flag, dtype=bool).reshape(-1)
    diff = np.abs(score - native)
    near = np.abs(native) <= SCORE_ABS_TOL
    mismatch = (flag != (native < 0)) & ~near
    n = len(frame)
    return {"passed": bool(n > 0 and not mismatch.any() and (diff <= SCORE_ABS_TOL).all()),
            "rows_checked": int(n), "max_abs_diff": float(diff.max()) if n else None,
            "flag_mismatches": int(mismatch.sum()), "tolerance": {"score_abs": SCORE_ABS_TOL}}


def outlier_report(info: EstimatorInfo, features: list[Feature], input_names: list[str],
                   X_train: Any, X_holdout: Any, *, contamination: float, seed: int,
                   range_margin: float | None, metadata: dict[str, str] | None = None
                   ) -> tuple[bytes | None, dict[str, Any]]:
    """(ONNX bytes, or None when there is no usable detector; the facts for the model card)."""
    import pandas as pd

    if len(X_train) < MIN_ROWS:
        return None, {"fitted": False, "reason": f"fewer than {MIN_ROWS} training rows"}
    detector = fit_detector(info, features, X_train, contamination=contamination, seed=seed)
    bounds = range_bounds(X_train, features, range_margin)
    data = detector_onnx(detector, features, input_names, bounds=bounds, metadata=metadata)
    sample = X_train.sample(min(len(X_train), 2000), random_state=seed)
    frame = pd.concat([X_holdout, sample], ignore_index=True).iloc[:PARITY_ROWS]
    native = native_scores(detector, frame, bounds)
    parity = detector_parity(data, frame, features, native)
    holdout, training = native[:len(X_holdout)], native[len(X_holdout):]
    facts: dict[str, Any] = {
        "fitted": parity["passed"], "method": "isolation_forest", "contamination": contamination,
        "trees": N_ESTIMATORS, "range_margin": range_margin,
        "training_rate": float((training < 0).mean()) if len(training) else None,
        "holdout_rate": float((holdout < 0).mean()) if len(holdout) else None,
        "parity": parity}
    if not parity["passed"]:
        facts["reason"] = "the ONNX detector disagreed with the native one"
        return None, facts
    return data, facts
