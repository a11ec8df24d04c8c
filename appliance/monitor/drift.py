"""Data and prediction drift against the champion's training data.

The reference is the dataset version the champion was trained on, restricted to
the model's input columns; the current data is either a window of the
prediction log or another version of the same dataset. Each column gets the test
Evidently would pick for its kind, cardinality and size, or the one the job file names
(:mod:`appliance.monitor.selection`, tests in :mod:`appliance.monitor.stattests`);
p-value tests are corrected across features (Bonferroni, or FDR: Benjamini-Hochberg as
alibi-detect does it). One classifier-based detector scores the whole input at once
(:mod:`appliance.monitor.multivariate`). Prediction drift compares the champion's
predictions on the reference sample (scored here with onnxruntime) with the predictions
it made in the window (or on the current dataset): chi-square over classes, KS for a
regression.

Big frames are sampled deterministically (``max_rows`` a side, fixed seed): a
dataset version as it is read (the rows with the smallest seeded hash of their
position, a row group at a time: ``DatasetService.sample_frame``), never whole;
the prediction log's window by its query's limit.
The work runs in the caller's thread: a check on 100k rows takes about a
second of CPU, so the API runs it off the event loop.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.domain.drift import DriftOptions, DriftReport, MultivariateDrift
from appliance.domain.events import DriftChecked
from appliance.domain.lineage import drift_node, model_node, predictions_node, version_node
from appliance.domain.principal import Principal
from appliance.domain.registry import CHAMPION, ModelVersion
from appliance.errors import InvalidInput, NotFound
from appliance.events import EventBus
from appliance.monitor.selection import CORRECTIONS, column_kind, feature_tests
from appliance.store import drift as q
from appliance.store import lineage as lq
from appliance.store.db import Store

log = logging.getLogger(__name__)

MAX_WINDOW_HOURS = 24 * 365


class DriftService:
    def __init__(self, store: Store, registry: Any, datasets: Any, home: Path, *,
                 events: EventBus, flush: Callable[[], object] | None = None,
                 max_rows: int = 100_000,
                 seed: int = 0, correction: str = "bonferroni") -> None:
        if correction not in CORRECTIONS:
            raise ValueError(f"correction is one of {CORRECTIONS}")
        self.store = store
        self.registry = registry
        self.datasets = datasets
        self.home = home
        self.flush = flush  # drains the prediction log's queue before a window is read
        self.events = events  # DriftChecked: p-values on /metrics, the drift alert
        self.max_rows = max_rows
        self.seed = seed
        self.correction = correction
        self._sessions: dict[tuple[str, int], _Scorer] = {}
        self._lock = threading.Lock()

    # -- checks ------------------------------------------------------------------

    def check(self, model: str, *, window_hours: float = 24, dataset_version: int | None = None,
              p_val: float = 0.05, options: DriftOptions | None = None,
              by: Principal | str = "system") -> DriftReport:
        """Run one drift check, store its report and return it. ``options`` name a test or
        a threshold per column (the job file's ``drift:``) and turn the multivariate
        detector off."""
        started = time.perf_counter()
        if not isinstance(p_val, int | float) or not 0 < p_val < 1:
            raise InvalidInput("p_val must be between 0 and 1", detail={"field": "p_val"})
        if not isinstance(window_hours, int | float) or not 0 < window_hours <= MAX_WINDOW_HOURS:
            raise InvalidInput(f"window_hours must be in (0, {MAX_WINDOW_HOURS}]",
                               detail={"field": "window_hours"})
        champion = self.registry.aliases(model).get(CHAMPION)  # NotFound for an unknown model
        if champion is None:
            raise NotFound(f"model {model!r} has no champion: there is no reference to compare with")
        version: ModelVersion = self.registry.version(model, champion)
        dataset, ref_number = version.dataset, version.dataset_version
        if not dataset or not ref_number:
            raise InvalidInput(f"{model} v{champion} was not trained on a registered dataset "
                               "version: there is no reference data", detail={"version": champion})
        columns = version.input_columns()
        if not columns:
            raise InvalidInput(f"{version.model} v{version.number} has no input signature")
        reference = self._dataset_frame(dataset, int(ref_number), columns)
        if reference.height == 0:
            raise InvalidInput(f"the reference {dataset}@{ref_number} has no rows")
        numeric = {c: reference.schema[c].is_numeric() or str(reference.schema[c]) == "Boolean"
                   for c in columns}
        kinds = {c: column_kind(reference[c]) for c in columns}
        options = options or DriftOptions()
        named = sorted((set(options.tests) | set(options.thresholds)) - set(columns))
        if named:
            raise InvalidInput(f"drift options name {named[0]!r}, which is not an input column "
                               f"of {model} v{champion}", detail={"field": named[0]})

        if dataset_version is not None:
            current = self._dataset_frame(dataset, int(dataset_version), columns)
            current_name = version_node(dataset, int(dataset_version))
            if current.height == 0:
                raise InvalidInput(f"{dataset}@{dataset_version} has no rows")
        else:
            window_end = dt.datetime.now(dt.UTC)
            current = self._window_frame(model, window_hours, numeric)
            current_name = f"log:{model}:{window_hours:g}h"

        features = feature_tests(reference, current, kinds, p_val=p_val,
                                 correction=self.correction, options=options)
        multivariate = (self._multivariate(reference, current, kinds, p_val)
                        if options.multivariate else None)
        prediction = self._prediction_drift(model, champion, version, reference,
                                            current if dataset_version is not None else None,
                                            window_hours, p_val)
        drift = (any(f.drift for f in features) or bool(prediction.get("drift"))
                 or bool(multivariate and multivariate.drift))
        report = DriftReport(
            id=q.new_id(), model=model, version=champion,
            reference=version_node(dataset, int(ref_number)), current=current_name,
            drift=drift, p_val=float(p_val), correction=self.correction,
            features=features, prediction=prediction, multivariate=multivariate,
            rows_reference=reference.height, rows_current=current.height,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            created_at=dt.datetime.now(dt.UTC),
            created_by=by.actor if isinstance(by, Principal) else str(by),
        )
        with self.store.write() as s:
            q.add_report(s, report)
            report_node = drift_node(report.id)
            lq.add_edge(s, src=report.reference, dst=report_node, relation="reference_of")
            lq.add_edge(s, src=model_node(model, champion), dst=report_node, relation="checked_by")
            if dataset_version is not None:
                lq.add_edge(s, src=current_name, dst=report_node, relation="current_of")
            else:
                window = predictions_node(model, champion,
                                          window_end - dt.timedelta(hours=window_hours),
                                          window_end)
                lq.add_edge(s, src=model_node(model, champion), dst=window, relation="served")
                lq.add_edge(s, src=window, dst=report_node, relation="current_of")
        drifted = list(report.drifted)
        if prediction.get("drift"):
            drifted.append("<predictions>")
        if multivariate is not None and multivariate.drift:
            drifted.append("<multivariate>")
        self.events.publish(DriftChecked(
            model=model, version=champion, report_id=str(report.id), current=current_name,
            drift=drift, drifted=tuple(drifted),
            p_values={f.column: f.p_value for f in features if f.p_value is not None},
            distances={f.column: f.distance for f in features if f.distance is not None},
            multivariate_auc=multivariate.auc if multivariate is not None else None))
        return report

    def _multivariate(self, reference: Any, current: Any, kinds: dict[str, Any],
                      p_val: float) -> MultivariateDrift | None:
        from appliance.monitor.multivariate import multivariate_drift

        try:
            return multivariate_drift(reference, current, kinds, p_val=p_val, seed=self.seed)
        except ModuleNotFoundError as exc:  # alibi-detect absent: the per-column tests stand
            log.warning("multivariate drift skipped: %s", exc)
            return None

    # -- reading reports -----------------------------------------------------------

    def history(self, model: str, limit: int = 50) -> list[DriftReport]:
        """Stored reports, newest first."""
        if not isinstance(limit, int) or not 0 < limit <= 1000:
            raise InvalidInput("limit must be 1-1000", detail={"field": "limit"})
        with self.store.read() as s:
            out = q.reports(s, model, limit=limit)
        if not out:
            self.registry.model(model)  # NotFound for an unknown model
        return out

    def latest(self, model: str) -> DriftReport:
        out = self.history(model, 1)
        if not out:
            raise NotFound(f"model {model!r} has no drift report yet")
        return out[0]

    # -- data ----------------------------------------------------------------------

    def _dataset_frame(self, dataset: str, number: int, columns: list[str]) -> Any:
        import polars as pl

        path = self.datasets.parquet_path(dataset, number)  # NotFound for an unknown version
        have = set(pl.read_parquet_schema(path))
        missing = [c for c in columns if c not in have]
        if missing:
            raise InvalidInput(f"{dataset}@{number} lacks the model's input column {missing[0]!r}",
                               detail={"field": missing[0]})
        # at most max_rows seeded rows, read a row group at a time: never the whole version
        return self.datasets.sample_frame(dataset, number, limit=self.max_rows, seed=self.seed,
                                          columns=columns)

    def _window_frame(self, model: str, hours: float, numeric: dict[str, bool]) -> Any:
        import polars as pl

        if self.flush is not None:
            self.flush()
        since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
        with self.store.analytics() as s:
            table = q.logged_inputs(s, model, since, numeric, limit=self.max_rows)
        if table.num_rows == 0:
            raise InvalidInput(f"model {model!r} logged no predictions in the last {hours:g} "
                               "hours: nothing to compare", detail={"reason": "no_data"})
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return frame.with_columns(
            [pl.col(c).cast(pl.Float64) if n else pl.col(c).cast(pl.Utf8)
             for c, n in numeric.items()])

    # -- predictions -----------------------------------------------------------------

    def _prediction_drift(self, model: str, champion: int, version: ModelVersion,
                          reference: Any, current: Any, hours: float,
                          p_val: float) -> dict[str, Any]:
        session = self._session(model, champion)
        classification = version.task == "classification" or session.classes is not None
        ref_pred = _score(session, reference)
        if current is not None:
            cur_pred = _score(session, current)
        else:
            since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)
            with self.store.analytics() as s:
                logged = q.logged_predictions(s, model, champion, since, limit=self.max_rows)
            if not logged:
                return {"test": None, "drift": False, "rows_current": 0,
                        "note": f"v{champion} made no predictions in the window"}
            cur_pred = logged if classification else [_float(x) for x in logged]
        if classification:
            return _chi2_classes([_key(x) for x in ref_pred], [_key(x) for x in cur_pred], p_val)
        return _ks_values([float(x) for x in ref_pred], [x for x in cur_pred if x is not None],
                          p_val)

    def _session(self, model: str, number: int) -> _Scorer:
        with self._lock:
            hit = self._sessions.get((model, number))
            if hit is not None:
                return hit
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = 2
            sess = ort.InferenceSession(self.registry.onnx_bytes(model, number),
                                        sess_options=options, providers=["CPUExecutionProvider"])
            meta = sess.get_modelmeta().custom_metadata_map
            columns = _loads(meta.get("appliance.columns")) or {}
            classes = _loads(meta.get("appliance.classes"))
            hit = _Scorer(
                session=sess,
                inputs=[(i.name, str(columns.get(i.name, i.name)), i.type)
                        for i in sess.get_inputs()],
                outputs=len(sess.get_outputs()),
                classes=classes if isinstance(classes, list) else None,
            )
            self._sessions[(model, number)] = hit
            return hit


@dataclass(frozen=True)
class _Scorer:
    """The champion's onnxruntime session, as drift scores the reference with it."""

    session: Any
    inputs: list[tuple[str, str, str]]  # (input name, raw column, onnx type)
    outputs: int
    classes: list[Any] | None


# -- tests ---------------------------------------------------------------------------


def _chi2_classes(ref: list[str], cur: list[str], p_val: float) -> dict[str, Any]:
    from collections import Counter

    from scipy.stats import chi2_contingency

    rc, cc = Counter(ref), Counter(cur)
    classes = sorted(set(rc) | set(cc))
    out: dict[str, Any] = {
        "test": "chi2", "threshold": p_val,
        "reference": {c: rc[c] / len(ref) for c in classes},
        "current": {c: cc[c] / len(cur) for c in classes},
        "rows_current": len(cur),
    }
    if len(classes) < 2:
        return {**out, "statistic": 0.0, "p_value": 1.0, "drift": False}
    stat, p, _, _ = chi2_contingency([[rc[c] for c in classes], [cc[c] for c in classes]])
    return {**out, "statistic": float(stat), "p_value": float(p), "drift": bool(p < p_val)}


def _ks_values(ref: list[float], cur: list[float], p_val: float) -> dict[str, Any]:
    from scipy.stats import ks_2samp

    ref = [x for x in ref if math.isfinite(x)]
    cur = [x for x in cur if math.isfinite(x)]
    if not ref or not cur:
        return {"test": "ks", "drift": False, "rows_current": len(cur), "note": "no values"}
    res = ks_2samp(ref, cur)
    return {"test": "ks", "statistic": float(res.statistic), "p_value": float(res.pvalue),
            "threshold": p_val, "drift": bool(res.pvalue < p_val), "rows_current": len(cur)}


# -- helpers ----------------------------------------------------------------------------


def _score(session: _Scorer, frame: Any) -> list[Any]:
    """The session's predictions for ``frame``: class labels, or regression values."""
    import numpy as np

    feeds: dict[str, Any] = {}
    for name, column, kind in session.inputs:
        series = frame[column]
        if kind == "tensor(string)":
            values = ["" if v is None else str(v) for v in series.to_list()]
            feeds[name] = np.array(values, dtype=object).reshape(-1, 1)
        else:
            dtype = {"tensor(double)": np.float64, "tensor(int64)": np.int64}.get(kind, np.float32)
            arr = series.cast(float).fill_null(float("nan")).to_numpy()
            if dtype is np.int64:
                arr = np.nan_to_num(arr, nan=0.0)
            feeds[name] = arr.astype(dtype).reshape(-1, 1)
    first = session.session.run(None, feeds)[0].reshape(-1)
    classes = session.classes
    if classes is not None:
        return [classes[int(i)] if 0 <= int(i) < len(classes) else int(i) for i in first]
    if session.outputs > 1:
        return [int(x) for x in first]
    return [float(x) for x in first]


def _key(value: Any) -> str:
    """A class as text, the way DuckDB's json_extract_string renders a logged prediction."""
    return value if isinstance(value, str) else json.dumps(value)


def _float(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None


def _loads(raw: str | None) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None
