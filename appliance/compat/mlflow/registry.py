"""MLflow registry reads answered from our registry; writes refused.

Our registry is written by training job files (and ``appliance models upload``), with
its parity check and promotion gate: an MLflow client may read it (models, versions,
aliases, a loadable model directory) but not register into it. A version's model
directory is virtual: ``mlflow-artifacts:/registry/<model>/<version>`` lists an
``MLmodel`` file (the ``onnx`` flavor, and ``python_function`` through ``mlflow.onnx``)
and ``model.onnx``, served by the artifact proxy.
"""

from __future__ import annotations

import json
import sys

from appliance.compat.mlflow import search, wire
from appliance.compat.mlflow.wire import millis
from appliance.domain.registry import Model, ModelVersion
from appliance.errors import InvalidInput, NotFound, PermissionDenied
from appliance.registry.service import RegistryService

REGISTRY_ROOT = "registry"   # never an experiment id ("0" or 32 hex digits)
MODEL_FILE = "model.onnx"
MLMODEL = "MLmodel"
REFUSAL = ("the appliance's registry is written by its training job files (POST /api/v1/runs "
           "with a job, or `appliance train`) or `appliance models upload`, which check "
           "parity and the promotion gate; the MLflow client may read the registry, not "
           "register into it (artifacts and runs are still logged)")


def refuse_write() -> PermissionDenied:
    return PermissionDenied(REFUSAL, detail={"error_code": wire.ErrorCode.permission_denied})


def download_uri(name: str, number: int) -> str:
    return f"mlflow-artifacts:/{REGISTRY_ROOT}/{name}/{number}"


class MlflowRegistry:
    def __init__(self, registry: RegistryService) -> None:
        self.registry = registry

    def model(self, name: str) -> wire.RegisteredModel:
        return model_wire(self.registry.model(name), self.registry.versions(name))

    def search_models(self, filter_text: str | None, max_results: int,
                      page_token: str | None) -> tuple[list[wire.RegisteredModel], str | None]:
        clauses = search.parse_filter(filter_text)
        models = [m for m in self.registry.list_models()
                  if all(search.matches(c, m.name) for c in clauses if c.key == "name")]
        if any(c.key != "name" for c in clauses):
            raise InvalidInput("registered models are searched by name only",
                               detail={"field": "filter"})
        models.sort(key=lambda m: m.name)
        start = int(page_token) if page_token and page_token.isdigit() else 0
        page = models[start:start + max_results]
        more = start + max_results < len(models)
        return ([model_wire(m, self.registry.versions(m.name)) for m in page],
                str(start + max_results) if more else None)

    def version(self, name: str, version: str) -> wire.ModelVersion:
        return version_wire(self.registry.version(name, _number(version)))

    def by_alias(self, name: str, alias: str) -> wire.ModelVersion:
        pointer = self.registry.alias(name, alias)
        return self.version(name, str(pointer.version))

    def latest(self, name: str, stages: list[str]) -> list[wire.ModelVersion]:
        """Our versions have no MLflow stage: the newest is the latest of stage "None"."""
        versions = self.registry.versions(name)
        if not versions or (stages and "None" not in stages and "none" not in stages):
            return []
        return [version_wire(versions[0])]

    def search_versions(self, filter_text: str | None) -> list[wire.ModelVersion]:
        clauses = search.parse_filter(filter_text)
        if any(c.key not in ("name", "run_id") for c in clauses):
            raise InvalidInput("model versions are searched by name or run_id",
                               detail={"field": "filter"})
        out = []
        for m in self.registry.list_models():
            for v in self.registry.versions(m.name):
                row = version_wire(v)
                if all(search.matches(c, row.name if c.key == "name" else row.run_id)
                       for c in clauses):
                    out.append(row)
        return out

    def download_uri(self, name: str, version: str) -> str:
        v = self.registry.version(name, _number(version))
        return download_uri(v.model, v.number)

    # -- the virtual model directory ---------------------------------------------------

    def files(self, name: str, version: str) -> list[wire.FileInfo]:
        v = self.registry.version(name, _number(version))
        return [wire.FileInfo(path=MLMODEL, is_dir=False, file_size=len(mlmodel(v))),
                wire.FileInfo(path=MODEL_FILE, is_dir=False, file_size=v.onnx_size)]

    def file(self, name: str, version: str, path: str) -> bytes:
        v = self.registry.version(name, _number(version))
        if path == MLMODEL:
            return mlmodel(v)
        if path == MODEL_FILE:
            return self.registry.onnx_bytes(v.model, v.number)
        raise NotFound(f"model {name} version {version} has no file {path!r}")


def mlmodel(v: ModelVersion) -> bytes:
    """The MLmodel file (JSON is YAML) MLflow's loaders read: the onnx flavor's file and
    the python_function loader."""
    python = ".".join(str(n) for n in sys.version_info[:3])
    doc = {
        "artifact_path": "model",
        "flavors": {
            "onnx": {"data": MODEL_FILE, "providers": ["CPUExecutionProvider"], "code": None},
            "python_function": {"loader_module": "mlflow.onnx", "data": MODEL_FILE,
                                "python_version": python},
        },
        "model_uuid": v.onnx_sha256[:32],
        "run_id": str(v.run_id) if v.run_id else None,
        "utc_time_created": v.created_at.strftime("%Y-%m-%d %H:%M:%S.%f"),
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def model_wire(m: Model, versions: list[ModelVersion]) -> wire.RegisteredModel:
    newest = versions[0] if versions else None
    return wire.RegisteredModel(
        name=m.name, creation_timestamp=millis(m.created_at),
        last_updated_timestamp=millis(newest.created_at if newest else m.created_at),
        latest_versions=[version_wire(newest)] if newest else [],
        aliases=[wire.RegisteredModelAlias(alias=a, version=str(n))
                 for a, n in sorted(m.aliases.items())],
    )


def version_wire(v: ModelVersion) -> wire.ModelVersion:
    return wire.ModelVersion(
        name=v.model, version=str(v.number), creation_timestamp=millis(v.created_at),
        last_updated_timestamp=millis(v.created_at), source=download_uri(v.model, v.number),
        run_id=str(v.run_id) if v.run_id else "",
        status="READY" if v.status.value == "ready" else "PENDING_REGISTRATION",
        tags=[wire.KeyValue(key="appliance.status", value=v.status.value),
              wire.KeyValue(key="appliance.flavor", value=v.flavor)],
        aliases=list(v.aliases),
    )


def _number(version: str) -> int:
    if not isinstance(version, str) or not version.isdigit() or len(version) > 9:
        raise InvalidInput(f"invalid model version {version!r}", detail={"field": "version"})
    return int(version)
