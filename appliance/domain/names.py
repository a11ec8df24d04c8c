"""Name patterns: user strings are names, never paths (DESIGN §6)."""

from __future__ import annotations

import re

from appliance.errors import InvalidName

DATASET_NAME = re.compile(r"[a-z0-9_-]{1,64}")
USERNAME = re.compile(r"[a-z0-9_.-]{1,64}")
# A dropped file's own name: no separators, no leading dot, no control characters.
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ +=,@-]{0,199}")


def check_dataset_name(name: str) -> str:
    if not isinstance(name, str) or not DATASET_NAME.fullmatch(name):
        raise InvalidName(
            f"invalid dataset name {name!r}: use 1-64 of a-z, 0-9, '_' and '-'",
            detail={"field": "dataset", "pattern": DATASET_NAME.pattern},
        )
    return name


def check_username(name: str) -> str:
    if not isinstance(name, str) or not USERNAME.fullmatch(name):
        raise InvalidName(
            f"invalid username {name!r}: use 1-64 of a-z, 0-9, '_', '.' and '-'",
            detail={"field": "username", "pattern": USERNAME.pattern},
        )
    return name


def check_file_name(name: str) -> str:
    if (
        not isinstance(name, str)
        or not FILE_NAME.fullmatch(name)
        or ".." in name
        or "\\" in name
    ):
        shown = printable_name(name) if isinstance(name, str) else repr(name)
        raise InvalidName(
            f"invalid file name '{shown}'",
            detail={"field": "file", "pattern": FILE_NAME.pattern},
        )
    return name


def printable_name(name: str) -> str:
    """A file name as it may be stored, logged and shown.

    A name that is not UTF-8 on disk reaches Python with its bad bytes as
    surrogate escapes (``b'caf\\xe9.csv'`` is ``'caf\\udce9.csv'``), which no
    UTF-8 encoder (DuckDB, JSON readers) takes: those bytes become ``\\xe9``,
    and control characters become escapes too (``\\n``, ``\\x1b``).
    """
    try:
        text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:   # a surrogate that is not an escaped byte
        text = name.encode("utf-8", "backslashreplace").decode("utf-8")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)
