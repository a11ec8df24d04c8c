"""Job files (DESIGN §4): a pydantic model, and a parser whose errors name the field and line.

``parse_job(text)`` reads YAML with ``safe_load`` only, validates it, and raises
:class:`appliance.errors.InvalidInput` whose message says which field is wrong
and on which line (found by walking the ``yaml.compose`` node tree), e.g.::

    job file line 4, field model.kind: unknown estimator 'os.system': choose one of ...

``detail`` carries ``{"field", "line", "errors": [...]}`` for machines.

A job file is parsed once (by the scheduler's job-file loader, or by the
training service for a job sent to ``POST /api/v1/runs``); the ``JobSpec``
object then travels to the trainer, keeping the text it came from
(``JobSpec.source``), and is serialised once, as JSON, for the child process.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from appliance.domain.drift import DriftOptions
from appliance.errors import InvalidInput
from appliance.train import estimators

NAME_PATTERN = r"^[a-z0-9_-]{1,64}$"
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
DEFAULT_METRIC = {estimators.CLASSIFICATION: "accuracy", estimators.REGRESSION: "rmse"}
MAX_TRIALS = 500


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeaturesSpec(_Strict):
    include: list[str] | None = None
    exclude: list[str] | None = None


class ModelSpec(_Strict):
    kind: str
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("kind")
    @classmethod
    def _known(cls, value: str) -> str:
        try:
            return estimators.resolve(value).name
        except InvalidInput as exc:
            raise ValueError(exc.message) from None


class SplitSpec(_Strict):
    test_size: float = Field(default=0.2, gt=0.0, lt=1.0)
    seed: int = 0


class DataSpec(_Strict):
    """How the trainer holds the dataset version (docs/reference/jobs.md, "Data larger than
    memory"): ``auto`` keeps it in memory when it fits the trainer's cap, else trains XGBoost
    from Parquet batches (external memory) and refuses other estimators; ``memory``,
    ``external`` and ``sample`` (a seeded sample of ``sample_rows``) choose explicitly."""

    mode: Literal["auto", "memory", "external", "sample"] = "auto"
    sample_rows: int | None = Field(default=None, ge=10)

    @model_validator(mode="after")
    def _rows_for_sample(self) -> DataSpec:
        if self.sample_rows is not None and self.mode != "sample":
            raise ValueError(f"sample_rows is for mode: sample, not mode: {self.mode}")
        return self


class SearchSpec(_Strict):
    kind: Literal["random", "grid"] = "random"
    n_iter: int = Field(default=10, ge=1, le=MAX_TRIALS)
    params: dict[str, list[Any]] = Field(min_length=1)

    @field_validator("params")
    @classmethod
    def _non_empty(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for name, values in value.items():
            if not values:
                raise ValueError(f"search values for {name!r} are an empty list")
        return value


class CanaryRuleSpec(_Strict):
    """``promote.canary``: a scheduled canary check (``canary.<job>``, every ``every``) and,
    with ``auto: true``, the move it makes once the verdict is reached: a better canary
    becomes champion (unless the job requires approval), a worse one leaves the routing."""

    auto: bool = False
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    tau: float = Field(default=0.1, gt=0.0, le=10.0)
    min_samples: int = Field(default=200, ge=2, le=1_000_000)
    every: str = "15m"

    @model_validator(mode="after")
    def _timing(self) -> CanaryRuleSpec:
        _check_timing(None, self.every)
        return self


class PromoteSpec(_Strict):
    alias: str = Field(default="champion", pattern=NAME_PATTERN)
    min_delta: float = 0.0
    require_approval: bool = False
    canary: CanaryRuleSpec | None = None

    @model_validator(mode="after")
    def _canary_on_champion(self) -> PromoteSpec:
        if self.canary is not None and self.alias != "champion":
            raise ValueError("canary compares the canary with the champion and promotes to "
                             f"champion: it needs alias: champion, not {self.alias!r}")
        return self


class FairnessSpec(_Strict):
    sensitive: list[str] = Field(min_length=1)
    max_demographic_parity_difference: float | None = Field(default=None, ge=0.0, le=1.0)
    max_equalized_odds_difference: float | None = Field(default=None, ge=0.0, le=1.0)


class OutliersSpec(_Strict):
    """The outlier detector fitted beside the model (docs/reference/jobs.md, "Outliers"): an
    isolation forest flagging ``contamination`` of the training rows, plus numbers farther
    than ``range_margin`` x their training range outside it (null: no range rule)."""

    enabled: bool = True
    contamination: float = Field(default=0.01, gt=0.0, le=0.5)
    range_margin: float | None = Field(default=0.5, ge=0.0)


class TrainSchedule(_Strict):
    """When the job trains: on new data for its dataset, on a cron line, or every interval."""

    on: Literal["new_data"] | None = None
    cron: str | None = None
    every: str | None = None
    retries: int = Field(default=1, ge=0, le=5)

    @model_validator(mode="after")
    def _one_trigger(self) -> TrainSchedule:
        chosen = [k for k in ("on", "cron", "every") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("give exactly one of on: new_data, cron: '<5 fields>' or every: <6h>")
        _check_timing(self.cron, self.every)
        return self


class DriftSchedule(_Strict):
    """A scheduled drift check of the prediction log against the champion's training data."""

    every: str | None = "1h"
    cron: str | None = None
    window: str = "24h"
    p_val: float = Field(default=0.05, gt=0.0, lt=1.0)
    min_accuracy: float | None = Field(default=None, ge=0.0, le=1.0)
    max_rmse: float | None = Field(default=None, ge=0.0)

    @model_validator(mode="after")
    def _timing(self) -> DriftSchedule:
        if self.cron is not None:
            self.every = None
        _check_timing(self.cron, self.every)
        from appliance.domain.jobs import parse_duration

        try:
            parse_duration(self.window, field="window")
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
        return self


class ScheduleSpec(_Strict):
    train: TrainSchedule | None = None
    drift: DriftSchedule | None = None


def _check_timing(cron: str | None, every: str | None) -> None:
    from appliance.domain.jobs import parse_duration

    if cron is not None:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(cron, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"cron {cron!r} is not a 5-field crontab line: {exc}") from None
    if every is not None:
        try:
            parse_duration(every)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None


class JobSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    dataset: str = Field(pattern=NAME_PATTERN)
    target: str = Field(min_length=1)
    features: FeaturesSpec = Field(default_factory=FeaturesSpec)
    model: ModelSpec
    split: SplitSpec = Field(default_factory=SplitSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    metric: str | None = None
    search: SearchSpec | None = None
    promote: PromoteSpec = Field(default_factory=PromoteSpec)
    fairness: FairnessSpec | None = None
    outliers: OutliersSpec = Field(default_factory=OutliersSpec)
    schedule: ScheduleSpec | None = None
    drift: DriftOptions | None = None  # per-column tests and thresholds for drift checks
    description: str | None = None
    limitations: list[str] = Field(default_factory=list)
    _source: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        """The job file's text, when the spec was parsed from one."""
        return self._source

    def text(self) -> str:
        """The job as YAML: the file's own text, or the spec written out."""
        if self._source is not None:
            return self._source
        import yaml

        return str(yaml.safe_dump(self.model_dump(mode="json", exclude_none=True),
                                  sort_keys=False))

    @field_validator("schedule", mode="before")
    @classmethod
    def _yaml_bool_keys(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `on:` key as True (and `off:` as False)
        return _bool_keys_to_words(value)

    @model_validator(mode="after")
    def _default_metric(self) -> JobSpec:
        if self.metric is None:
            self.metric = DEFAULT_METRIC[self.info.task]
        return self

    @property
    def info(self) -> estimators.EstimatorInfo:
        return estimators.resolve(self.model.kind)

    @property
    def task(self) -> str:
        return self.info.task

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in ("log_loss", "rmse", "mae")


def _bool_keys_to_words(value: Any) -> Any:
    if isinstance(value, dict):
        words = {True: "on", False: "off"}
        return {(words[k] if isinstance(k, bool) else k): _bool_keys_to_words(v)
                for k, v in value.items()}
    if isinstance(value, list):
        return [_bool_keys_to_words(v) for v in value]
    return value


# -- parsing ---------------------------------------------------------------------------------


def parse_job(text: str, *, check_params: bool = True) -> JobSpec:
    """Validate a job file. ``check_params`` imports the estimator to check param names."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise _error(None, line, f"not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise _error(None, 1, "a job file must be a YAML mapping of fields (name, dataset, ...)")
    _refuse_duplicate_keys(root)
    spec = _validated(data, root, check_params)
    spec._source = text
    return spec


def validate_job(data: dict[str, Any], *, check_params: bool = True) -> JobSpec:
    """The same checks on an already-parsed mapping (a job sent as JSON); no line numbers."""
    return _validated(data, None, check_params)


def _validated(data: dict[str, Any], root: Any, check_params: bool) -> JobSpec:
    """Model, metric and (optionally) estimator checks; ``root`` gives errors their lines."""
    try:
        spec = JobSpec.model_validate(data)
    except ValidationError as exc:
        raise _from_validation(exc, root) from None
    _check_metric(spec, root)
    if check_params:
        check_job(spec, root)
    return spec


def _check_metric(spec: JobSpec, root: Any) -> None:
    task = spec.info.task
    allowed = CLASSIFICATION_METRICS if task == estimators.CLASSIFICATION else REGRESSION_METRICS
    if spec.metric not in allowed:
        raise _error(["metric"], _line_of(root, ["metric"]),
                     f"metric {spec.metric!r} does not fit a {task} model "
                     f"({spec.info.cls}); choose one of {', '.join(allowed)}")


def check_job(spec: JobSpec, root: Any = None) -> None:
    """Checks that need the estimator class: param names, search params, fairness by task.

    Errors name their line from ``root``, or (for a spec parsed earlier without these
    checks) from the node tree of ``spec.source``, composed only when there is an error."""
    info = spec.info
    for field, params in (("model.params", spec.model.params),
                          ("search.params", spec.search.params if spec.search else {})):
        try:
            estimators.check_params(info, params, field=field)
        except InvalidInput as exc:
            path = str(exc.detail["field"]).split(".")
            raise _error(path, _line_of(_tree(spec, root), path), exc.message) from None
    if spec.fairness is not None and info.task == estimators.REGRESSION:
        for name in ("max_demographic_parity_difference", "max_equalized_odds_difference"):
            if getattr(spec.fairness, name) is not None:
                path = ["fairness", name]
                raise _error(path, _line_of(_tree(spec, root), path),
                             f"{name} is defined for binary classification, not for a "
                             f"regression model ({info.cls})")


def _tree(spec: JobSpec, root: Any) -> Any:
    if root is not None or spec.source is None:
        return root
    import yaml

    return yaml.compose(spec.source, Loader=yaml.SafeLoader)


def _error(path: list[Any] | None, line: int | None, message: str,
           errors: list[dict[str, Any]] | None = None) -> InvalidInput:
    field = ".".join(str(p) for p in path) if path else None
    where = []
    if line is not None:
        where.append(f"line {line}")
    if field:
        where.append(f"field {field}")
    prefix = f"job file {', '.join(where)}: " if where else "job file: "
    detail: dict[str, Any] = {"field": field, "line": line}
    if errors is not None:
        detail["errors"] = errors
    return InvalidInput(prefix + message, detail=detail)


def _from_validation(exc: ValidationError, root: Any) -> InvalidInput:
    errors: list[dict[str, Any]] = []
    for err in exc.errors(include_url=False, include_input=False):
        path = list(err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = f"unknown field {path[-1]!r}"
        elif err["type"] == "missing":
            message = f"the field {path[-1]!r} is required"
        errors.append({"field": ".".join(str(p) for p in path) or None,
                       "line": _line_of(root, path), "message": message})
    first = errors[0]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    path_first = first["field"].split(".") if first["field"] else None
    return _error(path_first, first["line"], first["message"] + more, errors)


def _line_of(root: Any, path: list[Any]) -> int | None:
    """1-based line of the deepest node along ``path`` (the key's line for mappings)."""
    import yaml

    if root is None:
        return None
    node, line = root, root.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if _key_matches(key, part):
                    node, line = value, key.start_mark.line + 1
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) \
                and 0 <= part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def _key_matches(key: Any, part: Any) -> bool:
    value = getattr(key, "value", None)
    if part == "on" and value in ("on", "On", "ON", "yes", "true", "True"):
        return True
    return value == str(part)


def _refuse_duplicate_keys(node: Any, path: tuple[str, ...] = ()) -> None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(getattr(key, "value", ""))
            if name in seen:
                full = [*path, name]
                raise _error(full, key.start_mark.line + 1, f"the key {name!r} appears twice")
            seen.add(name)
            _refuse_duplicate_keys(value, (*path, name))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, (*path, str(i)))
