"""The README tour's contract steps (4 and 5), walked against a real ``appliance serve``.

The files and the contract edit are read out of README.md itself, so the test
fails when the README promises something the appliance does not do.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from appliance.demo import make_customers

README = Path(__file__).resolve().parents[2] / "README.md"
HEREDOC = re.compile(
    r"cat > data/inbox/customers/\.(?P<name>[\w-]+\.csv)\.part <<'EOF'\n(?P<body>.*?)\n\s*EOF\n", re.S)


def readme_files() -> dict[str, bytes]:
    files = {}
    for m in HEREDOC.finditer(README.read_text()):
        files[m["name"]] = "".join(line.strip() + "\n" for line in m["body"].splitlines()).encode()
    return files


def readme_sed() -> str:
    (line,) = [ln.strip() for ln in README.read_text().splitlines() if ln.strip().startswith("sed -i ")]
    return line


def cli(home: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("APPLIANCE_")}
    return subprocess.run([sys.executable, "-m", "appliance", *args], capture_output=True, text=True,
                          env={**clean, "APPLIANCE_HOME": str(home), **env}, timeout=120, check=False)


def test_readme_tour_contract_steps_happen_as_written(tmp_path: Path, live_server: Any) -> None:
    """Uses the session's server: no other test may create its dataset ``customers``."""
    files = readme_files()
    assert sorted(files) == ["broken.csv", "odd.csv"]
    server = live_server
    # step 1 and 2: the demo's first batch infers contract v1, then the sample is dropped by hand
    first = make_customers(1000, seed=1, start_id=10_000).write_csv().encode()
    assert server.drop("customers", "customers-initial.csv", first)["outcome"] == "accepted"
    sample = server.drop("customers", "customers.csv", make_customers(1000, seed=7).write_csv().encode())
    assert sample["outcome"] == "accepted" and sample["message"] == "accepted"

    # step 4: the flooded file is rejected with a reason file naming plan ...
    broken = server.drop("customers", "broken.csv", files["broken.csv"])
    assert broken["outcome"] == "rejected"
    reason = json.loads((server.home / "quarantine" / "customers" / "broken.csv.reason.json").read_text())
    assert reason["reason"] == "contract_failed"
    assert ("plan: 2 of 2 values not in contract v1's categories ('platinum'); flooded by unseen values"
            in reason["message"])
    assert reason["detail"]["report"]["failures"][0]["column"] == "plan"
    # ... and the odd one is accepted with one warning about age
    assert server.drop("customers", "odd.csv", files["odd.csv"])["outcome"] == "accepted"
    with server.client() as c:
        (odd,) = [v for v in c.versions("customers") if v["source_file"] == "odd.csv"]
        token = c.token
    assert odd["status"] == "accepted" and odd["warnings"] == 1
    assert odd["report_headline"].startswith(
        "passed with 1 warning: age: 1 of 2 values outside the expected range [0, ")
    assert odd["report_headline"].endswith("(-3)")

    # step 5: the README's edit adds platinum to the domain; re-validation accepts the version
    assert token
    env = {"APPLIANCE_PORT": str(server.port), "APPLIANCE_TOKEN": token}
    shown = cli(server.home, env, "datasets", "contract", "customers")
    assert shown.returncode == 0, shown.stderr
    contract = tmp_path / "customers.yaml"
    contract.write_text(shown.stdout)
    subprocess.run(["sh", "-c", readme_sed()], cwd=tmp_path, check=True)
    assert "domain: [basic, platinum, plus, pro]" in contract.read_text()
    stored = cli(server.home, env, "datasets", "contract", "customers", "--set", str(contract))
    assert stored.returncode == 0, stored.stderr
    with server.client() as c:
        again = c.revalidate("customers", reason["detail"]["version"])
    assert again["status"] == "accepted" and again["contract_version"] == 2
