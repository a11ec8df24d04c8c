"""Drift benchmark: our DriftService against Evidently's DataDriftPreset, same frames.

100,000 x 20 numeric reference vs current (four columns shifted by half a standard
deviation, one by a change of scale). Ours is timed end to end through
``DriftService.check``: read both dataset versions' Parquet, KS per column with a
Bonferroni correction, prediction drift (the champion scores both samples with
onnxruntime), and the stored report. Evidently gets the frames already in memory
(pandas) and runs ``Report([DataDriftPreset()])``. One warm-up each (imports,
the ONNX session), then the median of ``--repeat`` runs. Target: >= 5x faster,
finding the same drifted columns.

    python bench/drift.py [--rows 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

COLS = [f"f{i:02d}" for i in range(20)]
SHIFTED = {"f00", "f01", "f02", "f03", "f04"}


def frames(rows: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.Series]:
    rng = np.random.default_rng(0)
    ref = rng.normal(0.0, 1.0, size=(rows, len(COLS)))
    cur = rng.normal(0.0, 1.0, size=(rows, len(COLS)))
    cur[:, :4] += 0.5        # f00..f03: mean shift
    cur[:, 4] *= 1.8         # f04: scale change
    target = (ref[:, 5] + ref[:, 6] - ref[:, 7] + rng.normal(0, 1, rows) > 0).astype(np.int64)
    return (pl.DataFrame(ref, schema=COLS), pl.DataFrame(cur, schema=COLS),
            pl.Series("y", target))


def onnx_model(ref: pl.DataFrame, y: pl.Series) -> tuple[bytes, dict[str, Any]]:
    """A logistic regression with one float input per column, as the trainer exports it."""
    import json

    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from appliance.train.child.export import signature_of

    pipe = Pipeline([("cols", ColumnTransformer([("num", "passthrough", COLS)])),
                     ("lr", LogisticRegression(max_iter=200))])
    pipe.fit(ref.to_pandas(), y.to_numpy())
    model = convert_sklearn(pipe, initial_types=[(c, FloatTensorType([None, 1])) for c in COLS],
                            options={id(pipe.steps[-1][1]): {"zipmap": False}}, target_opset=17)
    onnx.helper.set_model_props(model, {"appliance.columns": json.dumps({c: c for c in COLS}),
                                        "appliance.classes": json.dumps([0, 1]),
                                        "appliance.task": "classification"})
    return model.SerializeToString(), signature_of(model)


def setup(home: Path, ref: pl.DataFrame, cur: pl.DataFrame, y: pl.Series) -> Any:
    from appliance.config import Settings
    from appliance.domain.principal import Principal
    from appliance.domain.roles import Role
    from appliance.monitor.drift import DriftService
    from appliance.runtime import build

    app = build(Settings(home=home))
    who = Principal("bench", Role.admin)
    for name, frame in (("ref.parquet", ref), ("cur.parquet", cur)):
        path = home.parent / name
        frame.write_parquet(path)
        with path.open("rb") as fh:
            out = app.ingest.ingest_stream(fh, file_name=name, dataset="bench", who=who)
        assert out.outcome == "accepted", out
    data, signature = onnx_model(ref, y)
    app.registry.register(model="bench", onnx_bytes=data, flavor="sklearn", by="bench",
                          task="classification", signature=signature, dataset="bench",
                          dataset_version=1)
    app.registry.set_alias("bench", "champion", 1, reason="bench", by="bench", force=True)
    drift = getattr(app, "drift", None) or DriftService(app.store, app.registry, app.datasets,
                                                        app.settings.home, events=app.events)
    return app, drift


def evidently_run(ref_pd: Any, cur_pd: Any) -> set[str]:
    from evidently import Report
    from evidently.presets import DataDriftPreset

    snapshot = Report([DataDriftPreset()]).run(cur_pd, ref_pd)
    drifted = set()
    for metric in snapshot.dict()["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        # a p-value method drifts below its threshold, a distance method at or above it
        value, threshold = float(metric["value"]), float(config["threshold"])
        if (value < threshold) if "p_value" in str(config.get("method")) else (value >= threshold):
            drifted.add(str(config["column"]))
    return drifted


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ref, cur, y = frames(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        app, drift = setup(Path(tmp) / "home", ref, cur, y)
        try:
            drift.check("bench", dataset_version=2, by="bench")  # warm-up: imports, session
            ours_t, report = [], None
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                report = drift.check("bench", dataset_version=2, by="bench")
                ours_t.append(time.perf_counter() - t0)
            assert report is not None
            ours = set(report.drifted)
        finally:
            app.close()
    ref_pd, cur_pd = ref.to_pandas(), cur.to_pandas()
    evidently_run(ref_pd.head(1000), cur_pd.head(1000))  # warm-up
    ev_t, theirs = [], set()
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        theirs = evidently_run(ref_pd, cur_pd)
        ev_t.append(time.perf_counter() - t0)
    ours_s, ev_s = statistics.median(ours_t), statistics.median(ev_t)
    print(f"rows {args.rows} x {len(COLS)} columns, median of {args.repeat}")
    print(f"ours (read Parquet + KS/Bonferroni + prediction drift + store): {ours_s:.3f} s "
          f"{[round(t, 3) for t in ours_t]}")
    print(f"evidently DataDriftPreset (frames in memory):               {ev_s:.3f} s "
          f"{[round(t, 3) for t in ev_t]}")
    print(f"ratio: {ev_s / ours_s:.1f}x faster (target >= 5x)")
    print(f"drifted, ours: {sorted(ours)}; evidently: {sorted(theirs)}; expected: "
          f"{sorted(SHIFTED)}; same: {ours == theirs}")
    print(f"prediction drift: {report.prediction.get('test')} "
          f"p={report.prediction.get('p_value')}")
    return 0 if ours == theirs == SHIFTED and ev_s / ours_s >= 5 else 1


if __name__ == "__main__":
    sys.exit(main())
