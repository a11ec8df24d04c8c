"""Write a small store with a released appliance, for tests/test_upgrade.py.

Run by scripts/make-upgrade-fixture with the *old* release's interpreter, so
this file imports nothing from the appliance or the test helpers: it starts
that release's ``appliance serve`` and speaks the REST API (``/api/v1``, the
stable contract) with httpx. The workload: dataset ``customers`` with two
versions, model ``churn`` with two versions (an XGBoost champion, a logistic
regression as challenger), predictions with request ids and delayed labels
for some, a drift report, a user with an API token; then a clean stop
(SIGTERM). What the API answered is written to ``expected.json`` beside the
packed home, and the upgrade test checks the upgraded store against it.

    python upgrade_workload.py --home HOME --out tests/fixtures/stores/<version>
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "upgrade-fixture-admin"
JOB = """
name: churn
dataset: customers
target: churned
features: {exclude: [customer_id]}
model: {kind: %s, params: %s}
split: {test_size: 0.25, seed: 7}
metric: roc_auc
promote: {alias: champion, min_delta: 0.0, require_approval: false}
"""
COLUMNS = ["customer_id", "age", "tenure_months", "monthly_charges", "plan", "region", "churned"]


def customers(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    rows = []
    for i in range(n):
        tenure = rnd.randint(0, 72)
        plan = rnd.choice(["basic", "plus", "pro"])
        rows.append({
            "customer_id": seed * 100000 + i, "age": rnd.randint(18, 80), "tenure_months": tenure,
            "monthly_charges": round(rnd.uniform(10, 120), 2), "plan": plan,
            "region": rnd.choice(["north", "south", "east", "west"]),
            "churned": int(rnd.random() < (0.6 if tenure < 12 and plan == "basic" else 0.15)),
        })
    return rows


def csv(rows: list[dict[str, Any]]) -> bytes:
    lines = [",".join(COLUMNS)] + [",".join(str(r[c]) for c in COLUMNS) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Any, what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = check()
        if out:
            return out
        time.sleep(0.2)
    raise SystemExit(f"upgrade_workload: timed out waiting for {what}")


def ok(resp: httpx.Response) -> Any:
    if resp.status_code >= 400:
        raise SystemExit(f"upgrade_workload: {resp.request.method} {resp.request.url} -> "
                         f"{resp.status_code} {resp.text[:500]}")
    return resp.json()


def train(c: httpx.Client, kind: str, params: str) -> dict[str, Any]:
    run = ok(c.post("/api/v1/runs", json={"job": JOB % (kind, params)}))

    def done() -> Any:
        r = ok(c.get(f"/api/v1/runs/{run['id']}"))
        return r if r["status"] in ("succeeded", "failed", "interrupted") else None

    run = wait_until(done, f"training run {run['id']}", timeout=300)
    if run["status"] != "succeeded":
        raise SystemExit(f"upgrade_workload: training failed: {run.get('error')}")
    return dict(run)


def workload(c: httpx.Client) -> None:
    first = customers(300, 1)
    # Version 2: the same rows in another order (new bytes), so it passes the contract
    # inferred from version 1 (observed ranges and categories) and is accepted too.
    for number, rows in ((1, first), (2, first[::-1])):
        ok(c.post("/api/v1/datasets/customers/files", params={"filename": f"customers-{number}.csv"},
                  content=csv(rows),
                  headers={"Content-Type": "application/octet-stream"}))
        wait_until(lambda n=number: ok(c.get(f"/api/v1/datasets/customers/versions/{n}"))[
            "summary_status"] == "ready", f"summary of version {number}")
    train(c, "xgboost.XGBClassifier", "{n_estimators: 20, max_depth: 3}")
    train(c, "LogisticRegression", "{C: 0.5}")
    if ok(c.get("/api/v1/models/churn/aliases")).get("champion") != 1:
        ok(c.put("/api/v1/models/churn/aliases/champion",
                 json={"version": 1, "reason": "fixture: the XGBoost model serves", "force": True}))
    ok(c.put("/api/v1/models/churn/aliases/challenger", json={"version": 2, "reason": "fixture"}))
    rows = customers(30, 3)
    records = [{"request_id": f"fixture-{i}",
                **{k: v for k, v in r.items() if k not in ("customer_id", "churned")}}
               for i, r in enumerate(rows)]
    ok(c.post("/api/v1/models/churn/predict", params={"alias": "champion"}, json=records))
    time.sleep(1.5)  # the prediction log appends in batches
    labels = [{"request_id": f"fixture-{i}", "label": r["churned"]} for i, r in enumerate(rows[:20])]
    ok(c.post("/api/v1/models/churn/feedback", json=labels))
    ok(c.post("/api/v1/monitor/churn/drift", json={"dataset_version": 2}))
    ok(c.post("/api/v1/users", json={"username": "analyst", "password": "analyst-password-1",
                                     "role": "viewer"}))
    ok(c.post("/api/v1/tokens", json={"username": "analyst", "name": "dashboards"}))


def expected(c: httpx.Client) -> dict[str, Any]:
    """What the API says about the store, as the upgrade test compares it."""
    datasets = {}
    for d in ok(c.get("/api/v1/datasets")):
        versions = ok(c.get(f"/api/v1/datasets/{d['name']}/versions"))
        datasets[d["name"]] = {
            "contract_version": d["contract_version"],
            "versions": sorted(({k: v[k] for k in ("number", "status", "sha256", "rows")}
                                for v in versions), key=lambda v: v["number"]),
        }
    runs = ok(c.get("/api/v1/runs", params={"kind": "train", "limit": 100}))["items"]
    models = {}
    for m in ok(c.get("/api/v1/models")):
        name = m["name"]
        versions = ok(c.get(f"/api/v1/models/{name}/versions"))
        history = ok(c.get(f"/api/v1/models/{name}/aliases/champion/history"))
        models[name] = {
            "aliases": m["aliases"],
            "versions": sorted(({k: v[k] for k in ("number", "status", "run_id", "onnx_sha256")}
                                for v in versions), key=lambda v: v["number"]),
            "champion_history": [{k: e[k] for k in ("alias", "version", "previous_version", "action")}
                                 for e in history],
        }
    performance = ok(c.get("/api/v1/models/churn/performance", params={"hours": 24 * 365}))["versions"]
    audit = ok(c.get("/api/v1/audit/verify"))
    counts = ok(c.post("/api/v1/backups"))["counts"]  # row counts per table; the backup is not packed
    return {
        "datasets": datasets,
        "runs": sorted(({k: r[k] for k in ("id", "name", "status", "dataset", "dataset_version", "metrics")}
                        for r in runs), key=lambda r: r["id"]),
        "models": models,
        "predictions": [{k: p[k] for k in ("version", "predictions", "labelled")} for p in performance
                        if p["predictions"]],
        "drift_reports": len(ok(c.get("/api/v1/monitor/churn/drift"))),
        "users": sorted(u["username"] for u in ok(c.get("/api/v1/users"))),
        "audit": {"ok": audit["ok"], "events": audit["events"]},
        "counts": counts,
    }


def pack(home: Path, archive: Path) -> None:
    """tar.gz of the home, without logs/, backups/ and the lock file (small, nothing of this host)."""
    skip = {"logs", "backups", "appliance.lock"}

    def keep(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        top = Path(info.name).parts[1:2]
        if top and top[0] in skip:
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        info.mtime = 0
        return info

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tar:
        tar.add(home, arcname="home", filter=keep)
    archive.write_bytes(buf.getvalue())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    port = free_port()
    env = {**os.environ, "APPLIANCE_HOME": str(args.home), "APPLIANCE_PORT": str(port),
           "APPLIANCE_ADMIN_PASSWORD": PASSWORD, "APPLIANCE_INBOX_POLL_SECONDS": "0.2",
           "APPLIANCE_LOG_LEVEL": "warning"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.Popen([sys.executable, "-m", "appliance", "serve"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        def healthy() -> Any:
            if proc.poll() is not None:
                raise SystemExit(f"upgrade_workload: serve exited with {proc.returncode}")
            try:
                return httpx.get(url + "/healthz", timeout=1).json()
            except httpx.HTTPError:
                return None

        health = wait_until(healthy, "serve to start")
        with httpx.Client(base_url=url, timeout=120) as c:
            token = ok(c.post("/api/v1/auth/token", json={"username": "admin", "password": PASSWORD}))
            c.headers["Authorization"] = f"Bearer {token['access_token']}"
            workload(c)
            facts = expected(c)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    if code != 0:
        raise SystemExit(f"upgrade_workload: serve stopped with {code}")
    facts = {"appliance_version": health["version"], "admin_password": PASSWORD, **facts}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "expected.json").write_text(json.dumps(facts, indent=2, sort_keys=True) + "\n")
    pack(args.home, args.out / "home.tar.gz")
    print(f"upgrade_workload: wrote {args.out} ({(args.out / 'home.tar.gz').stat().st_size} bytes packed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
