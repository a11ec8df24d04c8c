"""The CLI's output for people: tables by default, JSON with ``--json``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from appliance_test_support import ServerProcess
from cli_testing import SMALL_JOB, invoke, run_cli
from typer.testing import Result

# -- output for people: tables by default, JSON with --json ---------------------------

LOOP_JOB = SMALL_JOB + 'features: {exclude: [customer_id]}\nschedule: {train: {"on": new_data}}\n'


@pytest.fixture(scope="module")
def looped_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local home whose `train.churn` loop ran once by hand: churn v1 is champion."""
    from appliance.demo import make_customers

    home = tmp_path_factory.mktemp("cli-tables") / "home"
    data = home.parent / "customers.csv"
    data.write_text(make_customers(300, seed=5).write_csv())
    assert invoke(home, "ingest", str(data), "--dataset", "customers").exit_code == 0
    (home / "jobs").mkdir(parents=True, exist_ok=True)
    (home / "jobs" / "churn.yaml").write_text(LOOP_JOB)
    ran = invoke(home, "jobs", "run", "train.churn")
    assert ran.exit_code == 0, ran.output
    return home


def assert_table_not_json(result: Result, *words: str) -> None:
    assert result.exit_code == 0, result.output
    assert not result.stdout.lstrip().startswith(("{", "[")), result.stdout
    assert "│" in result.stdout or "┃" in result.stdout, result.stdout  # a rich table
    for word in words:
        assert word in result.stdout, (word, result.stdout)


def test_show_model_prints_a_version_table_and_json_with_the_flag(looped_home: Path) -> None:
    assert_table_not_json(invoke(looped_home, "models", "show", "churn"),
                          "churn: champion → v1", "1 versions", "roc_auc", "passed")
    out = json.loads(invoke(looped_home, "models", "show", "churn", "--json").stdout)
    assert out["aliases"] == {"champion": 1} and out["versions"][0]["number"] == 1


def test_list_and_show_runs_print_tables_and_json_with_the_flag(looped_home: Path) -> None:
    assert_table_not_json(invoke(looped_home, "runs", "list"), "churn", "succeeded", "1 of 1 runs")
    page = json.loads(invoke(looped_home, "runs", "list", "--json").stdout)
    run_id = page["items"][0]["id"]
    assert_table_not_json(invoke(looped_home, "runs", "show", run_id), run_id, "params", "C",
                          "roc_auc", "Produced model version churn v1")
    shown = json.loads(invoke(looped_home, "runs", "show", run_id, "--json").stdout)
    assert shown["id"] == run_id and shown["model_version"] == {"model": "churn", "version": 1}


def test_pause_and_resume_job_print_its_state_and_json_with_the_flag(looped_home: Path) -> None:
    paused = invoke(looped_home, "jobs", "pause", "train.churn")
    assert_table_not_json(paused, "train.churn: paused")
    assert_table_not_json(invoke(looped_home, "jobs", "list"), "train.churn", "paused")
    resumed = json.loads(invoke(looped_home, "jobs", "resume", "train.churn", "--json").stdout)
    assert resumed["id"] == "train.churn" and resumed["paused"] is False


def test_list_models_and_datasets_print_tables(looped_home: Path) -> None:
    assert_table_not_json(invoke(looped_home, "models", "list"), "churn", "champion → v1")
    assert_table_not_json(invoke(looped_home, "datasets", "show", "customers"), "customers",
                          "versions", "accepted")


def test_jobs_runs_limit_1_shows_the_loop_steps_and_logs(looped_home: Path) -> None:
    shown = invoke(looped_home, "jobs", "runs", "train.churn", "--limit", "1")
    assert_table_not_json(shown, "1 of 1 runs", "steps", "validate", "promote", "logs:",
                          "gate: [metric=roc_auc", "queued training run")  # [..] is not markup
    page = json.loads(invoke(looped_home, "jobs", "runs", "train.churn", "--limit", "1",
                             "--json").stdout)
    assert "queued training run" in page["items"][0]["logs"]


def test_jobs_runs_limit_1_shows_logs_from_a_running_server(tmp_path: Path,
                                                           server_factory: Any) -> None:
    server: ServerProcess = server_factory(tmp_path / "home")
    with server.client() as c:
        token = c.token
        queued = c.run_job("housekeeping.checkpoint")
        deadline = time.monotonic() + 30
        while c.job_run("housekeeping.checkpoint", queued["id"])["status"] not in (
                "succeeded", "failed"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        logs = c.job_run("housekeeping.checkpoint", queued["id"])["logs"]
    out = run_cli(server.home, "jobs", "runs", "housekeeping.checkpoint", "--limit", "1", "--json",
                  APPLIANCE_PORT=str(server.port), APPLIANCE_TOKEN=str(token))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["items"][0]["logs"] == logs
    table = run_cli(server.home, "jobs", "runs", "housekeeping.checkpoint", "--limit", "1",
                    APPLIANCE_PORT=str(server.port), APPLIANCE_TOKEN=str(token))
    assert table.returncode == 0 and "logs:" in table.stdout, table.stderr


def test_drift_prints_the_test_and_verdict_per_column(looped_home: Path) -> None:
    result = invoke(looped_home, "drift", "churn", "--dataset-version", "1",
                    "--test", "age=psi", "--threshold", "age=0.3")
    assert_table_not_json(result, "per column", "test", "verdict", "psi", "ks", "ok",
                          "multivariate_auc")
    assert "set for this column" in result.stdout and "300 reference rows" in result.stdout
    as_json = invoke(looped_home, "drift", "churn", "--dataset-version", "1", "--json",
                     "--no-multivariate")
    report = json.loads(as_json.stdout)
    assert report["multivariate"] is None and report["drifted_columns"] == []
    age = next(f for f in report["features"] if f["column"] == "age")
    assert age["test"] == "ks" and age["chosen"] == "auto"


@pytest.mark.parametrize(("args", "message"), [
    (("--test", "age"), "--test takes COLUMN=VALUE"),
    (("--test", "age=kolmogorov"), "unknown drift test 'kolmogorov'"),
    (("--threshold", "age=high"), "not a number"),
    (("--test", "ghost=psi"), "not an input column"),
    (("--test", "plan=wasserstein"), "is for numerical columns"),
])
def test_drift_refuses_bad_overrides_clearly(looped_home: Path, args: tuple[str, ...],
                                             message: str) -> None:
    result = invoke(looped_home, "drift", "churn", "--dataset-version", "1", *args)
    assert result.exit_code == 2 and message in result.output, result.output
