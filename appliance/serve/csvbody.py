"""CSV predict bodies: read as text, typed by the model's signature, errors by line.

A CSV body is read with every field as text; only the model's signature says
what a column is. So a string feature whose values look like numbers (a zip
code ``02139``, a code ``7``) stays the string it was written as, and a number
column is parsed as a number. In a number column an empty field and the usual
missing-value tokens (``NA``, ``N/A``, ``NaN``, ``null``, ``None``) are missing
values, ``true``/``false`` are 1 and 0 (booleans train as numbers); in a text
column only an empty field is missing.

Errors name the line of the body, counting the header as line 1 (a quoted
field may span lines; the line is where the row starts), and also give
``detail.row``, the data row counting from 0, as for JSON bodies.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

from appliance.errors import TooLarge, UnprocessableInput
from appliance.serve.feeds import MAX_ROWS, REQUEST_ID, Places
from appliance.serve.sessions import LoadedModel

MISSING = frozenset({"", "na", "n/a", "nan", "null", "none"})
_TRUE, _FALSE = frozenset({"true"}), frozenset({"false"})
_FLOAT_KINDS = frozenset({"float", "double", "float16"})
_INT_KINDS = frozenset({"int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                        "uint64"})


class CsvPlaces(Places):
    """Rows named by their line in the CSV body (the header is line 1)."""

    def __init__(self, lines: list[int]) -> None:
        self.lines = lines

    def name(self, i: int) -> str:
        return f"CSV line {self.lines[i]} (the header is line 1)"

    def detail(self, i: int) -> dict[str, Any]:
        return {"row": i, "line": self.lines[i]}


def _refused(message: str, **detail: Any) -> UnprocessableInput:
    return UnprocessableInput(message[:500], detail=detail)


@dataclass(frozen=True)
class CsvRecords:
    """A CSV body as text: its header, its rows and the line each row starts on."""

    header: tuple[str, ...]
    rows: list[list[str]]
    lines: list[int]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def places(self) -> CsvPlaces:
        return CsvPlaces(self.lines)

    def raw(self) -> list[dict[str, Any]]:
        """Rows keyed by the header, every value text (for routing before a model is known)."""
        return [dict(zip(self.header, row, strict=True)) for row in self.rows]

    def typed(self, loaded: LoadedModel) -> list[dict[str, Any]]:
        """Rows keyed by the header, each value converted to what its input takes."""
        kinds = _kinds(loaded)
        header = self.header
        missing = [c for c in kinds if c not in header]
        if missing:
            raise _refused(f"the CSV header (line 1) has no column {missing[0]!r}, which the "
                           f"model takes", field=missing[0], line=1)
        extra = [c for c in header if c not in kinds and c != REQUEST_ID]
        if extra:
            raise _refused(f"the CSV header (line 1) has a column {extra[0]!r}, which the model "
                           "does not take", field=extra[0], line=1)
        places = self.places
        columns: list[list[Any]] = []
        for j, name in enumerate(header):
            kind = kinds.get(name, "string")  # request_id is text
            values = [row[j] for row in self.rows]
            columns.append(_convert(values, kind, name, places))
        return [dict(zip(header, values, strict=True)) for values in zip(*columns, strict=True)]


def parse_csv(body: bytes) -> CsvRecords:
    """Read a CSV body (UTF-8, an optional BOM, any line ends), or 422 saying where it broke."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _refused(f"the CSV body is not UTF-8 (byte {exc.start})",
                       reason="unreadable") from exc
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    lines: list[int] = []
    try:
        header = next(reader, None)
        if header is None:
            raise _refused("the CSV body is empty: send a header line and rows",
                           reason="unreadable")
        _check_header(header)
        start = reader.line_num + 1
        for row in reader:
            if row:  # a blank line is skipped
                if len(row) != len(header):
                    raise _refused(f"CSV line {start} has {len(row)} fields; the header (line 1) "
                                   f"has {len(header)}", line=start, reason="ragged")
                rows.append(row)
                lines.append(start)
                if len(rows) > MAX_ROWS:
                    raise TooLarge(f"at most {MAX_ROWS} rows a request; score bigger files "
                                   "with `appliance predict`")
            start = reader.line_num + 1
    except csv.Error as exc:
        raise _refused(f"the CSV body cannot be read at line {reader.line_num}: {exc}",
                       line=reader.line_num, reason="unreadable") from exc
    if not rows:
        raise _refused("the CSV body has a header but no rows", reason="unreadable")
    return CsvRecords(tuple(header), rows, lines)


def _check_header(header: list[str]) -> None:
    seen: set[str] = set()
    for name in header:
        if not name.strip():
            raise _refused("the CSV header (line 1) has an empty column name", line=1)
        if name in seen:
            raise _refused(f"the CSV header (line 1) names column {name!r} twice",
                           field=name, line=1)
        seen.add(name)


def _kinds(loaded: LoadedModel) -> dict[str, str]:
    """Header column -> the element type the model takes there."""
    kinds: dict[str, str] = {}
    for inp in loaded.inputs:
        if inp.scalar:
            kinds[inp.column] = inp.kind
        elif inp.features is not None and len(inp.shape) == 1:
            kinds.update(dict.fromkeys(inp.features, inp.kind))
        else:
            raise _refused(f"input {inp.name!r} takes a tensor of shape {list(inp.shape)} a row, "
                           "which a CSV row cannot carry: send JSON nested lists, or register "
                           "the model with feature names", field=inp.name)
    return kinds


def _convert(values: list[str], kind: str, name: str, places: CsvPlaces) -> list[Any]:
    if kind == "string":
        return [v if v != "" else None for v in values]
    if kind in _FLOAT_KINDS:  # the common case first: every field a plain number
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            numbers = []
        # NaN came from a missing-value token, "_" from what float() reads but CSV never
        # means (1_000): both take the careful path below
        if numbers and all(x == x for x in numbers) and "_" not in "".join(values):
            return numbers
    out: list[Any] = []
    for i, v in enumerate(values):
        try:
            out.append(_number(v, kind))
        except ValueError:
            want = {"bool": "true or false"}.get(
                kind, "an integer" if kind in _INT_KINDS else "a number")
            raise _refused(f"{places.name(i)}: field {name!r} must be {want}, got {v[:100]!r}",
                           **places.detail(i), field=name) from None
    return out


def _number(text: str, kind: str) -> Any:
    """One CSV field as the value an input of ``kind`` takes (None: missing)."""
    v = text.strip()
    low = v.lower()
    if low in MISSING:
        return None
    if kind == "bool":
        if low in _TRUE or low == "1":
            return True
        if low in _FALSE or low == "0":
            return False
        raise ValueError(text)
    if low in _TRUE:
        return 1 if kind in _INT_KINDS else 1.0
    if low in _FALSE:
        return 0 if kind in _INT_KINDS else 0.0
    if "_" in v:  # Python would read 1_000 as 1000; a CSV writer never means that
        raise ValueError(text)
    if kind in _INT_KINDS:
        try:
            return int(v)
        except ValueError:
            number = float(v)
            if not number.is_integer():
                raise
            return int(number)
    return float(v)  # inf passes here and is refused, with its line, by the feeds
