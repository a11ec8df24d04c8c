"""/metrics and what ships for Prometheus and Grafana (docs/operations/): every metric the docs
name is exported with its type and labels, every exported one is documented, and every metric
the dashboard and the alert rules query is both."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from appliance_test_support import logged_in, make_settings, tiny_onnx
from outlier_model import customers, out_of_range, register_churn

REPO = Path(__file__).resolve().parents[1]
OPS = REPO / "docs" / "operations"
OCTET = {"Content-Type": "application/octet-stream"}
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
_ROW = re.compile(r"^\| `([a-z_:]+)` \| (counter|gauge|histogram) \|([^|]*)\|")


@dataclass(frozen=True)
class Documented:
    name: str           # as queried: counters with _total
    type: str
    labels: frozenset[str]

    @property
    def family(self) -> str:  # as prometheus_client's parser names it
        return self.name.removesuffix("_total") if self.type == "counter" else self.name

    def queried(self) -> set[str]:
        """The names PromQL may use for it."""
        if self.type == "histogram":
            return {f"{self.name}_{s}" for s in ("bucket", "sum", "count")}
        return {self.name}


def documented() -> dict[str, Documented]:
    out = {}
    for line in (OPS / "metrics.md").read_text().splitlines():
        if m := _ROW.match(line):
            labels = frozenset(re.findall(r"`([a-z_]+)`", m.group(3)))
            out[m.group(1)] = Documented(m.group(1), m.group(2), labels)
    return out


def scrape(client: Any) -> dict[str, Any]:
    from prometheus_client.parser import text_string_to_metric_families

    resp = client.get("/metrics")
    assert resp.status_code == 200, resp.text
    return {f.name: f for f in text_string_to_metric_families(resp.text)}


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """/metrics of a real appliance after a little of everything: an upload accepted and one
    refused, a classifier registered and moved to champion, predictions with labels, a job."""
    from fastapi.testclient import TestClient
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from appliance.api.app import create_app
    from appliance.domain import events as ev
    from appliance.domain.principal import SYSTEM
    from appliance.runtime import build

    X, y = load_iris(return_X_y=True)
    iris = convert_sklearn(LogisticRegression(max_iter=500).fit(X, y),
                           initial_types=[("input", FloatTensorType([None, 4]))],
                           target_opset=17).SerializeToString()
    app = build(make_settings(tmp_path_factory.mktemp("metrics") / "home"))
    try:
        with TestClient(create_app(app)) as api:
            logged_in(api)
            csv = b"a,b\n1,x\n2,y\n3,z\n"
            for name in ("one.csv", "again.csv"):  # the second is a duplicate: refused
                assert api.post("/api/v1/datasets/people/files", params={"filename": name},
                                content=csv, headers=OCTET).status_code == 201
            assert api.post("/api/v1/models/iris/versions", content=iris, headers=OCTET,
                            params={"features": ",".join(FEATURES)}).status_code == 201
            assert api.post("/api/v1/models/tiny/versions", content=tiny_onnx(),
                            headers=OCTET).status_code == 201
            moved = api.put("/api/v1/models/iris/aliases/champion",
                            json={"version": 1, "reason": "metrics test", "force": True})
            assert moved.status_code == 200, moved.text
            rows = [{**dict(zip(FEATURES, map(float, x), strict=True)), "request_id": f"r{i}"}
                    for i, x in enumerate(X[::15])]
            out = api.post("/api/v1/models/iris/predict", json=rows).json()
            assert api.post("/api/v1/models/tiny/predict", params={"version": 1},
                            json=[{"x": 1.0}]).status_code == 200
            labels = [{"request_id": r, "label": p}
                      for r, p in zip(out["request_ids"][:5], out["predictions"], strict=False)]
            assert api.post("/api/v1/models/iris/feedback", json=labels).status_code == 200
            assert api.get("/api/v1/models/iris/performance").status_code == 200
            assert api.post("/api/v1/models/ghost/predict", json=rows[:1]).status_code == 404
            register_churn(app.registry)   # a version with an outlier detector
            assert api.post("/api/v1/models/churny/predict",
                            json=[out_of_range(r) for r in customers(2)]).status_code == 200
            app.serving.log.flush()   # outliers are scored and counted as the log is written
            assert app.jobs.run_here("housekeeping.checkpoint", by=SYSTEM).status == "succeeded"
            # Drift and live metrics need a model trained here (tests/monitor, tests/jobs run
            # those for real); their events are what the service publishes.
            app.events.publish(ev.DriftChecked("iris", 1, "rep", "people@1", False,
                                               {"sepal_length": 0.4},
                                               distances={"petal_width": 0.02},
                                               multivariate_auc=0.51))
            app.events.publish(ev.LiveMetricChecked("iris", 1, "accuracy", 0.9, 0.8,
                                                    higher_is_better=True))
            yield scrape(api)
    finally:
        app.close()


def test_docs_table_every_metric_with_a_type_and_labels() -> None:
    docs = documented()
    assert len(docs) >= 25, sorted(docs)
    for d in docs.values():
        assert d.type != "counter" or d.name.endswith("_total"), d
        assert d.type != "histogram" or d.name.endswith("_seconds"), d
        assert not d.labels & {"job", "instance", "le"}, d  # Prometheus's own labels


def test_scrape_exports_every_documented_metric_with_its_type_and_labels(
        families: dict[str, Any]) -> None:
    for d in documented().values():
        family = families.get(d.family)
        assert family is not None, f"{d.name} is documented but not exported"
        assert family.type == d.type, d
        seen = {k for s in family.samples for k in s.labels if k != "le"}
        assert seen == d.labels, (d.name, seen)


def test_scrape_exports_nothing_undocumented(families: dict[str, Any]) -> None:
    known = {d.family for d in documented().values()}
    created = {f"{name}_created" for name in known}  # prometheus_client's series start times
    assert set(families) - known - created == set()


def test_scrape_counts_what_the_traffic_did(families: dict[str, Any]) -> None:
    def value(family: str, **labels: str) -> float:
        return sum(s.value for s in families[family].samples
                   if s.name.endswith(("_total", "_count")) or s.name == family
                   if labels.items() <= s.labels.items())

    assert value("appliance_predict_requests", model="iris", version="1") == 1
    assert value("appliance_predict_rows", model="iris") == 10
    assert value("appliance_predictions", model="iris") == 10
    assert value("appliance_prediction_outlier_checks", model="churny", version="1") == 2
    assert value("appliance_prediction_outliers", model="churny", version="1") == 2
    assert value("appliance_ingest_files", outcome="accepted") == 1
    assert value("appliance_ingest_refusals", dataset="people", reason="duplicate") == 1
    assert value("appliance_alias_moves", model="iris", alias="champion") == 1
    assert value("appliance_job_runs", name="housekeeping.checkpoint", status="succeeded") == 1
    assert value("appliance_label_coverage", model="iris", version="1") == pytest.approx(0.5)
    # the route label is the template, never the raw path (bounded cardinality)
    routes = {s.labels["route"] for s in families["appliance_http_request_duration_seconds"].samples}
    assert "/api/v1/models/{name}/predict" in routes and not any("iris" in r for r in routes)


def _dashboard() -> dict[str, Any]:
    return dict(json.loads((OPS / "grafana-dashboard.json").read_text()))


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((OPS / "alerts.rules.yml").read_text())["groups"]
    return [r for g in groups for r in g["rules"]]


def _expressions() -> list[str]:
    dash = _dashboard()
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs + [r["expr"] for r in _rules()]


def test_dashboard_and_rules_query_only_documented_exported_metrics(
        families: dict[str, Any]) -> None:
    docs = documented()
    queryable = {q: d for d in docs.values() for q in d.queried()}
    used = {name for e in _expressions()
            for name in re.findall(r"\b((?:appliance|process)_[a-z0-9_]+)", e)}
    assert len(used) >= 20, sorted(used)
    assert used - set(queryable) == set(), "queried but not documented"
    assert {queryable[u].family for u in used} <= set(families)
    # what the issue asks the dashboard to show
    for needed in ("appliance_predict_requests_total", "appliance_predict_seconds_bucket",
                   "appliance_drift_p_value", "appliance_label_coverage",
                   "appliance_ingest_files_total", "appliance_job_seconds_bucket"):
        assert needed in used, needed


def test_dashboard_is_a_grafana_dashboard_templated_by_data_source_and_model() -> None:
    dash = _dashboard()
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["type"] == "query" and variables["model"]["includeAll"]
    panels = dash["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    graphs = [p for p in panels if p["type"] != "row"]
    assert len(graphs) >= 15
    for p in graphs:
        grid = p["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, p["title"]
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert len(set(refs)) == len(refs), p["title"]
        for t in p["targets"]:
            used = set(re.findall(r"\$(\w+)", t["expr"])) - {"__rate_interval", "__range"}
            assert used <= set(variables), (p["title"], used)
    models = [p for p in graphs if any('model=~"$model"' in t["expr"] for t in p["targets"])]
    assert len(models) >= 8
    # no two panels overlap
    cells = [(x, y) for p in panels for x in range(p["gridPos"]["x"], p["gridPos"]["x"]
             + p["gridPos"]["w"]) for y in range(p["gridPos"]["y"], p["gridPos"]["y"]
             + p["gridPos"]["h"])]
    assert len(cells) == len(set(cells))


def test_scrape_config_reads_the_token_from_a_file() -> None:
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "appliance" and job["metrics_path"] == "/metrics"
    assert job["authorization"]["credentials_file"].startswith("/")
    assert "credentials" not in job["authorization"]  # never the token itself
    assert config["rule_files"] == ["alerts.rules.yml"]


PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed "
                                    "(Debian: apt-get install prometheus)")

# promtool's rule unit tests: a first refusal fires at once (increase() alone would miss it),
# a duplicate never; a 5xx share over 1% fires after 5 minutes; a failing job fires; an
# outlier share over 5% fires after 15 minutes, never on a calm or a quiet model.
RULE_TESTS = {
    "rule_files": ["alerts.rules.yml"],
    "evaluation_interval": "1m",
    "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": 'appliance_ingest_refusals_total{instance="a",dataset="people",'
                       'reason="malformed"}', "values": "_x10 1x100"},
            {"series": 'appliance_ingest_refusals_total{instance="a",dataset="people",'
                       'reason="duplicate"}', "values": "_x10 1+1x100"},
            {"series": 'appliance_http_request_duration_seconds_count{instance="a",'
                       'route="/x",status="200"}', "values": "0+90x30"},
            {"series": 'appliance_http_request_duration_seconds_count{instance="a",'
                       'route="/x",status="500"}', "values": "0+10x30"},
            {"series": 'appliance_job_failing{instance="a",name="train.churn",kind="train"}',
             "values": "0 0 1 1 1"},
            # churn: 10% of 100 checked rows a minute are outliers; calm: 1%; quiet: 1 of 2
            # rows an hour (too few to judge)
            {"series": 'appliance_prediction_outlier_checks_total{instance="a",model="churn",'
                       'version="1"}', "values": "0+100x60"},
            {"series": 'appliance_prediction_outliers_total{instance="a",model="churn",'
                       'version="1"}', "values": "0+10x60"},
            {"series": 'appliance_prediction_outlier_checks_total{instance="a",model="calm",'
                       'version="2"}', "values": "0+100x60"},
            {"series": 'appliance_prediction_outliers_total{instance="a",model="calm",'
                       'version="2"}', "values": "0+1x60"},
            {"series": 'appliance_prediction_outlier_checks_total{instance="a",model="quiet",'
                       'version="1"}', "values": "0 0 1 1 2x57"},
            {"series": 'appliance_prediction_outliers_total{instance="a",model="quiet",'
                       'version="1"}', "values": "0 0 0 0 1x57"},
        ],
        "alert_rule_test": [
            {"eval_time": "12m", "alertname": "ApplianceIngestRefusals", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "instance": "a", "dataset": "people",
                               "reason": "malformed"},
                "exp_annotations": {
                    "summary": "people: files refused in the last hour (malformed)",
                    "description": "See quarantine/people/ and the Datasets page."}}]},
            {"eval_time": "100m", "alertname": "ApplianceIngestRefusals", "exp_alerts": []},
            {"eval_time": "3m", "alertname": "ApplianceHighErrorRate", "exp_alerts": []},
            {"eval_time": "20m", "alertname": "ApplianceHighErrorRate", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "instance": "a"},
                "exp_annotations": {"summary": "10% of API requests to a fail with 5xx"}}]},
            {"eval_time": "1m", "alertname": "ApplianceJobFailing", "exp_alerts": []},
            {"eval_time": "3m", "alertname": "ApplianceJobFailing", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "instance": "a", "name": "train.churn",
                               "kind": "train"},
                "exp_annotations": {
                    "summary": "job train.churn (train) failed with no retry left",
                    "description": "It resolves after the next successful run; see "
                                   "`appliance jobs runs train.churn`."}}]},
            {"eval_time": "10m", "alertname": "ApplianceOutlierShareHigh", "exp_alerts": []},
            {"eval_time": "30m", "alertname": "ApplianceOutlierShareHigh", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "instance": "a", "model": "churn"},
                "exp_annotations": {
                    "summary": "10% of churn's inputs are outliers",
                    "description": "Its detector expects about its contamination (see the "
                                   "model version's outliers); examples: `appliance outliers "
                                   "churn` or the console's Monitoring page."}}]},
        ],
    }],
}


def promtool(*args: str, cwd: Path) -> None:
    assert PROMTOOL is not None
    done = subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_promtool
def test_promtool_checks_the_rules_and_the_scrape_config(tmp_path: Path) -> None:
    promtool("check", "rules", str(OPS / "alerts.rules.yml"), cwd=tmp_path)
    # the config as a site installs it: the token file must exist for promtool
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    (tmp_path / "token").write_text("a-token\n")
    config["scrape_configs"][0]["authorization"]["credentials_file"] = str(tmp_path / "token")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(OPS / "alerts.rules.yml", tmp_path / "alerts.rules.yml")
    promtool("check", "config", "prometheus.yml", cwd=tmp_path)


@needs_promtool
def test_promtool_unit_tests_fire_the_alert_rules(tmp_path: Path) -> None:
    shutil.copy(OPS / "alerts.rules.yml", tmp_path / "alerts.rules.yml")
    (tmp_path / "rules_test.yml").write_text(yaml.safe_dump(RULE_TESTS))
    promtool("test", "rules", "rules_test.yml", cwd=tmp_path)
