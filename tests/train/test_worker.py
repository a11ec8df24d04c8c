"""The training child end to end: one request line in, progress lines and one result line out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .conftest import job


def worker(request: bytes, timeout: float = 120) -> tuple[int, list[dict[str, Any]]]:
    proc = subprocess.run([sys.executable, "-m", "appliance.train.child.worker"], input=request,
                          capture_output=True, timeout=timeout)
    lines = proc.stdout.decode().splitlines()
    return proc.returncode, [json.loads(line) for line in lines]   # stdout holds JSON lines only


def test_worker_request_trains_and_reports(data_dir: Path, tmp_path: Path) -> None:
    request = {"job": job("xgboost.XGBClassifier", "label", params={"n_estimators": 5},
                          features={"exclude": ["customer id", "amount"]}),
               "parquet_path": str(data_dir / "mixed.parquet"), "out_dir": str(tmp_path / "out"),
               "memory_mb": 4096}
    code, messages = worker(json.dumps(request).encode() + b"\n")
    assert code == 0
    progress = [m["progress"] for m in messages[:-1]]
    assert progress and all(set(m) == {"progress"} for m in messages[:-1])
    fractions = [p["fraction"] for p in progress]
    assert fractions == sorted(fractions) and progress[-1] == {"stage": "done", "fraction": 1.0}
    result = messages[-1]["result"]
    assert result["ok"], result["error"]
    assert result["parity"]["passed"] and result["parity"]["threshold_rows"] > 0
    assert Path(result["onnx_path"]) == tmp_path / "out" / "model.onnx"
    assert (tmp_path / "out" / "model.onnx").stat().st_size > 0


def test_worker_bad_request_reports_failure() -> None:
    code, messages = worker(b"this is not json\n", timeout=60)
    assert code == 0 and len(messages) == 1
    result = messages[0]["result"]
    assert result["ok"] is False and result["error"]["type"] == "internal"


def test_worker_bad_job_reports_field(data_dir: Path, tmp_path: Path) -> None:
    request = {"job_yaml": "name: t\ndataset: d\ntarget: target\nmodel: {kind: os.system}\n",
               "parquet_path": str(data_dir / "diabetes.parquet"), "out_dir": str(tmp_path)}
    code, messages = worker(json.dumps(request).encode() + b"\n", timeout=60)
    result = messages[-1]["result"]
    assert code == 0 and result["ok"] is False
    assert result["error"]["field"] == "model.kind" and result["error"]["line"] == 4
