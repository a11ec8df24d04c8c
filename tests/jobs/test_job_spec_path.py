"""One parsed JobSpec travels from the job file to the trainer: parsed once, serialised once."""

from __future__ import annotations

from typing import Any

import pytest
from scheduler_clock import ADMIN

from appliance.train import spec as spec_module

from .test_drift_job import JOB, seed


def test_a_loop_run_parses_its_job_file_once(api: Any, appliance_app: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: list[str] = []
    real = spec_module.parse_job

    def counting(text: str, **kwargs: Any) -> spec_module.JobSpec:
        parsed.append(text)
        return real(text, **kwargs)

    monkeypatch.setattr(spec_module, "parse_job", counting)
    seed(api, appliance_app)  # writes the job file and reloads: the one parse
    assert parsed == [JOB]
    run = appliance_app.jobs.run_here("train.churn", by=ADMIN)
    assert run.status == "succeeded", run.error
    assert parsed == [JOB]  # the loop, the training service and its executor reuse the spec
    (trained,) = appliance_app.runs.list_runs(kind="train", experiment="churn").items
    assert appliance_app.runs.show(trained.id).spec == JOB  # the file's own text
