"""Registry vocabulary: alias names, version statuses, the promotion gate's maths."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from appliance.errors import InvalidName

ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,63}")
CHAMPION = "champion"
CHALLENGER = "challenger"

# metrics where a smaller value is better; every other metric: bigger is better
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


class VersionStatus(StrEnum):
    ready = "ready"
    pending_approval = "pending_approval"


def check_alias(alias: str) -> str:
    if not isinstance(alias, str) or not ALIAS.fullmatch(alias):
        raise InvalidName(f"invalid alias {alias!r}: a-z first, then 0-63 of a-z, 0-9, '_', '-'",
                          detail={"field": "alias"})
    return alias


# slack for the subtraction's own rounding: 0.3 - 0.29 is 0.00999..., not 0.01
GATE_SLACK = 1e-12


def beats(metric: str, candidate: float, incumbent: float | None, min_delta: float) -> bool:
    """Does the candidate beat the incumbent by at least ``min_delta`` on ``metric``?

    The tie rule: an improvement of exactly ``min_delta`` passes. So with
    ``min_delta: 0`` a tie passes (the newer model takes over when it is no worse),
    and with ``min_delta > 0`` a tie keeps the champion. Both values must be scored
    the same way (the gate scores both ONNX models on one holdout), or float noise
    decides ties.
    """
    if incumbent is None:
        return True
    gain = incumbent - candidate if metric in LOWER_IS_BETTER else candidate - incumbent
    return gain >= min_delta - GATE_SLACK


def human_override(alias: str, history: list[dict[str, Any]]) -> str | None:
    """Why automatic promotion of ``alias`` must wait, given its history (newest first):
    its last move was a person's rollback or a forced move. Training never undoes that
    decision; a new version is held as challenger until a person moves the alias again."""
    if not history:
        return None
    last = history[0]
    if last.get("action") == "rollback":
        what = f"rolled back to v{last.get('version')}"
    elif last.get("forced"):
        what = f"forced to v{last.get('version')}"
    else:
        return None
    return (f"{alias} was {what} by {last.get('actor')} at {str(last.get('at'))[:19]}; "
            "automatic promotion waits until a person moves it again")
