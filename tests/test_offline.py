"""Nothing calls out, and nothing writes outside the home and /tmp.

`appliance up --demo` with the container's environment (the Dockerfile's ENV,
APPLIANCE_HOST=0.0.0.0 included), driven through the tour's main steps (log
in, list datasets, drop a file, train, predict, a CLI command), inside a
network namespace with loopback only, with the installed venv, the Python
install, the checkout and HOME read-only. See tests/support/airgap.py for
the two watchers (strace on every process; an audit hook in every Python
process) and why both.

Slow (a minute or more: `up` starts two servers, the demo trains its churn
model): run with `./scripts/test -m slow tests/test_offline.py`.
"""

from __future__ import annotations

import errno
import sys
from pathlib import Path

import pytest
from airgap import PROBE, REPO, refusal, run_tour

pytestmark = pytest.mark.slow


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
    for needle in ("appliance serve", "streamlit run", "appliance.ingest.worker", "appliance.train.worker",
                   "datasets list"):
        assert any(needle in argv for argv in started), (needle, started)
