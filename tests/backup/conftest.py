"""A home populated through the services (datasets, runs, models, aliases) and its backup."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import make_settings, tiny_onnx

from appliance.domain.principal import SYSTEM, Principal
from appliance.domain.roles import Role

APPROVER = Principal("ann", Role.approver)
CSV_1 = "customer_id,age,plan\n" + "".join(f"{i},{20 + i % 40},{'ab'[i % 2]}\n" for i in range(80))
CSV_2 = "customer_id,age,plan\n" + "".join(f"{i},{30 + i % 40},{'ab'[i % 2]}\n" for i in range(90))


def populate(app: Any) -> None:
    """Real data through the real services: 2 dataset versions, runs, 2 model versions, aliases."""
    for name, text in (("a.csv", CSV_1), ("b.csv", CSV_2)):
        out = app.ingest.ingest_stream(io.BytesIO(text.encode()), file_name=name,
                                       dataset="customers", who=SYSTEM)
        assert out.outcome == "accepted", out
    run = app.runs.start_external(name="r1", experiment="churn", params={"lr": 0.1},
                                  tags={"team": "a"}, by=SYSTEM)
    app.runs.log_batch(run.id, metrics=[{"key": "loss", "value": 1 / (s + 1), "step": s}
                                           for s in range(5)])
    app.runs.add_artifact(run.id, "notes.txt", io.BytesIO(b"trained on customers v2"))
    app.runs.end(run.id, "succeeded", error=None, by=SYSTEM)
    app.registry.register_upload("churn", tiny_onnx(1.0), by=SYSTEM)
    app.registry.register_upload("churn", tiny_onnx(2.0), by=SYSTEM)
    app.registry.set_alias("churn", "champion", 1, reason="first", by=APPROVER)
    app.registry.set_alias("churn", "challenger", 2, reason="try it", by=APPROVER)
    app.auth.add_user("viv", "password123", Role.viewer, by=SYSTEM)
    jobs = app.settings.resolved_jobs_dir
    jobs.mkdir(parents=True, exist_ok=True)
    (jobs / "churn.yaml").write_text("name: churn\n")


def populate_light(app: Any) -> None:
    """A model version, an alias and a run: no ingest child process, for tests about plumbing."""
    app.registry.register_upload("churn", tiny_onnx(1.0), by=SYSTEM)
    app.registry.set_alias("churn", "champion", 1, reason="first", by=APPROVER)
    app.runs.start_external(name="r1", experiment="churn", params={"lr": 0.1}, tags=None, by=SYSTEM)


def state(app: Any) -> dict[str, Any]:
    """Everything a restore must bring back, as comparable plain data."""
    runs = app.runs.list_runs(limit=100).items
    return {
        "datasets": app.datasets.list_datasets(),
        "versions": app.datasets.versions("customers"),
        "contracts": app.datasets.contracts("customers"),
        "runs": [app.runs.show(r.id) for r in runs],
        "metrics": [app.runs.metric_history(r.id) for r in runs],
        "models": app.registry.list_models(),
        "model": app.registry.show_model("churn"),
        "aliases": app.registry.aliases("churn"),
        "history": app.registry.history("churn", "champion"),
        "users": app.auth.list_users(),
    }


@dataclass
class Source:
    home: Path
    backup: Path
    state: dict[str, Any]
    events: list[dict[str, Any]]
    summary: dict[str, Any]


@pytest.fixture(scope="session")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Source]:
    """A populated home, backed up once (tests copy the backup before harming it)."""
    from appliance.runtime import build

    root = tmp_path_factory.mktemp("source")
    app = build(make_settings(root / "home"))
    try:
        populate(app)
        app.ingest._summaries.submit(lambda: None).result()  # column summaries are written
        before = state(app)
        summary = app.backup.create(root / "backup", by=SYSTEM)
        events = app.auditor.recent(limit=1000)
    finally:
        app.close()  # closed: the CLI tests open the home themselves
    yield Source(root / "home", root / "backup", before, events, summary)


@pytest.fixture
def backup_copy(source: Source, tmp_path: Path) -> Path:
    """A private copy of the module's backup, safe to corrupt."""
    dest = tmp_path / "backup-copy"
    shutil.copytree(source.backup, dest)
    return dest


def rewrite_manifest(backup: Path, edit: Any) -> None:
    """Apply ``edit`` to the manifest and re-seal its digest (a deliberate, careful forgery)."""
    from appliance.backup import _manifest_digest

    path = backup / "manifest.json"
    manifest = json.loads(path.read_text())
    edit(manifest)
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    path.write_text(json.dumps(manifest))


def reseal_file(backup: Path, rel: str) -> None:
    """Record ``rel``'s current bytes in the manifest, as a forger would."""
    data = (backup / rel).read_bytes()

    def edit(m: dict[str, Any]) -> None:
        for e in m["files"]:
            if e["path"] == rel:
                e["sha256"], e["size"] = hashlib.sha256(data).hexdigest(), len(data)

    rewrite_manifest(backup, edit)
