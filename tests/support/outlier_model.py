"""A model version with an outlier detector, built in-process (no trainer child) and
registered as training registers one: the customers churn model and its isolation forest."""

from __future__ import annotations

from functools import cache
from typing import Any

from appliance.demo import make_customers

CONTAMINATION = 0.02


@cache
def churn_with_detector(rows: int = 600, seed: int = 4) -> tuple[bytes, bytes, dict[str, Any]]:
    """(model ONNX, detector ONNX, the detector's facts) for a LogisticRegression on
    ``rows`` customers."""
    from appliance.train import estimators
    from appliance.train.child.export import export_onnx
    from appliance.train.child.outliers import outlier_report
    from appliance.train.child.pipeline import build_pipeline, prepare_frame, select_features

    frame = make_customers(rows, seed=seed)
    info = estimators.resolve("LogisticRegression")
    features, _ = select_features(dict(frame.schema), target="churned", include=None,
                                  exclude=["customer_id"])
    X = prepare_frame(frame, features)
    pipeline = build_pipeline(info, estimators.make_estimator(info, {}, seed=0), features)
    pipeline.fit(X, frame["churned"].to_numpy())
    model, signature = export_onnx(pipeline, features, info, classes=[0, 1])
    detector, facts = outlier_report(
        info, features, [i["name"] for i in signature["inputs"]], X.iloc[:450],
        X.iloc[450:].reset_index(drop=True), contamination=CONTAMINATION, seed=0,
        range_margin=0.5)
    assert detector is not None, facts
    return model, detector, facts


def register_churn(registry: Any, name: str = "churny", *, detector: bool = True) -> int:
    """Register the churn model (with its detector unless told not to) as ``name``'s
    champion; its version number."""
    model, onnx, facts = churn_with_detector()
    version = registry.register(model=name, onnx_bytes=model, flavor="sklearn",
                                task="classification", by="tests",
                                outlier_onnx=onnx if detector else None,
                                facts={"outliers": facts} if detector else {})
    registry.set_alias(name, "champion", version.number, reason="tests", by="tests", force=True)
    return int(version.number)


def customers(n: int, seed: int = 100) -> list[dict[str, Any]]:
    """``n`` customers as predict records (no id, no label)."""
    return make_customers(n, seed=seed).drop("churned", "customer_id").to_dicts()


def out_of_range(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with an age no customer has (far beyond the training range)."""
    return {**record, "age": 900}
