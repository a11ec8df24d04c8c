"""The package's public surface: the names ``appliance`` exports, and that importing it is free.

Like httpx's, the surface is curated and pinned here: adding or removing an
export is a decision, made by editing this list in the same change.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import appliance
from appliance import errors

EXPORTS = [
    "Appliance", "ApplianceClient", "ApplianceError", "Conflict", "ContractInvalid",
    "IngestRejected", "InsufficientDisk", "InvalidInput", "InvalidName", "NotFound",
    "Overloaded", "PermissionDenied", "RemoteError", "Settings", "StoreLocked",
    "StoreUnavailable", "Throttled", "TooLarge", "TrainingFailed", "Unauthenticated",
    "UnprocessableInput", "__version__",
    "build",
]
HEAVY = ("sklearn", "xgboost", "onnx", "onnxruntime", "skl2onnx", "duckdb", "polars", "pandas",
         "pandera", "alibi_detect", "streamlit", "fastapi", "sqlalchemy", "httpx", "pydantic",
         "dask", "distributed")


def _after_import(code: str) -> dict[str, list[str]]:
    """Run ``code`` in a fresh interpreter; which heavy and appliance modules it loaded."""
    probe = (f"{code}\nimport json, sys\nprint(json.dumps({{"
             f"'heavy': sorted(m for m in {HEAVY!r} if m in sys.modules), "
             "'appliance': sorted(m for m in sys.modules if m.startswith('appliance.'))}))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, check=True)
    loaded: dict[str, list[str]] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_public_names_are_the_pinned_list() -> None:
    assert sorted(appliance.__all__) == sorted(EXPORTS)
    assert len(set(appliance.__all__)) == len(appliance.__all__)


def test_every_error_class_is_exported() -> None:
    classes = {name for name, obj in vars(errors).items()
               if isinstance(obj, type) and issubclass(obj, errors.ApplianceError)}

    assert classes <= set(appliance.__all__)


@pytest.mark.parametrize("name", [n for n in EXPORTS if n != "__version__"])
def test_public_name_is_the_object_its_module_defines(name: str) -> None:
    import importlib

    exported = getattr(appliance, name)
    home = importlib.import_module(exported.__module__)

    assert getattr(home, name) is exported
    assert name in dir(appliance)


def test_version_matches_the_distribution() -> None:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert appliance.__version__ == pyproject["project"]["version"]


def test_unknown_name_raises_attribute_error_and_submodules_still_import() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = appliance.Nope  # type: ignore[attr-defined]
    from appliance import lockfile  # a submodule, not an export

    assert lockfile.__name__ == "appliance.lockfile"


def test_import_appliance_does_no_work_and_loads_no_heavy_library() -> None:
    loaded = _after_import("import appliance\nassert appliance.__version__")

    assert loaded == {"heavy": [], "appliance": []}


def test_import_the_client_loads_no_server_library() -> None:
    """``from appliance import ApplianceClient`` is what a script or the console pays."""
    loaded = _after_import("from appliance import ApplianceClient, NotFound")

    assert set(loaded["heavy"]) <= {"httpx"}
    assert not [m for m in loaded["appliance"] if m.split(".")[1] in ("store", "runtime", "api")]
