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
        raise InvalidName(
            f"invalid file name {name!r}",
            detail={"field": "file", "pattern": FILE_NAME.pattern},
        )
    return name
