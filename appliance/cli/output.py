"""How CLI commands print: readable tables for people by default, JSON with ``--json``.

Every command that answers with a record or a list builds its tables here, so
the two forms stay one decision per command: ``show(obj, as_json, render)``
prints ``obj`` as JSON (:func:`dump`), or calls ``render(obj)`` which returns rich
renderables. rich is imported inside the functions: ``appliance --help`` stays
light. What verbs share besides printing (``--home``, settings, failing) is in
:mod:`appliance.cli.common`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any

import typer

Json = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead of tables.")]
Render = Callable[[Any], Iterable[Any]]
_MAX_CELL = 200
PIPED_WIDTH = 160


def show(obj: Any, as_json: bool, render: Render) -> None:
    """``obj`` as indented JSON, or as what ``render(obj)`` draws (tables, lines of text)."""
    if as_json:
        dump(obj)
        return
    console = _console()
    for item in render(obj):
        console.print(item)


def dump(obj: Any) -> None:
    """``obj`` as indented JSON on stdout (a dataclass as its fields), for ``--json``."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    typer.echo(json.dumps(obj, indent=2, default=str))


def record(obj: Mapping[str, Any], *, title: str | None = None,
           fields: Sequence[str] | None = None) -> Any:
    """One record as a two-column table (field, value); nested values as compact JSON."""
    from rich.table import Table
    from rich.text import Text

    table = Table("field", "value", title=title, show_header=False, title_justify="left")
    for key in fields if fields is not None else list(obj):
        if key in obj:
            table.add_row(Text(key), Text(cell(obj[key])))  # Text: data is never markup
    return table


def rows(items: Iterable[Mapping[str, Any]], columns: Sequence[str], *,
         title: str | None = None) -> Any:
    """A list of records as a table with one row each and the given columns."""
    from rich.table import Table
    from rich.text import Text

    table = Table(*columns, title=title, title_justify="left")
    for item in items:
        table.add_row(*(Text(cell(item.get(c))) for c in columns))
    return table


def mapping(values: Mapping[str, Any], key: str, value: str, *, title: str | None = None) -> Any:
    """A flat mapping (params, metrics) as a two-column table, sorted by key."""
    return rows([{key: k, value: v} for k, v in sorted(values.items())], [key, value],
                title=title)


def text(message: str, style: str | None = None) -> Any:
    """A line of prose (markup in the message is not interpreted)."""
    from rich.text import Text

    return Text(message, style=style or "")


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if hasattr(value, "isoformat"):  # datetimes from a local store; the API sends text
        value = value.isoformat()
    out = value if isinstance(value, str) else json.dumps(value, default=str, separators=(",", ":"))
    return out if len(out) <= _MAX_CELL else out[:_MAX_CELL - 1] + "…"


def _console() -> Any:
    """A console as wide as the terminal, or 160 columns when the output is piped or captured
    (where rich would assume 80 and squeeze every column to an ellipsis)."""
    from rich.console import Console

    console = Console(soft_wrap=False, highlight=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, highlight=False, width=PIPED_WIDTH)
    return console
