"""MLflow's artifact proxy (``/api/2.0/mlflow-artifacts/artifacts/<path>``) onto our run
artifacts (content-addressed, ``appliance.artifacts``) and the registry's virtual model
directories. A path is ``<experiment id>/<run id>/artifacts[/<relative path>]`` or
``<experiment id>/models/<logged model id>/artifacts[/<path>]`` (kept with the model's
run, under ``models/<id>/``) or ``registry/<model>/<version>[/<file>]``; anything else,
a ``..``, an empty or absolute part, a backslash or a control character is refused
before anything is read or written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from appliance.compat.mlflow import wire
from appliance.compat.mlflow.logged import MlflowLoggedModels
from appliance.compat.mlflow.registry import REGISTRY_ROOT, MlflowRegistry
from appliance.compat.mlflow.tracking import MlflowTracking
from appliance.errors import InvalidInput, NotFound
from appliance.runs.checks import check_artifact_path


@dataclass(frozen=True)
class _Place:
    run_id: str | None        # a run's artifacts, or
    model: tuple[str, str] | None  # a registered model version's directory
    rel: str                  # the path below it ("" for its root)


class MlflowArtifacts:
    def __init__(self, tracking: MlflowTracking, registry: MlflowRegistry,
                 logged: MlflowLoggedModels) -> None:
        self.tracking = tracking
        self.registry = registry
        self.logged = logged

    def upload(self, path: str, stream: IO[bytes]) -> None:
        place = self._place(path)
        if place.run_id is None or not place.rel:
            raise InvalidInput(f"cannot write to {path!r}: artifacts are written under "
                               "<experiment id>/<run id>/artifacts/<path>",
                               detail={"field": "path"})
        self.tracking.runs.add_artifact_at(place.run_id, place.rel, stream)

    def listing(self, path: str | None) -> list[wire.FileInfo]:
        """The entries directly under ``path`` (basenames, as MLflow's server answers)."""
        if not path:
            return []
        place = self._place(path)
        if place.model is not None:
            return self.registry.files(*place.model) if not place.rel else []
        assert place.run_id is not None
        prefix = place.rel + "/" if place.rel else ""
        entries: dict[str, wire.FileInfo] = {}
        for ref in self.tracking.runs.artifact_files(place.run_id):
            if ref.name == place.rel:
                return [wire.FileInfo(path=ref.name.rsplit("/", 1)[-1], is_dir=False,
                                      file_size=ref.size_bytes)]
            if not ref.name.startswith(prefix):
                continue
            head, sep, _ = ref.name[len(prefix):].partition("/")
            entries[head] = (wire.FileInfo(path=head, is_dir=True) if sep else
                             wire.FileInfo(path=head, is_dir=False, file_size=ref.size_bytes))
        return [entries[k] for k in sorted(entries)]

    def download(self, path: str) -> bytes:
        place = self._place(path)
        if not place.rel:
            raise NotFound(f"{path!r} is a directory, not a file")
        if place.model is not None:
            return self.registry.file(*place.model, place.rel)
        assert place.run_id is not None
        return self.tracking.runs.artifact_bytes(place.run_id, place.rel)

    def _place(self, path: str) -> _Place:
        check_artifact_path(path)
        parts = path.split("/")
        if parts[0] == REGISTRY_ROOT and len(parts) >= 3:
            return _Place(None, (parts[1], parts[2]), "/".join(parts[3:]))
        if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
            # a logged model's files: its run's artifacts under models/<model id>/
            model = self.logged.get(parts[2])
            if model.info.experiment_id != parts[0]:
                raise NotFound(f"model {parts[2]} is not in experiment {parts[0]!r}")
            return _Place(model.info.source_run_id, None,
                          "/".join(["models", parts[2], *parts[4:]]))
        if len(parts) < 3 or parts[2] != "artifacts":
            raise NotFound(f"no artifacts at {path!r}: expected "
                           "<experiment id>/<run id>/artifacts/<path>")
        run = self.tracking.run(parts[1])
        if run.info.experiment_id != parts[0]:
            raise NotFound(f"run {parts[1]} is not in experiment {parts[0]!r}")
        return _Place(run.info.run_id, None, "/".join(parts[3:]))
