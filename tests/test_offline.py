"""Nothing calls out, and nothing writes outside the home and /tmp.

`appliance up --demo` with the container's environment (the Dockerfile's ENV,
APPLIANCE_HOST=0.0.0.0 included), driven through the tour's main steps (log
in, list datasets, drop a file, train, predict, a CLI command), inside a
network namespace with loopback only, with the installed venv, the Python
install, the checkout and HOME read-only. See tests/support/airgap.py for
the two watchers (strace on every process; an audit hook in every Python
process) and why both.

The tour is slow (15-30 s: `up` starts two servers and the demo trains its
churn model): run it with `./scripts/test -m slow tests/test_offline.py`. The
settings that keep the libraries from calling out are checked fast, below it.
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import pytest
from airgap import PROBE, REPO, refusal, run_tour
from appliance_test_support import make_settings


@pytest.mark.slow
def test_up_demo_tour_and_training_make_no_connection_off_the_host(tmp_path: Path) -> None:
    reason = refusal()
    if reason:
        pytest.skip(reason)
    venv = Path(sys.prefix)
    run = run_tour(appliance=venv / "bin" / "appliance", python=Path(sys.executable), work=tmp_path,
                   read_only=[venv, Path(sys.base_prefix), REPO])
    result = run.result
    assert run.returncode == 0 and result.get("error") is None, (result.get("error"), run.output,
                                                                 result.get("up_log_tail"))
    assert result["up_exit"] == 0
    assert list(result["steps"]) == ["api_healthy", "console_healthy", "login", "list_datasets",
                                     "drop_file", "train", "predict", "cli"]

    # The positive control: the probe was unreachable, and both watchers saw it.
    assert result["probe_errno"] in (errno.ENETUNREACH, errno.EHOSTUNREACH)
    assert [a for a, _ in run.connects if a == PROBE], "strace did not see the probe connect"
    assert [e for e in run.net_events() if e["target"][0] == PROBE], "the audit hook missed the probe"

    # Nothing else, from any process, native or Python.
    assert [c for c in run.connects if c[0] != PROBE] == []
    assert [e for e in run.net_events() if e["target"][0] != PROBE] == []
    assert run.writes() == []

    # The hook ran in every kind of process the tour starts.
    started = run.started()
    for needle in ("appliance serve", "streamlit run", "appliance.ingest.worker", "appliance.train.child.worker",
                   "datasets list"):
        assert any(needle in argv for argv in started), (needle, started)


def test_console_turns_off_streamlits_telemetry_and_external_ip_lookup(tmp_path: Path) -> None:
    from appliance.supervisor import console_command

    cmd, env = console_command(make_settings(tmp_path / "home", host="0.0.0.0"))
    assert cmd[cmd.index("--browser.gatherUsageStats") + 1] == "false"
    assert cmd[cmd.index("--server.headless") + 1] == "true"
    assert env["STREAMLIT_BROWSER_GATHER_USAGE_STATS"] == "false"
    # bound to 0.0.0.0, the banner would GET checkip.amazonaws.com for an "External URL"
    assert env["STREAMLIT_LOGGER_HIDE_WELCOME_MESSAGE"] == "true"


def test_store_never_downloads_a_duckdb_extension(tmp_path: Path) -> None:
    from appliance.store.db import Store

    settings = make_settings(tmp_path / "home")
    with Store(settings.db_path, lock_path=settings.lock_path) as store:
        rows = store.execute("SELECT value FROM duckdb_settings() WHERE name = 'autoinstall_known_extensions'")
    assert rows == [("false",)]
