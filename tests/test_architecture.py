"""docs/architecture.md stays true: the modules it names exist, its picture is the code's.

The picture is drawn by scripts/architecture_diagram.py from the real import
graph and the layers contract; a change that moves an import between layers
fails here until ``scripts/architecture-diagram`` is run and the page committed.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "architecture.md"
_DOTTED = re.compile(r"(?<![\w./])appliance(?:\.[A-Za-z_]\w*)+")
_PATH = re.compile(r"`((?:appliance|ui|scripts|tests|docs)/[\w./-]*)`")


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "architecture_diagram", REPO / "scripts" / "architecture_diagram.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("architecture_diagram", module)
    spec.loader.exec_module(module)
    return module


diagram = _load_script()


def _module_file(dotted: str) -> Path | None:
    base = REPO.joinpath(*dotted.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _top_level_names(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _missing_reference(dotted: str) -> str | None:
    """Why ``appliance.x.y[.name]`` does not resolve (a module, or a module's top-level name)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        path = _module_file(".".join(parts[:cut]))
        if path is None:
            continue
        rest = parts[cut:]
        if not rest:
            return None
        if len(rest) == 1 and rest[0] in _top_level_names(path):
            return None
        return f"{dotted}: {'.'.join(parts[:cut])} has no top-level {rest[0]!r}"
    return f"{dotted}: no such module"


def test_architecture_page_names_only_modules_that_exist() -> None:
    text = PAGE.read_text()
    dotted = sorted(set(_DOTTED.findall(text)))
    paths = sorted(set(_PATH.findall(text)))

    problems = [p for p in (_missing_reference(d) for d in dotted) if p]
    problems += [f"{p}: no such file or folder" for p in paths if not (REPO / p).exists()]

    assert len(dotted) + len(paths) > 40  # the page names modules; the patterns still find them
    assert problems == []


@pytest.fixture(scope="module")
def picture() -> Any:
    return diagram.draw()


def test_architecture_diagram_is_what_the_code_draws(picture: Any) -> None:
    text = PAGE.read_text()
    start, end = text.index(diagram.BEGIN), text.index(diagram.END) + len(diagram.END)

    assert text[start:end] == diagram.block(picture), "stale picture: run scripts/architecture-diagram"


def test_diagram_draws_every_layer_of_the_contract_top_down(picture: Any) -> None:
    contract = diagram.layers()

    titles = [title for title, _ in picture.rows]
    assert titles[:len(contract)] == [" | ".join(u.removeprefix("appliance.") for u in row)
                                      for row in contract]
    assert titles[len(contract):] == [diagram.OUTSIDE, diagram.FOUNDATION]
    # the seams every reader looks for are arrows: api over runtime, the CLI onto the server
    assert ("appliance.api", "appliance.runtime") in picture.arrows
    assert ("appliance.server", "appliance.api") in picture.arrows
    assert ("appliance.train.service", "appliance.train.child.worker") in picture.starts
    assert picture.http_base == "/api/v1"


def test_reduce_drops_only_arrows_a_longer_path_implies() -> None:
    arrows = {("a", "b"): False, ("b", "c"): False, ("a", "c"): True, ("c", "d"): False,
              ("d", "c"): False, ("a", "d"): False}

    assert diagram._reduce(arrows) == {("a", "b"): False, ("b", "c"): False, ("c", "d"): False,
                                       ("d", "c"): False}


def test_process_starts_and_console_imports_are_read_from_the_source(tmp_path: Path) -> None:
    (tmp_path / "appliance" / "x").mkdir(parents=True)
    (tmp_path / "ui").mkdir()
    (tmp_path / "appliance" / "__init__.py").write_text("")
    (tmp_path / "appliance" / "x" / "__init__.py").write_text("")
    (tmp_path / "appliance" / "x" / "boss.py").write_text(
        'import sys\n'
        'CMD = [sys.executable, "-m", "appliance.x.child", "--fast"]\n'
        'UI = (sys.executable, "-m", "streamlit", "run", "Home.py")\n'
        'PIP = [sys.executable, "-m", "pip", "wheel"]\n'
        'SELF = ["python", "-m", "appliance"]\n')
    (tmp_path / "ui" / "Home.py").write_text(
        "import streamlit\nfrom appliance.client import ApplianceClient\nimport appliance.errors\n")

    assert diagram.process_starts(tmp_path) == {
        ("appliance.x.boss", "appliance.x.child"), ("appliance.x.boss", diagram.CONSOLE),
        ("appliance.x.boss", "appliance.__main__")}
    assert diagram.console_imports(tmp_path) == {"appliance.client", "appliance.errors"}


def test_import_graph_reads_absolute_relative_and_function_level_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "appliance"
    (pkg / "x").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("")
    (pkg / "x" / "__init__.py").write_text("from . import a\n")
    (pkg / "x" / "a.py").write_text(
        "import json\nfrom appliance.errors import Oops\nfrom .b import thing\n"
        "def later():\n    import appliance.x.c\n    from appliance import errors\n")
    (pkg / "x" / "b.py").write_text("from ..errors import Oops\n")
    (pkg / "x" / "c.py").write_text("import appliance.x.c.nothing\n")  # itself: no arrow

    assert diagram.import_graph(tmp_path) == {
        "appliance": {}, "appliance.errors": {}, "appliance.x": {"appliance.x.a": False},
        "appliance.x.a": {"appliance.errors": False, "appliance.x.b": False, "appliance.x.c": True},
        "appliance.x.b": {"appliance.errors": False}, "appliance.x.c": {}}


def test_rewrite_replaces_only_the_block_and_refuses_a_page_without_markers() -> None:
    page = f"# A\n\nbefore\n{diagram.BEGIN}\nold\n{diagram.END}\nafter\n"

    assert diagram.rewrite(page, "NEW") == "# A\n\nbefore\nNEW\nafter\n"
    with pytest.raises(SystemExit, match="no diagram markers"):
        diagram.rewrite("# A\n", "NEW")


@pytest.mark.parametrize(("reference", "ok"), [
    ("appliance.runtime", True),
    ("appliance.runtime.build", True),
    ("appliance.store.db.ProcessLock", True),
    ("appliance.training", False),          # the old flat module, moved to appliance.train
    ("appliance.runtime.no_such_name", False),
])
def test_missing_reference_tells_a_module_from_a_stale_name(reference: str, ok: bool) -> None:
    assert (_missing_reference(reference) is None) is ok
