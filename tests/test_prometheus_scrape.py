"""The shipped scrape config against a real Prometheus (Debian's ``prometheus`` package) and a
real ``appliance serve``: Prometheus authenticates with a viewer's API token from a file,
scrapes the appliance's series and loads the shipped alert rules."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from appliance_test_support import free_port, tiny_onnx

PROMETHEUS = Path("/usr/bin/prometheus")
OPS = Path(__file__).resolve().parents[1] / "docs" / "operations"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PROMETHEUS.exists(), reason="/usr/bin/prometheus is missing "
                       "(Debian: apt-get install --no-install-recommends prometheus)"),
]


def viewer_token(url: str, admin_token: str) -> str:
    """A viewer user for the scraper and an API token for it, as the docs say."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
        made = api.post("/api/v1/users", json={"username": "prometheus", "role": "viewer",
                                                "password": "a-long-scraper-password"})
        assert made.status_code == 201, made.text
        token = api.post("/api/v1/tokens", json={"username": "prometheus", "name": "scraper"})
        assert token.status_code == 201, token.text
        return str(token.json()["token"])


def traffic(url: str, admin_token: str) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as api:
        up = api.post("/api/v1/models/tiny/versions", content=tiny_onnx(),
                      headers={"Content-Type": "application/octet-stream"})
        assert up.status_code == 201, up.text
        for x in range(5):
            assert api.post("/api/v1/models/tiny/predict", params={"version": 1},
                            json=[{"x": float(x)}]).status_code == 200


def site_config(folder: Path, target: str, token: str) -> Path:
    """The shipped prometheus.yml as a site would install it, pointed at ``target``; plus a
    second job without the token, which must read as down."""
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    (job,) = config["scrape_configs"]
    (folder / "appliance.token").write_text(token + "\n")
    job["authorization"]["credentials_file"] = str(folder / "appliance.token")
    job["static_configs"][0]["targets"] = [target]
    anonymous = {k: v for k, v in job.items() if k != "authorization"}
    config["scrape_configs"].append({**anonymous, "job_name": "anonymous"})
    shutil.copy(OPS / "alerts.rules.yml", folder / "alerts.rules.yml")
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[Path], str]]:
    procs: list[subprocess.Popen[bytes]] = []

    def start(config: Path) -> str:
        port = free_port()
        log = (tmp_path / "prometheus.log").open("wb")
        procs.append(subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert procs[-1].poll() is None, (tmp_path / "prometheus.log").read_text()
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError((tmp_path / "prometheus.log").read_text())

    yield start
    for p in procs:
        p.terminate()
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def query(url: str, promql: str) -> dict[str, float]:
    """An instant query: the value of each series, keyed by its job label."""
    body = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=10).json()
    assert body["status"] == "success", body
    return {r["metric"].get("job", ""): float(r["value"][1]) for r in body["data"]["result"]}


def until(url: str, promql: str, ok: Callable[[dict[str, float]], bool]) -> dict[str, float]:
    deadline = time.monotonic() + 60
    while not ok(found := query(url, promql)):
        assert time.monotonic() < deadline, (promql, found)
        time.sleep(0.5)
    return found


def test_real_prometheus_scrapes_the_appliance_with_the_shipped_config(
        server_factory: Any, prometheus: Callable[[Path], str], tmp_path: Path) -> None:
    server = server_factory()
    with server.client() as c:
        admin = c.token
    assert admin is not None
    traffic(server.url, admin)
    prom = prometheus(site_config(tmp_path, f"127.0.0.1:{server.port}",
                                  viewer_token(server.url, admin)))

    up = until(prom, "up", lambda r: set(r) == {"appliance", "anonymous"})
    assert up == {"appliance": 1.0, "anonymous": 0.0}  # the token is what lets it in
    targets = httpx.get(f"{prom}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
    errors = {t["labels"]["job"]: t["lastError"] for t in targets}
    assert errors["appliance"] == "" and "401" in errors["anonymous"], errors
    predicted = until(prom, 'sum by (job) (appliance_predict_requests_total{model="tiny"})',
                      lambda r: bool(r))
    assert predicted == {"appliance": 5.0}
    assert query(prom, 'appliance_build_info{job="appliance"}') == {"appliance": 1.0}
    quantile = query(prom, "histogram_quantile(0.5, sum by (job, le) "
                           "(appliance_predict_seconds_bucket))")
    assert 0 < quantile["appliance"] < 1

    # every query of the shipped dashboard is PromQL this Prometheus evaluates
    dashboard = json.loads((OPS / "grafana-dashboard.json").read_text())
    grafana = {"$instance": ".*", "$model": ".*", "$__rate_interval": "1m", "$__range": "5m"}
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for expr in exprs:
        for var, value in grafana.items():
            expr = expr.replace(var, value)
        query(prom, expr)
    assert query(prom, exprs[0].replace("$instance", ".*")) == {"appliance": 1.0}  # up

    rules = httpx.get(f"{prom}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {r["name"]: r["health"] for g in rules for r in g["rules"]}
    assert len(loaded) == 8 and set(loaded.values()) <= {"ok", "unknown"}, loaded
    assert "ApplianceIngestRefusals" in loaded
