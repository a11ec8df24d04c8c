"""onnxruntime sessions cached per model version; alias maps swapped atomically.

When an alias moves, the new version's session is loaded first and only then
is the model's alias map replaced (one reference assignment), so a request in
flight keeps the session it resolved and no request ever sees a half-swapped
state or waits for a load.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from appliance.domain.registry import CHAMPION, check_alias
from appliance.errors import NotFound
from appliance.registry.service import RegistryService


@dataclass(frozen=True)
class Input:
    name: str    # the ONNX input
    column: str  # the raw column that feeds it
    kind: str    # float | string | int64 | double | ...


@dataclass(frozen=True)
class LoadedModel:
    model: str
    version: int
    session: Any
    inputs: tuple[Input, ...]
    outputs: tuple[str, ...]
    classes: tuple[Any, ...] | None

    @cached_property
    def columns(self) -> frozenset[str]:  # cached: asked on every request
        return frozenset(i.column for i in self.inputs)


class SessionCache:
    def __init__(self, registry: RegistryService) -> None:
        self.registry = registry
        self._sessions: dict[tuple[str, int], LoadedModel] = {}
        self._aliases: dict[str, dict[str, int]] = {}
        self._load_lock = threading.Lock()

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
        aliases = self.registry.aliases(model)
        for number in set(aliases.values()):
            if (model, number) not in self._sessions:
                self._load(model, number)
        self._aliases[model] = dict(aliases)  # the atomic swap
        return aliases

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
            inputs = tuple(
                Input(i.name, str(columns.get(i.name, i.name)) if isinstance(columns, dict)
                      else i.name, _kind(i.type))
                for i in session.get_inputs()
            )
            loaded = LoadedModel(model, version, session, inputs,
                                 tuple(o.name for o in session.get_outputs()),
                                 tuple(classes) if isinstance(classes, list) else None)
            self._sessions[(model, version)] = loaded
            return loaded


def _kind(onnx_type: str) -> str:
    return {"tensor(float)": "float", "tensor(string)": "string", "tensor(double)": "double",
            "tensor(int64)": "int64"}.get(onnx_type, onnx_type)


def _json(raw: str | None, default: Any) -> Any:
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        return default
