"""Draw the appliance's architecture from its code into docs/architecture.md.

    scripts/architecture-diagram            rewrite the diagram block in the page
    scripts/architecture-diagram --check    exit 1 if the block is not what the code gives
    scripts/architecture-diagram --print    print the block

Nothing in the picture is drawn by hand:

- the boxes are the units of the layers contract in pyproject.toml
  (``[[tool.importlinter.contracts]]`` of type ``layers``), one row per layer,
  top to bottom; modules outside the contract are grouped by their top-level
  name in a row of their own ("outside the layers");
- the arrows are the package's real imports, read from every module's source
  in the checkout (``ast``: the statements grimp and import-linter read too,
  ``TYPE_CHECKING`` blocks included) and gathered per box. An arrow that
  a longer path already implies is left out (a transitive reduction: A reaches
  B in the picture exactly when A's code reaches B's); an arrow whose imports
  all sit inside functions (made when called, not when loaded) is dashed;
  a module nothing imports and that imports nothing is left out;
- modules outside the contract that import nothing from the layers (errors,
  settings, small utilities) form a "foundation" box of their own; arrows
  into it are not drawn, since any layer may use it and no path through it
  leads back up;
- boxes started as processes of their own are the modules the code runs with
  ``python -m MODULE`` (found by reading every module's source), drawn as
  stadiums, with a dotted "starts" arrow from the module that starts them;
  the console is ``ui/``, a separate process whose imports are read from its
  files; the client's one link to the API is HTTP, labelled with the
  client's base path (``API`` in appliance/client.py).

tests/test_architecture.py fails when the block in the page differs from what
this script draws from the current code, so the picture cannot go stale.
"""

from __future__ import annotations

import ast
import itertools
import re
import sys
import tomllib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PAGE = REPO / "docs" / "architecture.md"
PACKAGE = "appliance"
BEGIN = "<!-- architecture-diagram:begin (scripts/architecture-diagram writes this block) -->"
END = "<!-- architecture-diagram:end -->"
OUTSIDE = "outside the layers"
CONSOLE = "console"
FOUNDATION = "foundation: outside the layers, imported from anywhere (arrows into it not drawn)"


@dataclass
class Picture:
    """Boxes by row, arrows between boxes (``lazy`` when every import behind it is lazy)."""

    rows: list[tuple[str, list[str]]]
    arrows: dict[tuple[str, str], bool]
    processes: set[str] = field(default_factory=set)
    console_imports: set[str] = field(default_factory=set)
    starts: set[tuple[str, str]] = field(default_factory=set)
    http_base: str | None = None


def layers(pyproject: Path = REPO / "pyproject.toml") -> list[list[str]]:
    """The layers contract: one list of unit names per layer, top first."""
    config = tomllib.loads(pyproject.read_text())
    for contract in config["tool"]["importlinter"]["contracts"]:
        if contract.get("type") == "layers":
            return [[name.strip() for name in re.split(r"[|:]", layer) if name.strip()]
                    for layer in contract["layers"]]
    raise SystemExit("pyproject.toml has no layers contract")


def _source_files(root: Path) -> dict[str, Path]:
    """Every module of the package under ``root``: dotted name -> file."""
    out: dict[str, Path] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def process_starts(root: Path = REPO) -> set[tuple[str, str]]:
    """(module, what it starts) for every ``[..., "-m", "appliance.x", ...]`` literal in the
    package; ``python -m streamlit`` starts the console."""
    starts: set[tuple[str, str]] = set()
    for module, path in _source_files(root).items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.List | ast.Tuple):
                continue
            values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            for flag, target in itertools.pairwise(values):
                if flag != "-m" or not isinstance(target, str):
                    continue
                if target == "streamlit":
                    starts.add((module, CONSOLE))
                elif target == PACKAGE or target.startswith(PACKAGE + "."):
                    starts.add((module, f"{PACKAGE}.__main__" if target == PACKAGE else target))
    return starts


