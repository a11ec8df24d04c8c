"""onnxruntime sessions cached per model version; alias maps swapped atomically.

When an alias moves, the new version's session is loaded first and only then
is the model's alias map replaced (one reference assignment), so a request in
flight keeps the session it resolved and no request ever sees a half-swapped
state or waits for a load.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from appliance.domain.registry import CHAMPION, check_alias
from appliance.errors import NotFound
from appliance.registry.service import RegistryService

log = logging.getLogger(__name__)
FAST_KINDS = frozenset({"float", "double", "string", "int64"})
UNKNOWN = -1  # a dimension of no fixed size after the batch: such an input cannot be fed


@dataclass(frozen=True)
class Input:
    name: str    # the ONNX input
    column: str  # the raw column (or, for a vector input, the record field) that feeds it
    kind: str    # element type: float | string | int64 | double | bool | ...
    shape: tuple[int, ...] = (1,)  # one row's shape: (1,) a value a row, () a rank-1 input
    features: tuple[str, ...] | None = None  # names of a vector input's values (upload)

    @property
    def scalar(self) -> bool:
        """One value a row (shape ``[batch]`` or ``[batch, 1]``)."""
        return self.shape in ((), (1,))


@dataclass(frozen=True)
class Outputs:
    """How to read a model's outputs: a label and probabilities, or values.

    ``classifier``: the first output holds one label a row and the second the
    probabilities, as a ``[batch, k]`` tensor or (``zipmap``) a list of
    ``{class: p}`` maps. Otherwise the first output is the prediction: one value
    a row, or a nested list for a row shape other than ``[1]``.
    """

    names: tuple[str, ...]
    classifier: bool = False
    zipmap: bool = False


@dataclass(frozen=True)
class LoadedModel:
    model: str
    version: int
    session: Any
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...]
    classes: tuple[Any, ...] | None
    reading: Outputs | None = None  # None: the appliance's own export (label index, proba)
    detector: Any = None  # the outlier detector's session (same inputs), if the version has one

    @cached_property
    def columns(self) -> frozenset[str]:  # cached: asked on every request
        return frozenset(i.column for i in self.inputs)

    # what the table-wise checks (``feeds.scalar_feeds``) ask on every request, once
    @cached_property
    def float_inputs(self) -> tuple[Input, ...]:
        return tuple(i for i in self.inputs if i.kind not in ("string", "int64"))

    @cached_property
    def float_columns(self) -> tuple[str, ...]:
        return tuple(i.column for i in self.float_inputs)

    @cached_property
    def text_inputs(self) -> tuple[Input, ...]:
        return tuple(i for i in self.inputs if i.kind == "string")

    @cached_property
    def int_inputs(self) -> tuple[Input, ...]:
        return tuple(i for i in self.inputs if i.kind == "int64")

    @cached_property
    def has_double(self) -> bool:
        return any(i.kind == "double" for i in self.inputs)

    @cached_property
    def fast(self) -> bool:
        """Every input one value a row of a kind the table-wise checks handle (our exports)."""
        return all(i.shape == (1,) and i.kind in FAST_KINDS for i in self.inputs)


class SessionCache:
    def __init__(self, registry: RegistryService) -> None:
        self.registry = registry
        self._sessions: dict[tuple[str, int], LoadedModel] = {}
        self._aliases: dict[str, dict[str, int]] = {}
        self._load_lock = threading.Lock()
        # one refresh at a time: the map swapped last is read last (a request's first
        # refresh racing the change feed's cannot put back a map read before the change)
        self._refresh_lock = threading.RLock()

    def resolve(self, model: str, *, alias: str | None = None,
                version: int | None = None) -> LoadedModel:
        if version is None:
            alias = alias or CHAMPION
            aliases = self._aliases.get(model)
            version = aliases.get(alias) if aliases is not None else None
            if version is None:  # a name in the map is valid; anything else is checked
                alias = check_alias(alias)
                if aliases is None:
                    aliases = self.refresh(model)
                version = aliases.get(alias)
            if version is None:
                raise NotFound(f"model {model!r} has no alias {alias!r}")
        hit = self._sessions.get((model, version))
        return hit if hit is not None else self._load(model, version)

    def refresh(self, model: str) -> dict[str, int]:
        """Re-read a model's aliases, load their sessions, then swap the map in one step."""
        with self._refresh_lock:
            aliases = self.registry.aliases(model)
            for number in set(aliases.values()):
                if (model, number) not in self._sessions:
                    self._load(model, number)
            self._aliases[model] = dict(aliases)  # the atomic swap
            return aliases

    def invalidate(self, model: str) -> None:
        """Another host moved an alias of ``model`` (the change feed): reload the map if this
        host serves the model (else the first request reads it); if that fails, drop it, so
        the next request reads the store rather than serving the old version."""
        with self._refresh_lock:
            if model not in self._aliases:
                return
            try:
                self.refresh(model)
            except Exception:
                log.exception("reloading the aliases of %s failed; dropped, the next request "
                              "reads them", model)
                self._aliases.pop(model, None)

    def invalidate_all(self) -> None:
        """Drop every alias map (the change feed lost track); sessions stay (versions never
        change)."""
        with self._refresh_lock:
            self._aliases = {}

    def _load(self, model: str, version: int) -> LoadedModel:
        with self._load_lock:
            hit = self._sessions.get((model, version))
            if hit is not None:
                return hit
            import onnxruntime as ort

            data = self.registry.onnx_bytes(model, version)  # sha256 checked here
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            session = ort.InferenceSession(data, sess_options=options,
                                           providers=["CPUExecutionProvider"])
            meta = session.get_modelmeta().custom_metadata_map
            columns = _json(meta.get("appliance.columns"), {})
            classes = _json(meta.get("appliance.classes"), None)
            record = self.registry.version(model, version)
            features = _features(record.signature)
            inputs = tuple(
                Input(i.name, str(columns.get(i.name, i.name)) if isinstance(columns, dict)
                      else i.name, _kind(i.type), _row_shape(i.shape), features.get(i.name))
                for i in session.get_inputs()
            )
            outputs = session.get_outputs()
            classes_known = isinstance(classes, list)
            detector = None
            if record.outliers is not None:
                detector = _detector(self.registry.outlier_onnx(model, version), session,
                                     options, model, version)
            loaded = LoadedModel(model, version, session, inputs,
                                 tuple(o.name for o in outputs),
                                 tuple(classes) if classes_known else None,
                                 None if classes_known else _reading(outputs), detector)
            self._sessions[(model, version)] = loaded
            return loaded


