"""Registry vocabulary: alias names, version statuses, the promotion gate's maths, and
the registry's typed results (``Model``, ``ModelVersion``, ``AliasEvent``, ``Gate``...)."""

from __future__ import annotations

import re
import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from appliance.domain.outliers import OutlierDetector
from appliance.domain.results import Timestamp, is_none
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


def human_override(alias: str, history: list[AliasEvent]) -> str | None:
    """Why automatic promotion of ``alias`` must wait, given its history (newest first):
    its last move was a person's rollback or a forced move. Training never undoes that
    decision; a new version is held as challenger until a person moves the alias again."""
    if not history:
        return None
    last = history[0]
    if last.action == "rollback":
        what = f"rolled back to v{last.version}"
    elif last.forced:
        what = f"forced to v{last.version}"
    else:
        return None
    return (f"{alias} was {what} by {last.actor} at {last.at.isoformat()[:19]}; "
            "automatic promotion waits until a person moves it again")


# -- typed results ---------------------------------------------------------------------


class Gate(BaseModel):
    """The promotion gate's verdict on a trained version, stored with the version."""

    model_config = ConfigDict(frozen=True, extra="allow")

    metric: str = Field(description="the job's metric that gates promotion")
    value: float | int | None = Field(description="the candidate's value on the holdout")
    champion_version: int | None = Field(description="the champion it was compared with")
    champion_value: float | int | None = Field(description="the champion's value, same holdout")
    min_delta: float | int
    fairness_passed: bool | None = Field(default=None, exclude_if=is_none, description=(
        "the fairness thresholds were met (true when the job names none)"))
    basis: str | None = Field(default=None, exclude_if=is_none, description=(
        "onnx: both models scored through ONNX on one holdout; native: the candidate's own "
        "metric (no champion). Absent on gates stored by early releases."))
    passed: bool
    held_because: str | None = Field(default=None, exclude_if=is_none, description=(
        "why a passing version was held as challenger (a person's rollback or forced move); "
        "absent otherwise"))


class ModelVersion(BaseModel):
    """One registered ONNX version of a model (numbered 1, 2, 3 per model)."""

    model_config = ConfigDict(frozen=True)

    model: str
    number: int
    status: VersionStatus
    run_id: uuid.UUID | None = Field(description="the training run that made it, if any")
    flavor: str
    task: str | None
    onnx_sha256: str
    onnx_size: int
    signature: dict[str, Any] | None = Field(description=(
        '{"inputs": [{"name", "type", "shape", "column", "features"?}], '
        '"outputs": [{"name", "type", "shape"}]}'))
    parity: dict[str, Any] | None
    metrics: dict[str, Any] | None
    fairness: dict[str, Any] | None
    gate: Gate | None
    warnings: list[str]
    dataset: str | None
    dataset_version: int | None
    aliases: list[str] = Field(description="the aliases pointing at this version")
    created_by: str
    created_at: Timestamp
    outliers: OutlierDetector | None = Field(
        default=None, description="its outlier detector; null for a version without one")

    def input_columns(self) -> list[str]:
        """The raw columns that feed the model's inputs, in input order, once each."""
        inputs = (self.signature or {}).get("inputs") or []
        return list(dict.fromkeys(str(i.get("column") or i.get("name")) for i in inputs))


class Model(BaseModel):
    """A registered model: its newest version and where its aliases point."""

    model_config = ConfigDict(frozen=True)

    name: str
    created_at: Timestamp
    latest_version: int | None
    aliases: dict[str, int] = Field(description="alias -> version number")


class ModelDetail(Model):
    """A model with its versions, newest first."""

    versions: list[ModelVersion]


class ModelVersionRef(BaseModel):
    """Which model version something (a run) became."""

    model_config = ConfigDict(frozen=True)

    model: str
    version: int


class AliasEvent(BaseModel):
    """One move of an alias (append-only: the alias history and the rollback source)."""

    model_config = ConfigDict(frozen=True)

    alias: str
    version: int | None = Field(description="the version it points at after the move")
    previous_version: int | None
    action: str = Field(description="set, rollback, approve or remove")
    forced: bool
    reason: str
    actor: str
    at: Timestamp


class AliasPointer(BaseModel):
    """The version an alias names."""

    model_config = ConfigDict(frozen=True)

    alias: str
    version: int


class AliasChange(BaseModel):
    """An alias moved: where it points now and where it pointed before."""

    model_config = ConfigDict(frozen=True)

    alias: str
    version: int
    previous_version: int | None