def console_imports(root: Path = REPO) -> set[str]:
    """The package's modules that the console (``ui/``) imports."""
    found: set[str] = set()
    for path in sorted((root / "ui").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
    return {m for m in found if m == PACKAGE or m.startswith(PACKAGE + ".")}


def import_graph(root: Path = REPO) -> dict[str, dict[str, bool]]:
    """importer -> {imported: True when every such import sits inside a function}.

    Only modules of the package count; ``from a import b`` is ``a.b`` when that is
    a module, else ``a``; ``import a.b.c`` is ``a.b.c`` (the nearest module that exists).
    """
    files = _source_files(root)
    graph: dict[str, dict[str, bool]] = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text())
        in_functions = {id(n) for f in ast.walk(tree)
                        if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                        for n in ast.walk(f) if isinstance(n, ast.Import | ast.ImportFrom)}
        edges: dict[str, bool] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _absolute(node, module, is_package=path.name == "__init__.py")
                names = [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                target = _nearest(name, files)
                if target is not None and target != module:
                    edges[target] = edges.get(target, True) and id(node) in in_functions
        graph[module] = edges
    return graph


def _absolute(node: ast.ImportFrom, module: str, *, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    anchor = parts if is_package else parts[:-1]
    anchor = anchor[:len(anchor) - (node.level - 1)]
    return ".".join([*anchor, node.module] if node.module else anchor)


def _nearest(name: str, files: dict[str, Path]) -> str | None:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        candidate = ".".join(parts[:cut])
        if candidate in files:
            return candidate
    return None


def _unit_of(module: str, units: list[str]) -> str:
    """The most specific unit that ``module`` belongs to, else its top-level name."""
    best = ""
    for unit in units:
        if (module == unit or module.startswith(unit + ".")) and len(unit) > len(best):
            best = unit
    return best or ".".join(module.split(".")[:2])


def draw(root: Path = REPO) -> Picture:
    """The picture of the code under ``root``: its files are read, nothing is imported."""
    rows_of_contract = layers(root / "pyproject.toml")
    started = process_starts(root)
    processes = {entry for _, entry in started if entry != CONSOLE}
    units = [u for row in rows_of_contract for u in row] + sorted(processes)
    files = _source_files(root)
    graph = import_graph(root)
    modules = sorted(m for m in graph if m != PACKAGE)  # the root holds only __version__
    unit = {m: _unit_of(m, units) for m in modules}

    lazy_only: dict[tuple[str, str], bool] = {}
    for importer in modules:
        for imported, lazy in sorted(graph[importer].items()):
            if imported == PACKAGE or unit[importer] == unit[imported]:
                continue
            key = (unit[importer], unit[imported])
            lazy_only[key] = lazy_only.get(key, True) and lazy

    linked = {u for edge in lazy_only for u in edge}
    ui = {_unit_of(m, units) for m in console_imports(root)}
    shown = linked | ui
    rows: list[tuple[str, list[str]]] = []
    for row in rows_of_contract:
        members = [u for u in row if u in shown]
        members += sorted(p for p in processes & shown if _unit_of(p, row) in row and p not in row)
        rows.append((" | ".join(_short(u) for u in row), members))
    outside = shown - {u for _, members in rows for u in members}
    foundation = _foundation(outside, lazy_only)
    rows.append((OUTSIDE, sorted(outside - foundation)))
    rows.append((FOUNDATION, sorted(foundation)))
    arrows = {edge: lazy for edge, lazy in lazy_only.items() if edge[1] not in foundation}
    starts = {(unit[m], entry if entry == CONSOLE else unit[entry]) for m, entry in started}
    return Picture(rows=rows, arrows=_reduce(arrows), processes=processes & shown,
                   console_imports=ui - foundation, starts={(a, b) for a, b in starts if a != b},
                   http_base=client_base(files.get(f"{PACKAGE}.client")))


def client_base(path: Path | None) -> str | None:
    """The HTTP client's base path: the string ``API`` in its module, if it has one."""
    if path is None:
        return None
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and \
                any(isinstance(t, ast.Name) and t.id == "API" for t in node.targets):
            return str(node.value.value)
    return None


def _foundation(outside: set[str], arrows: dict[tuple[str, str], bool]) -> set[str]:
    """The units outside the layers from which no chain of imports leads into the layers."""
    out: dict[str, set[str]] = defaultdict(set)
    for a, b in arrows:
        out[a].add(b)
    layered = {b for _, b in arrows} - outside
    return {u for u in outside if not any(_reaches(out, u, target) for target in layered)}


def _reduce(arrows: dict[tuple[str, str], bool]) -> dict[tuple[str, str], bool]:
    """Leave out each arrow that another path already implies; reachability stays the same."""
    kept = dict(sorted(arrows.items()))
    for edge in sorted(arrows, key=lambda e: (e[0], e[1])):
        rest = defaultdict(set)
        for a, b in kept:
            if (a, b) != edge:
                rest[a].add(b)
        if _reaches(rest, edge[0], edge[1]):
            del kept[edge]
    return kept


def _reaches(out: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = {start}, [start]
    while todo:
        for nxt in out.get(todo.pop(), ()):
            if nxt == goal:
                return True
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return False


def _short(unit: str) -> str:
    return unit.removeprefix(PACKAGE + ".")


def _id(unit: str) -> str:
    return "u_" + re.sub(r"\W", "_", _short(unit))


def mermaid(picture: Picture) -> str:
    """The picture as a Mermaid flowchart (renders on GitHub)."""
    lines = ["flowchart TB"]
    for index, (title, members) in enumerate(picture.rows):
        label = title if title in (OUTSIDE, FOUNDATION) else f"layer {index + 1}: {title}"
        lines.append(f'  subgraph row{index}["{label}"]')
        lines.append("    direction LR")
        for unit in members:
            shape = ('(["', '"])') if unit in picture.processes else ('["', '"]')
            lines.append(f"    {_id(unit)}{shape[0]}{_short(unit)}{shape[1]}")
        lines.append("  end")
    lines.append(f'  {CONSOLE}(["console: ui/ (Streamlit)"])')
    for a, b in sorted(picture.arrows):
        lines.append(f"  {_id(a)} {'-.->' if picture.arrows[a, b] else '-->'} {_id(b)}")
    for target in sorted(picture.console_imports):
        lines.append(f"  {CONSOLE} --> {_id(target)}")
    for a, b in sorted(picture.starts):
        lines.append(f"  {_id(a)} -. starts .-> {b if b == CONSOLE else _id(b)}")
    if picture.http_base is not None:
        lines.append(f"  {_id(PACKAGE + '.client')} == HTTP {picture.http_base} ==> "
                     f"{_id(PACKAGE + '.api')}")
    return "\n".join(lines)


def block(picture: Picture | None = None) -> str:
    """The block the page holds between its markers (of ``picture``, default the code's)."""
    return f"{BEGIN}\n```mermaid\n{mermaid(picture or draw())}\n```\n{END}"


def rewrite(page_text: str, new_block: str) -> str:
    """``page_text`` with the block between the markers replaced by ``new_block``."""
    start, end = page_text.find(BEGIN), page_text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{PAGE}: no diagram markers ({BEGIN} ... {END})")
    return page_text[:start] + new_block + page_text[end + len(END):]


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    if argv not in ([], ["--check"], ["--print"]):
        print("usage: scripts/architecture-diagram [--check | --print]", file=sys.stderr)
        return 2
    new = block()
    if argv == ["--print"]:
        print(new)
        return 0
    text = PAGE.read_text()
    updated = rewrite(text, new)
    if argv == ["--check"]:
        if updated != text:
            print(f"{PAGE} is stale: run scripts/architecture-diagram", file=sys.stderr)
            return 1
        return 0
    if updated != text:
        PAGE.write_text(updated)
        print(f"rewrote the diagram in {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
