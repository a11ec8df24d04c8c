"""The console is a pure HTTP client (DESIGN.md §2): pin what ui/ may import."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

UI = Path(__file__).resolve().parents[2] / "ui"
ALLOWED = {"appliance.client", "appliance.errors", "streamlit", "pandas", "altair",
           "console_lib", "console_views", "console_drift"}
PAGES = ["Home.py", "console_lib.py", "console_views.py", "console_drift.py",
         "pages/1_Datasets.py",
         "pages/2_Audit.py", "pages/3_Runs.py", "pages/4_Models.py", "pages/5_Serving.py",
         "pages/6_Monitoring.py", "pages/7_Jobs.py", "pages/8_Lineage.py"]


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def allowed(module: str) -> bool:
    top = module.split(".")[0]
    if top in sys.stdlib_module_names and top != "appliance":
        return True
    return any(module == a or module.startswith(a + ".") for a in ALLOWED)


def test_every_console_page_is_checked():
    checked = {str(p.relative_to(UI)) for p in UI.rglob("*.py")}
    assert set(PAGES) <= checked, sorted(set(PAGES) - checked)


@pytest.mark.parametrize("path", sorted(UI.rglob("*.py")), ids=lambda p: str(p.relative_to(UI)))
def test_console_imports_only_the_client_and_ui_libraries(path: Path):
    forbidden = sorted(m for m in imported_modules(path) if not allowed(m))
    assert not forbidden, f"{path.name} imports {forbidden}: the console talks HTTP only"
