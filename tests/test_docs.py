"""The docs cover every setting, CLI command and route, and their links resolve.

A setting, command or route added without its documentation fails here, the
way datasette's documentation tests do. The docs are read from the checkout;
the code is whatever ``appliance`` the test run imports.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
CLI_DOC = REPO / "docs" / "reference" / "cli.md"
API_DOC = REPO / "docs" / "reference" / "api.md"
MARKDOWN = [README, *sorted((REPO / "docs").rglob("*.md"))]

# FastAPI's own pages: not part of the documented API surface.
FRAMEWORK_ROUTES = {"/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"}

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_INLINE_LINK = re.compile(r"\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REF_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)


def _prose(path: Path) -> str:
    """The markdown of ``path`` without fenced code blocks."""
    return _FENCE.sub("", path.read_text())


def _table_rows(text: str) -> list[list[str]]:
    """Cells of every markdown table row, separator rows left out."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not (line.startswith("|") and line.endswith("|")):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line[1:-1])]
        if all(re.fullmatch(r":?-+:?", c) for c in cells):
            continue
        rows.append(cells)
    return rows


def _cli_command_paths() -> list[str]:
    """Every visible command of the typer app: 'serve', 'datasets list', ..."""
    import typer

    from appliance.cli import app

    paths: list[str] = []

    # Duck-typed: recent typer versions vendor their own click, so no isinstance on click.Group.
    def walk(cmd: Any, prefix: tuple[str, ...]) -> None:
        for name, sub in sorted((getattr(cmd, "commands", None) or {}).items()):
            if getattr(sub, "hidden", False):
                continue
            if getattr(sub, "commands", None) is not None:
                walk(sub, (*prefix, name))
            else:
                paths.append(" ".join((*prefix, name)))

    walk(typer.main.get_command(app), ())
    return paths


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*\s*$", _prose(path), re.M)}


def _relative_links(path: Path) -> list[str]:
    text = _prose(path)
    targets = [m.group(1) for m in _INLINE_LINK.finditer(text)]
    targets += [m.group(1) for m in _REF_LINK.finditer(text)]
    return [t for t in targets if not _EXTERNAL.match(t)]


def test_readme_configuration_table_has_a_row_for_every_setting() -> None:
    from appliance.config import Settings

    documented = {row[0] for row in _table_rows(_prose(README)) if row}
    missing = [
        f"APPLIANCE_{name.upper()}"
        for name in Settings.model_fields
        if f"`APPLIANCE_{name.upper()}`" not in documented
    ]
    assert not missing, f"README.md's configuration table has no row for {missing}"


def test_cli_reference_names_every_command_in_a_heading_or_code_span() -> None:
    text = CLI_DOC.read_text()
    missing = []
    for path in _cli_command_paths():
        full = re.escape(f"appliance {path}")
        heading = re.search(rf"^#+\s+`?{full}`?\s*$", text, re.M)
        code_span = re.search(rf"`{full}(?=[\s`])", text)
        if not (heading or code_span):
            missing.append(f"appliance {path}")
    assert not missing, f"docs/reference/cli.md does not document {missing}"


def _api_routes(app: Any) -> list[tuple[str, str]]:
    """(METHOD, path) of every route the app serves, included routers flattened."""
    try:  # FastAPI >= 0.165 keeps included routers lazy; this walks them.
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI copies every route into app.routes
        routes: Any = app.routes
    else:
        routes = iter_route_contexts(app.routes)
    return [
        (method, route.path)
        for route in routes
        if route.path not in FRAMEWORK_ROUTES
        # a foreign protocol's routes (the MLflow client's) stay out of /openapi.json and
        # this table; each has a docs page of its own (docs/compat/)
        and getattr(route, "include_in_schema", True)
        for method in sorted((route.methods or set()) - {"HEAD", "OPTIONS"})
    ]


def test_api_reference_table_lists_every_route(appliance_app: Any) -> None:
    from appliance.api.app import create_app

    routes = _api_routes(create_app(appliance_app))
    assert len(routes) > 10, f"found only {routes}: the route walk is broken"
    table = "\n".join(" | ".join(row) for row in _table_rows(API_DOC.read_text()))
    missing = [
        f"{method} {path}"
        for method, path in routes
        # A query string may follow the path inside the span: `GET /x?limit=`.
        if not re.search(rf"`{method} {re.escape(path)}(\?[^`]*)?`", table)
    ]
    assert not missing, f"docs/reference/api.md's route table lacks {missing}"


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_in_markdown_point_to_existing_files(doc: Path) -> None:
    broken = []
    for target in _relative_links(doc):
        file_part = target.split("#", 1)[0].split("?", 1)[0]
        if file_part and not (doc.parent / file_part).exists():
            broken.append(target)
    assert not broken, f"{doc.relative_to(REPO)} links to missing files: {broken}"


@pytest.mark.parametrize("doc", MARKDOWN, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_in_markdown_point_to_existing_headings(doc: Path) -> None:
    broken = []
    for target in _relative_links(doc):
        file_part, sep, anchor = target.partition("#")
        linked = (doc.parent / file_part) if file_part else doc
        if sep and linked.suffix == ".md" and linked.exists() and anchor not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{doc.relative_to(REPO)} links to missing headings: {broken}"


def test_api_reference_matches_the_openapi_document_both_ways(appliance_app: Any) -> None:
    from appliance.api.app import create_app

    spec = create_app(appliance_app).openapi()
    live = {f"{method.upper()} {path}" for path, item in spec["paths"].items()
            for method in item if method in ("get", "post", "put", "patch", "delete")}
    table = "\n".join(" | ".join(row) for row in _table_rows(API_DOC.read_text()))
    documented = {m.group(1) for m in re.finditer(
        r"`((?:GET|POST|PUT|PATCH|DELETE) /[^`?\s]*)", table)}
    assert live - documented == set(), f"undocumented in api.md: {sorted(live - documented)}"
    assert documented - live == set(), f"api.md documents routes that do not exist: " \
                                       f"{sorted(documented - live)}"


def test_every_command_the_cli_reference_documents_exists() -> None:
    live = {f"appliance {p}" for p in _cli_command_paths()}
    headings = set(re.findall(r"^#+\s+`?(appliance [a-z][a-z -]*?)`?\s*$", CLI_DOC.read_text(),
                              re.M))
    assert headings, "no command headings found"
    assert headings - live == set(), f"cli.md documents commands that do not exist: " \
                                     f"{sorted(headings - live)}"
