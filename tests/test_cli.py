"""The ``appliance`` command line, in local mode (no server) and against a real server.

Local mode runs in-process through typer's CliRunner on a real DuckDB file in
tmp_path; wherever a server holds the store the CLI runs as a real
``python -m appliance`` subprocess, the way a user's shell runs it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from appliance_test_support import ADMIN_PASSWORD, ServerProcess, free_port
from cli_testing import SMALL_JOB, assert_one_line_error, invoke, run_cli, write

VERBS = ("up", "serve", "console", "init", "ingest", "datasets", "users", "audit")
HEAVY_MODULES = ("polars", "duckdb", "streamlit", "pandera")

GOOD_CSV = (
    "customer_id,age,plan,churned\n"
    + "".join(f"{1000 + i},{20 + i % 50},{('basic', 'plus', 'pro')[i % 3]},{i % 2}\n" for i in range(60))
)
MALFORMED_CSV = "customer_id,age\n1,2,3\n\"unterminated\n"


@pytest.fixture(scope="module")
def ingested_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home where `appliance ingest` has stored one version of `customers` (local mode)."""
    home = tmp_path_factory.mktemp("cli") / "home"
    src = write(home.parent / "customers.csv", GOOD_CSV)
    result = invoke(home, "ingest", str(src), "--dataset", "customers")
    assert result.exit_code == 0, result.output
    yield home


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- help and import cost ----------------------------------------------------------


def test_show_help_lists_every_verb_quickly() -> None:
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "appliance", "--help"], capture_output=True, text=True,
                         timeout=60, check=True)
    elapsed = time.monotonic() - started
    for verb in VERBS:
        assert re.search(rf"^\W*{verb}\s", out.stdout, re.MULTILINE), (verb, out.stdout)
    assert elapsed < 5, f"`appliance --help` took {elapsed:.1f}s"


