"""A notebook-style script using the real MLflow client, unchanged, against any tracking
server: ``python notebook.py <tracking url> [--register] [--autolog]``. It prints one JSON
summary of what the client returned, with server-specific ids normalised away, so the
same script's summaries from the appliance and from ``mlflow server`` can be compared.
``--register`` registers the ONNX model ``churn`` with the alias ``champion`` through the
client first (on mlflow server; the appliance's registry is written by its own routes).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

STRIP_TAGS = ("mlflow.user", "mlflow.source.name", "mlflow.source.type",
              "mlflow.source.git.commit")


def _code(fn: Any) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        fn()
    except MlflowException as exc:
        return str(exc.error_code)
    return None


def _tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k not in STRIP_TAGS}


def tracking(out: dict[str, Any], work: Path) -> None:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric, ViewType

    client = MlflowClient()
    exp_id = mlflow.create_experiment("notebook")
    mlflow.set_experiment(experiment_id=exp_id)
    with mlflow.start_run(run_name="nb-run") as run:
        rid = run.info.run_id
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"depth": 3, "lr": "0.1"})
        mlflow.log_metric("loss", 1.0, step=0)
        mlflow.log_metric("loss", 0.5, step=1)
        now = int(time.time() * 1000)
        client.log_batch(rid, metrics=[Metric("auc", i / 10_000, now, i) for i in range(10_000)])
        mlflow.set_tag("team", "ml")
        out["param_changed"] = _code(lambda: mlflow.log_param("depth", 4))
        mlflow.set_tag("scratch", "x")
        client.delete_tag(rid, "scratch")
        notes = work / "notes.txt"
        notes.write_text("hello from the notebook")
        mlflow.log_artifact(str(notes))
        mlflow.log_artifact(str(notes), artifact_path="sub/dir")
    with mlflow.start_run(run_name="broken"):
        mlflow.log_param("alpha", 0.9)
        mlflow.log_metric("loss", 3.0)
        mlflow.end_run("FAILED")
    got = client.get_run(rid)
    out["run"] = {
        "status": got.info.status, "run_name": got.info.run_name,
        "lifecycle_stage": got.info.lifecycle_stage,
        "in_experiment": got.info.experiment_id == exp_id,
        "ended": got.info.end_time is not None and got.info.start_time is not None,
        "artifact_uri": got.info.artifact_uri.startswith("mlflow-artifacts:/"),
        "params": got.data.params, "metrics": got.data.metrics, "tags": _tags(got.data.tags),
    }
    auc = client.get_metric_history(rid, "auc")
    out["history"] = {
        "auc_points": len(auc), "auc_steps": sorted(m.step for m in auc) == list(range(10_000)),
        "auc_last": max(auc, key=lambda m: m.step).value,
        "loss": sorted((m.step, m.value) for m in client.get_metric_history(rid, "loss")),
    }
    out["artifacts"] = {
        "root": [(f.path, f.is_dir) for f in client.list_artifacts(rid)],
        "sub": [(f.path, f.is_dir) for f in client.list_artifacts(rid, "sub/dir")],
        "text": Path(client.download_artifacts(rid, "sub/dir/notes.txt", str(work))).read_text(),
    }

    def names(runs: list[Any]) -> list[str]:
        return [r.info.run_name for r in runs]

    out["search"] = {
        "all": names(mlflow.search_runs([exp_id], output_format="list", order_by=["metrics.loss DESC"])),
        "filtered": names(mlflow.search_runs(
            [exp_id], filter_string="params.alpha = '0.5' and metrics.loss < 0.6",
            output_format="list")),
        "failed": names(mlflow.search_runs(
            [exp_id], filter_string="attributes.status = 'FAILED'", output_format="list")),
        "tagged": names(mlflow.search_runs(
            [exp_id], filter_string="tags.team LIKE 'm%'", output_format="list")),
    }
    client.delete_run(rid)
    out["deleted"] = {
        "active": names(client.search_runs([exp_id])),
        "all": sorted(names(client.search_runs([exp_id], run_view_type=ViewType.ALL))),
        "stage": client.get_run(rid).info.lifecycle_stage,
    }
    client.restore_run(rid)
    out["restored"] = client.get_run(rid).info.lifecycle_stage
    exp = client.get_experiment_by_name("notebook")
    out["experiment"] = {"name": exp.name, "stage": exp.lifecycle_stage,
                         "default": client.get_experiment("0").name,
                         "missing": client.get_experiment_by_name("no-such-experiment")}
    out["errors"] = {
        "unknown_run": _code(lambda: client.get_run("0" * 32)),
        "unknown_experiment": _code(lambda: client.get_experiment("987654321")),
        "unknown_model": _code(lambda: client.get_registered_model("no-such-model")),
        "duplicate_experiment": _code(lambda: client.create_experiment("notebook")),
    }


def register_churn(work: Path) -> None:
    """What an MLflow user does to have a champion (on mlflow server)."""
    import mlflow
    import onnx
    from mlflow import MlflowClient

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "support"))
    from appliance_test_support import tiny_onnx

    with mlflow.start_run(run_name="register"):
        mlflow.onnx.log_model(onnx.load_from_string(tiny_onnx(2.0)), name="model",
                              registered_model_name="churn")
    MlflowClient().set_registered_model_alias("churn", "champion", "1")


def registry(out: dict[str, Any]) -> None:
    import mlflow
    import numpy as np
    import onnxruntime as ort
    from mlflow import MlflowClient

    client = MlflowClient()
    champion = client.get_model_version_by_alias("churn", "champion")
    x = np.array([[1.5], [-2.0]], dtype=np.float32)
    proto = mlflow.onnx.load_model("models:/churn@champion")
    session = ort.InferenceSession(proto.SerializeToString())
    pyfunc = mlflow.pyfunc.load_model("models:/churn@champion")
    out["registry"] = {
        "version": champion.version, "aliases": list(champion.aliases),
        "model_aliases": dict(client.get_registered_model("churn").aliases),
        "versions": [v.version for v in client.search_model_versions("name='churn'")],
        "onnx_predict": session.run(None, {"x": x})[0].ravel().tolist(),
        "pyfunc_predict": np.asarray(pyfunc.predict({"x": x})["y"]).ravel().tolist(),
    }


def autolog(out: dict[str, Any]) -> None:
    import mlflow
    import numpy as np
    import xgboost as xgb
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    mlflow.set_experiment("autolog")
    mlflow.autolog(log_datasets=True, silent=True)
    rng = np.random.default_rng(0)
    X = rng.random((60, 3))
    y = (X[:, 0] > 0.5).astype(int)
    with mlflow.start_run() as sk_run:
        LogisticRegression().fit(X, y)
    with mlflow.start_run() as xgb_run:
        xgb.XGBClassifier(n_estimators=5).fit(X, y, eval_set=[(X, y)], verbose=False)
    client = MlflowClient()
    sk = client.get_run(sk_run.info.run_id).data
    xg = client.get_run(xgb_run.info.run_id).data
    out["autolog"] = {
        "sklearn_params": sorted(sk.params), "sklearn_metrics": sorted(sk.metrics),
        "sklearn_score": sk.metrics.get("training_score"),
        "xgboost_params": sorted(xg.params), "xgboost_metrics": sorted(xg.metrics),
        "xgboost_history": len(client.get_metric_history(xgb_run.info.run_id,
                                                         "validation_0-logloss")),
    }


def main(argv: list[str]) -> None:
    import mlflow

    mlflow.set_tracking_uri(argv[0])
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tracking(out, work)
        if "--register" in argv:
            register_churn(work)
        registry(out)
        if "--autolog" in argv:
            autolog(out)
    print("SUMMARY " + json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1:])