def _detector(data: bytes | None, session: Any, options: Any, model: str, version: int) -> Any:
    """The outlier detector's session, when it takes exactly the model's inputs (it is fed the
    model's tensors) and answers a score and a flag; else None, and the version is served
    without outlier scoring."""
    import onnxruntime as ort

    if data is None:
        return None
    try:
        detector = ort.InferenceSession(data, sess_options=options,
                                        providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime raises its own types; serving goes on without it
        log.exception("%s v%s: the outlier detector does not load", model, version)
        return None
    want = {(i.name, i.type) for i in session.get_inputs()}
    if {(i.name, i.type) for i in detector.get_inputs()} != want or \
            [o.type for o in detector.get_outputs()] != ["tensor(float)", "tensor(bool)"]:
        log.warning("%s v%s: the outlier detector's inputs or outputs do not fit the model; "
                    "served without outlier scoring", model, version)
        return None
    return detector


def _kind(onnx_type: str) -> str:
    """``tensor(float)`` -> ``float``; anything that is not a tensor keeps its full name."""
    if onnx_type.startswith("tensor(") and onnx_type.endswith(")"):
        return onnx_type[7:-1]
    return onnx_type


def _row_shape(shape: Any) -> tuple[int, ...]:
    """One row's shape: the dimensions after the batch, UNKNOWN where not fixed."""
    dims = list(shape or [])[1:]
    return tuple(d if isinstance(d, int) and d > 0 else UNKNOWN for d in dims)


def _features(signature: Any) -> dict[str, tuple[str, ...]]:
    """Input name -> the feature names its upload gave (vector inputs only)."""
    out: dict[str, tuple[str, ...]] = {}
    entries = signature.get("inputs") if isinstance(signature, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        names = entry.get("features") if isinstance(entry, dict) else None
        if isinstance(names, list) and all(isinstance(n, str) for n in names):
            out[str(entry.get("name"))] = tuple(names)
    return out


_LABEL_TYPES = frozenset({"tensor(int64)", "tensor(int32)", "tensor(string)"})


def _reading(outputs: Any) -> Outputs:
    """A model from elsewhere: a label-plus-probabilities pair, or plain values."""
    names = tuple(o.name for o in outputs)
    if len(outputs) >= 2 and outputs[0].type in _LABEL_TYPES:
        second = outputs[1].type
        if second in ("tensor(float)", "tensor(double)"):
            return Outputs(names, classifier=True)
        if second.startswith("seq(map("):
            return Outputs(names, classifier=True, zipmap=True)
    return Outputs(names)


def _json(raw: str | None, default: Any) -> Any:
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default
