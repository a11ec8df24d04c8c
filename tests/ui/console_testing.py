"""Helpers shared by the console tests: log in through the real form, read tables back."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
from onnx_models import servable_onnx  # noqa: F401  (re-exported for the console tests)
from streamlit.testing.v1 import AppTest

from appliance.client import ApplianceClient

UI = Path(__file__).resolve().parents[2] / "ui"
HOME = UI / "Home.py"
DATASETS_PAGE = "pages/1_Datasets.py"
AUDIT_PAGE = "pages/2_Audit.py"
RUNS_PAGE = "pages/3_Runs.py"
MODELS_PAGE = "pages/4_Models.py"
SERVING_PAGE = "pages/5_Serving.py"
MONITORING_PAGE = "pages/6_Monitoring.py"
JOBS_PAGE = "pages/7_Jobs.py"
TIMEOUT = 60


def new_console() -> AppTest:
    return AppTest.from_file(str(HOME), default_timeout=TIMEOUT)


def log_in(at: AppTest, username: str, password: str) -> AppTest:
    at.run()
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    at.button(key="login_submit").click()
    return at.run()


def open_page(at: AppTest, page: str) -> AppTest:
    return at.switch_page(page).run()


def texts(elements: Any) -> list[str]:
    return [str(e.value) for e in elements]


def tables(at: AppTest, *columns: str) -> list[pd.DataFrame]:
    """The tables on the page that have all of ``columns``, in page order."""
    frames = [d.value for d in at.dataframe]
    return [df for df in frames if set(columns) <= set(df.columns)]


def table(at: AppTest, *columns: str) -> pd.DataFrame:
    found = tables(at, *columns)
    assert found, f"no table with columns {columns}"
    return found[0]


def has_key(widgets: Any, key: str) -> bool:
    return any(w.key == key for w in widgets)


def charts(at: AppTest) -> list[Any]:
    return list(at.get("vega_lite_chart"))


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error, texts(at.error)


def tiny_onnx(offset: float) -> bytes:
    """A valid single-file ONNX model: y = x + offset, on one float input of 3 columns."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "offset"], ["y"])],
        "ui_add",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        initializer=[helper.make_tensor("offset", TensorProto.FLOAT, [1], [offset])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out: bytes = model.SerializeToString()
    return out


def upload_onnx(api: ApplianceClient, name: str, data: bytes) -> dict[str, Any]:
    """Register ``data`` as the next version of model ``name`` (raw ONNX body)."""
    out: dict[str, Any] = api.request(
        "POST", f"/models/{name}/versions", content=data,
        headers={"Content-Type": "application/octet-stream"})
    return out


def console_lib() -> ModuleType:
    """ui/console_lib.py, imported the way Streamlit does (ui/ is not a package)."""
    spec = importlib.util.spec_from_file_location("console_lib", UI / "console_lib.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