def test_import_cli_loads_no_heavy_modules() -> None:
    code = ("import appliance.cli, sys; "
            f"print(sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_cli_modules_share_one_home_option_one_fail_and_one_settings() -> None:
    """``--home``, failing in one line, settings, the OS user and JSON printing are defined
    once (appliance/cli/common.py, output.py), not copied into each verb module."""
    import ast

    shared = {"Home", "Json", "fail", "_fail", "cli_settings", "_settings", "os_user", "_os_user",
              "_json", "_print", "call", "_call", "_backend", "backend_for"}
    homes = {"common.py": {"Home", "fail", "cli_settings", "os_user"},
             "backend.py": {"call", "backend_for"},  # they open a backend: beside it, no cycle
             "output.py": {"Json"}}
    cli_dir = Path(__file__).resolve().parents[1] / "appliance" / "cli"
    found: dict[str, set[str]] = {}
    for path in sorted(cli_dir.glob("*.py")):
        names = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
        if names & shared:
            found[path.name] = names & shared
    assert found == homes


def test_cli_os_user_falls_back_to_the_uid_without_a_user_name(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import getpass

    from appliance.cli.common import os_user

    def nameless() -> str:
        raise KeyError("getpwuid(): uid not found")

    monkeypatch.setattr(getpass, "getuser", nameless)
    assert os_user() == str(os.getuid())


# -- local mode -------------------------------------------------------------------


def test_init_demo_seeds_jobs_and_inbox_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = invoke(home, "init", "--demo")
    assert result.exit_code == 0, result.output
    assert list((home / "jobs").glob("*.yaml"))
    assert (home / "inbox" / "customers" / "customers-initial.csv").stat().st_size > 0
    assert (home / "samples" / "customers.csv").exists()
    assert "demo data: dropped" in result.stdout


def test_ingest_file_prints_accepted_ingest_json(tmp_path: Path) -> None:
    home = tmp_path / "home"
    src = write(tmp_path / "customers.csv", GOOD_CSV)
    result = invoke(home, "ingest", str(src), "--dataset", "customers", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)  # stdout is the JSON alone; the progress bar goes to stderr
    assert out["outcome"] == "accepted"
    assert out["dataset"] == "customers" and out["version"] == 1
    assert out["file_name"] == "customers.csv"


def test_ingest_malformed_file_exits_1_and_quarantines_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    src = write(tmp_path / "broken.csv", MALFORMED_CSV)
    result = invoke(home, "ingest", str(src), "--dataset", "customers", "--json")
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["outcome"] == "quarantined"
    quarantined = home / "quarantine" / "customers"
    assert (quarantined / "broken.csv").exists()
    reason = json.loads((quarantined / "broken.csv.reason.json").read_text())
    assert reason["reason"] == "malformed"
    assert src.exists(), "ingesting a file must not move the user's own copy"


def test_list_datasets_shows_ingested_dataset(ingested_home: Path) -> None:
    result = invoke(ingested_home, "datasets", "list")
    assert result.exit_code == 0, result.output
    row = next(line for line in result.stdout.splitlines() if "customers" in line)
    assert "60" in row  # rows


def test_show_dataset_prints_its_versions(ingested_home: Path) -> None:
    result = invoke(ingested_home, "datasets", "show", "customers", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["name"] == "customers"
    assert out["current_version"] == 1
    assert [v["number"] for v in out["version_list"]] == [1]
    assert out["version_list"][0]["status"] == "accepted"


def test_print_contract_shows_inferred_yaml(ingested_home: Path) -> None:
    import yaml

    result = invoke(ingested_home, "datasets", "contract", "customers")
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(result.stdout)
    assert {"customer_id", "age", "plan", "churned"} <= set(doc["columns"])


def test_set_contract_stores_a_new_version(tmp_path: Path) -> None:
    import yaml

    home = tmp_path / "home"
    src = write(tmp_path / "customers.csv", GOOD_CSV)
    assert invoke(home, "ingest", str(src), "--dataset", "customers").exit_code == 0
    doc = yaml.safe_load(invoke(home, "datasets", "contract", "customers").stdout)
    doc["columns"]["age"]["nullable"] = True
    edited = write(tmp_path / "edited.yaml", yaml.safe_dump(doc))

    result = invoke(home, "datasets", "contract", "customers", "--set", str(edited))
    assert result.exit_code == 0, result.output
    assert "contract v2 stored for customers" in result.stdout
    shown = json.loads(invoke(home, "datasets", "show", "customers", "--json").stdout)
    assert shown["contract_version"] == 2
    assert yaml.safe_load(invoke(home, "datasets", "contract", "customers").stdout)["columns"]["age"][
        "nullable"] is True


@pytest.mark.parametrize(
    "args",
    [
        ("ingest", "{file}", "--dataset", "../x"),
        ("datasets", "show", "../x"),
        ("datasets", "contract", "../x"),
        ("datasets", "show", "Customers"),
    ],
    ids=["ingest", "show", "contract", "uppercase"],
)
def test_reject_bad_dataset_name_with_one_line_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    src = write(tmp_path / "customers.csv", GOOD_CSV)
    home = tmp_path / "home"
    result = invoke(home, *(a.format(file=src) for a in args))
    assert result.exit_code == 2, result.output
    assert_one_line_error(result.stderr, mentions="invalid dataset name")
    assert not (tmp_path / "x").exists() and not (home / "x").exists()


def test_show_unknown_dataset_exits_2_with_one_line_error(tmp_path: Path) -> None:
    result = invoke(tmp_path / "home", "datasets", "show", "nope")
    assert result.exit_code == 2, result.output
    assert_one_line_error(result.stderr, mentions="nope")


def test_reject_bad_setting_with_one_line_error(tmp_path: Path) -> None:
    result = invoke(tmp_path / "home", "datasets", "list", APPLIANCE_PORT="not-a-port")
    assert result.exit_code == 2, result.output
    assert_one_line_error(result.stderr, mentions="APPLIANCE_PORT")


def test_verify_audit_on_fresh_home_exits_0(tmp_path: Path) -> None:
    result = invoke(tmp_path / "home", "audit", "verify", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ok"] is True and out["problems"] == []


def test_add_user_then_token_authenticates_against_later_server(tmp_path: Path, server_factory: Any) -> None:
    home = tmp_path / "home"
    added = invoke(home, "users", "add", "bob", "--role", "operator", "--password",
                   "bob-password-123", "--json")
    assert added.exit_code == 0, added.output
    assert json.loads(added.stdout)["role"] == "operator"
    minted = invoke(home, "users", "token", "bob", "--name", "laptop", "--json")
    assert minted.exit_code == 0, minted.output
    token = json.loads(minted.stdout)["token"]

    server: ServerProcess = server_factory(home)
    me = httpx.get(server.url + "/api/v1/auth/me", headers=bearer(token), timeout=10)
    assert me.status_code == 200, me.text
    assert me.json() == {"username": "bob", "role": "operator"}


# -- remote mode (a server holds the store) -----------------------------------------


def test_refuse_remote_command_without_token_naming_appliance_token(tmp_path: Path,
                                                                     server_factory: Any) -> None:
    server: ServerProcess = server_factory(tmp_path / "home")
    out = run_cli(server.home, "datasets", "list", APPLIANCE_PORT=str(server.port))
    assert out.returncode == 2, out.stderr
    assert_one_line_error(out.stderr, mentions="APPLIANCE_TOKEN")
    assert f"PID {server.proc.pid}" in out.stderr


def test_ingest_remote_uploads_through_api_and_lists_it(tmp_path: Path, server_factory: Any) -> None:
    server: ServerProcess = server_factory(tmp_path / "home")
    with server.client() as c:
        token = c.token
    assert token
    src = write(tmp_path / "customers.csv", GOOD_CSV)
    env = {"APPLIANCE_PORT": str(server.port), "APPLIANCE_TOKEN": token}

    up = run_cli(server.home, "ingest", str(src), "--dataset", "customers", "--json", **env)
    assert up.returncode == 0, up.stderr
    out = json.loads(up.stdout)
    assert out["outcome"] == "accepted" and out["version"] == 1
    assert [r["id"] for r in server.ingests("customers")] == [out["id"]]

    listed = run_cli(server.home, "datasets", "list", **env)
    assert listed.returncode == 0, listed.stderr
    assert "customers" in listed.stdout
    contract = run_cli(server.home, "datasets", "contract", "customers", **env)
    assert contract.returncode == 0, contract.stderr
    assert "customer_id" in contract.stdout

    bad = run_cli(server.home, "datasets", "show", "../datasets", **env)
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr, mentions="invalid dataset name")


def test_report_remote_server_not_answering_on_configured_port(tmp_path: Path,
                                                               server_factory: Any) -> None:
    server: ServerProcess = server_factory(tmp_path / "home")
    out = run_cli(server.home, "datasets", "list", APPLIANCE_PORT=str(free_port()),
                  APPLIANCE_TOKEN="apl_whatever")
    assert out.returncode == 2, out.stderr
    assert_one_line_error(out.stderr, mentions="APPLIANCE_PORT")


def test_bootstrap_token_creates_first_admin_then_is_refused(tmp_path: Path, server_factory: Any) -> None:
    server: ServerProcess = server_factory(tmp_path / "home", env={"APPLIANCE_ADMIN_PASSWORD": ""})
    log = server.log()
    match = re.search(r"One-time bootstrap token[^\n]*\n\s*(\S+)", log)
    assert match, log
    token = match.group(1)
    assert httpx.get(server.url + "/api/v1/auth/me", headers=bearer(token), timeout=10).json() == {
        "username": "bootstrap", "role": "admin"}

    out = run_cli(server.home, "users", "add", "admin", "--role", "admin", "--password", ADMIN_PASSWORD,
                  "--json", APPLIANCE_PORT=str(server.port), APPLIANCE_TOKEN=token)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["username"] == "admin"

    refused = httpx.get(server.url + "/api/v1/auth/me", headers=bearer(token), timeout=10)
    assert refused.status_code == 401
    with server.client() as c:  # logs in as admin with ADMIN_PASSWORD
        assert c.me() == {"username": "admin", "role": "admin"}


# -- serve ------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
def test_stop_serve_on_signal_closes_store_and_exits_0(tmp_path: Path, server_factory: Any,
                                                       sig: signal.Signals) -> None:
    server: ServerProcess = server_factory(tmp_path / "home")
    lock = server.home / "appliance.lock"
    assert lock.read_text().strip() == str(server.proc.pid)
    assert server.stop(sig) == 0, server.log()[-3000:]
    assert lock.read_text() == "", "the store was not closed (its lock still names the PID)"
    assert "Traceback" not in server.log()
    assert not (server.home / "appliance.duckdb.wal").exists(), "the store was not checkpointed on close"


def test_stop_serve_on_sigterm_during_startup_exits_0(tmp_path: Path, server_factory: Any) -> None:
    server: ServerProcess = server_factory(tmp_path / "home", wait=False)
    time.sleep(0.3)  # inside Python start-up or build(), before uvicorn listens
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM), server.log()
    assert "Traceback" not in server.log()




def test_train_then_models_verbs_in_local_mode(tmp_path: Path) -> None:
    from appliance.demo import make_customers

    home = tmp_path / "home"
    data = tmp_path / "customers.csv"
    data.write_text(make_customers(300, seed=5).write_csv())
    assert invoke(home, "ingest", str(data), "--dataset", "customers").exit_code == 0
    spec = tmp_path / "job.yaml"
    spec.write_text(SMALL_JOB)
    trained = invoke(home, "train", str(spec), "--json")
    assert trained.exit_code == 0, trained.output
    out = json.loads(trained.stdout)
    assert out["status"] == "succeeded" and out["model_version"] == {"model": "churn", "version": 1}
    listed = invoke(home, "runs", "list", "--status", "succeeded")
    assert listed.exit_code == 0 and "churn" in listed.stdout
    assert json.loads(invoke(home, "models", "list", "--json").stdout)[0]["aliases"] == {
        "champion": 1}
    onnx_path = tmp_path / "m.onnx"
    exported = invoke(home, "models", "export", "churn", "1", "--out", str(onnx_path))
    assert exported.exit_code == 0 and onnx_path.stat().st_size > 100
    promoted = invoke(home, "models", "promote", "churn", "1", "--alias", "challenger",
                      "--reason", "shadow it")
    assert promoted.exit_code == 0, promoted.output
    nothing_before = invoke(home, "models", "rollback", "churn")
    assert nothing_before.exit_code == 2 and "no earlier version" in nothing_before.output


def test_train_a_bad_job_file_exits_2_naming_the_field_and_line(tmp_path: Path) -> None:
    spec = tmp_path / "job.yaml"
    spec.write_text(SMALL_JOB.replace("LogisticRegression", "os.system"))
    result = invoke(tmp_path / "home", "train", str(spec))
    assert result.exit_code == 2
    assert "os.system" in result.output and "line" in result.output


def test_predict_scores_a_file_into_parquet(tmp_path: Path) -> None:
    import polars as pl

    from appliance.demo import make_customers

    home = tmp_path / "home"
    data = tmp_path / "customers.csv"
    data.write_text(make_customers(300, seed=5).write_csv())
    assert invoke(home, "ingest", str(data), "--dataset", "customers").exit_code == 0
    spec = tmp_path / "job.yaml"
    spec.write_text(SMALL_JOB.replace("target: churned", "target: churned\nfeatures: {exclude: [customer_id]}"))
    assert invoke(home, "train", str(spec)).exit_code == 0
    rows = tmp_path / "new.csv"
    rows.write_text(make_customers(7000, seed=6).drop("churned", "customer_id").write_csv())
    out = tmp_path / "scored.parquet"
    result = invoke(home, "predict", "churn@champion", str(rows), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 7000
    scored = pl.read_parquet(out)
    assert scored.height == 7000 and set(scored["prediction"].unique()) <= {0, 1}
    bad = invoke(home, "predict", "churn@v9", str(rows))
    assert bad.exit_code == 2 and "no version 9" in bad.output
    checked = invoke(home, "drift", "churn", "--json")  # the 7,000 logged rows vs the training data
    assert checked.exit_code in (0, 1), checked.output
    report = json.loads(checked.stdout)
    assert report["reference"] == "dataset:customers@1" and "drifted_columns" in report
    from appliance.config import Settings
    from appliance.runtime import build

    app = build(Settings(home=home))
    try:  # every scored row was logged, past the writer's batch size too
        assert app.store.execute("SELECT count(*) FROM predictions") == [(7000,)]
    finally:
        app.close()


def test_predict_csv_sends_text_so_a_numeric_looking_string_feature_stays_a_string(
    tmp_path: Path,
) -> None:
    """Regression: the CLI read CSVs with type guessing, so a branch code `007` reached a
    model whose signature says string as the number 7 and was refused."""
    import polars as pl

    from appliance.demo import make_customers

    home = tmp_path / "home"
    frame = make_customers(300, seed=5)
    frame = frame.with_columns(
        pl.Series("branch", [f"{i % 12:03d}" for i in range(frame.height)]))
    data = tmp_path / "customers.parquet"
    frame.write_parquet(data)  # Parquet keeps `branch` a String column
    assert invoke(home, "ingest", str(data), "--dataset", "customers").exit_code == 0
    spec = tmp_path / "job.yaml"
    spec.write_text(SMALL_JOB.replace("target: churned", "target: churned\nfeatures: {exclude: [customer_id]}"))
    assert invoke(home, "train", str(spec)).exit_code == 0
    rows = tmp_path / "new.csv"
    rows.write_text(frame.head(20).drop("churned", "customer_id").write_csv())
    assert "\n007," in rows.read_text() or ",007," in rows.read_text() or ",007\n" in rows.read_text()
    out = tmp_path / "scored.parquet"
    result = invoke(home, "predict", "churn", str(rows), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    scored = pl.read_parquet(out)
    assert scored.height == 20 and scored["branch"].to_list()[:2] == ["000", "001"]


def test_jobs_verbs_in_local_mode_list_pause_run_and_resume(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "jobs").mkdir(parents=True)
    (home / "jobs" / "broken.yaml").write_text("name: x\nschedule: {train: {every: soon}}\n")
    listed = invoke(home, "jobs", "list")
    assert listed.exit_code == 0, listed.output
    assert "housekeeping.checkpoint" in listed.stdout and "inbox.scan" in listed.stdout
    assert "invalid job file" in listed.stderr and "broken.yaml" in listed.stderr

    paused = invoke(home, "jobs", "pause", "housekeeping.checkpoint", "--json")
    assert paused.exit_code == 0 and json.loads(paused.stdout)["paused"] is True
    jobs = json.loads(invoke(home, "jobs", "list", "--json").stdout)["items"]
    assert next(j for j in jobs if j["id"] == "housekeeping.checkpoint")["paused"] is True
    ran = invoke(home, "jobs", "run", "housekeeping.checkpoint", "--json")
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["status"] == "succeeded"
    history = json.loads(invoke(home, "jobs", "runs", "housekeeping.checkpoint", "--json").stdout)
    assert history["total"] == 1 and history["items"][0]["trigger"] == "manual"
    resumed = invoke(home, "jobs", "resume", "housekeeping.checkpoint", "--json")
    assert json.loads(resumed.stdout)["paused"] is False


@pytest.mark.parametrize("args", [("jobs", "run", "train.nothing"), ("jobs", "pause", "../x"),
                                  ("jobs", "runs", "inbox.scan", "--status", "asleep")])
def test_jobs_verbs_refuse_bad_input_with_one_line_error(tmp_path: Path,
                                                         args: tuple[str, ...]) -> None:
    result = invoke(tmp_path / "home", *args)
    assert result.exit_code == 2
    assert_one_line_error(result.stderr, mentions="job")
