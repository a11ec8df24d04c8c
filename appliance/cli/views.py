"""What the training, registry and jobs verbs draw for people (``--json`` prints the answer).

Each function takes the API's answer, unchanged, and returns rich renderables
for :func:`appliance.cli.output.show`.
"""

from __future__ import annotations

from typing import Any

from appliance.cli.output import cell, mapping, record, rows, text

RUN_FIELDS = ("id", "name", "kind", "status", "experiment", "dataset", "dataset_version",
              "seed", "created_by", "created_at", "started_at", "ended_at", "duration_s",
              "parent_id", "error")
VERSION_COLUMNS = ("number", "status", "aliases", "parity", "warnings", "dataset_version",
                   "created_at")
JOB_RUN_COLUMNS = ("id", "trigger", "status", "attempt", "started_at", "duration", "error")


def _metrics(values: dict[str, Any], limit: int = 4) -> str:
    return ", ".join(f"{k}={cell(v)}" for k, v in sorted(values.items())[:limit])


def _warnings(warnings: list[str], where: str) -> list[Any]:
    if not warnings:
        return []
    return [text(f"Training warned {where}:", "yellow")] + [text(f"  - {w}", "yellow")
                                                           for w in warnings]


def train_summary(run: dict[str, Any]) -> list[Any]:
    version = run.get("model_version")
    head = {**{k: run.get(k) for k in ("id", "name", "status", "dataset", "dataset_version")},
            "model_version": f"{version['model']} v{version['version']}" if version else None,
            "error": run.get("error")}
    return [record(head, title=f"run {run.get('name')}: {run.get('status')}"),
            mapping(run.get("metrics") or {}, "metric", "value"),
            *_warnings(run.get("warnings") or [], "in this run")]


def runs_page(page: dict[str, Any]) -> list[Any]:
    items = [{**r, "id": r["id"][:8], "metrics": _metrics(r.get("metrics") or {}),
              "created_at": str(r.get("created_at"))[:19],
              "warnings": len(r.get("warnings") or [])} for r in page["items"]]
    return [rows(items, ["id", "name", "kind", "status", "experiment", "metrics", "warnings",
                         "created_at"], title=f"{len(items)} of {page['total']} runs")]


def run_detail(run: dict[str, Any]) -> list[Any]:
    out = [record(run, title=f"run {run.get('name')}: {run.get('status')}", fields=RUN_FIELDS)]
    version = run.get("model_version")
    if version:
        out.append(text(f"Produced model version {version['model']} v{version['version']}.",
                        "green"))
    out += _warnings(run.get("warnings") or [], "in this run")
    if run.get("params"):
        out.append(mapping(run["params"], "param", "value", title="params"))
    if run.get("metrics"):
        out.append(mapping(run["metrics"], "metric", "value", title="metrics"))
    if run.get("tags"):
        out.append(mapping(run["tags"], "tag", "value", title="tags"))
    if run.get("artifacts"):
        out.append(rows(run["artifacts"], ["name", "size_bytes", "sha256"], title="artifacts"))
    children = run.get("children") or []
    if children:
        out.append(rows([{**c, "metrics": _metrics(c.get("metrics") or {})} for c in children],
                        ["id", "name", "status", "metrics"], title=f"{len(children)} child runs"))
    packages = (run.get("environment") or {}).get("packages") or {}
    if packages:
        out.append(text("environment: " + ", ".join(f"{k} {v}" for k, v in sorted(
            packages.items()) if v), "dim"))
    return out


def models_list(models: list[dict[str, Any]]) -> list[Any]:
    items = [{**m, "aliases": _aliases(m.get("aliases") or {})} for m in models]
    return [rows(items, ["name", "latest_version", "aliases", "created_at"],
                 title=f"{len(items)} models")]


def _aliases(aliases: dict[str, int]) -> str:
    return ", ".join(f"{a} → v{v}" for a, v in sorted(aliases.items()))


def model_detail(model: dict[str, Any]) -> list[Any]:
    versions = model.get("versions") or []
    gated = [str((v.get("gate") or {}).get("metric")) for v in versions]
    names = sorted({str(k) for v in versions for k in (v.get("metrics") or {})})
    metric_names = list(dict.fromkeys([g for g in gated if g in names] + names))[:3]
    items = []
    for v in versions:
        parity = v.get("parity")
        items.append({**v, **{k: (v.get("metrics") or {}).get(k) for k in metric_names},
                      "aliases": ", ".join(v.get("aliases") or []),
                      "parity": "not checked" if not parity else (
                          "passed" if parity.get("passed") else "FAILED"),
                      "warnings": len(v.get("warnings") or []),
                      "created_at": str(v.get("created_at") or "")[:19]})
    columns = list(VERSION_COLUMNS[:4]) + metric_names + list(VERSION_COLUMNS[4:])
    head = text(f"{model['name']}: {_aliases(model.get('aliases') or {}) or 'no aliases'}; "
                f"latest v{model.get('latest_version')}", "bold")
    return [head, rows(items, columns, title=f"{len(items)} versions")]


def alias_move(move: dict[str, Any]) -> list[Any]:
    before = f"v{move['previous_version']}" if move.get("previous_version") else "unset"
    return [text(f"{move['alias']} now points at v{move['version']} (was {before})", "green")]


def predict_result(out: dict[str, Any]) -> list[Any]:
    return [record(out, title="predictions written")]


def outlier_report(report: dict[str, Any]) -> list[Any]:
    share = report.get("share")
    head = record({**{k: report.get(k) for k in ("model", "window_hours", "rows", "checked",
                                                 "outliers")},
                   "share": None if share is None else f"{share:.2%}"},
                  title=f"outliers of {report.get('model')}")
    out = [head, rows(report.get("versions") or [], ("version", "rows", "checked", "outliers",
                                                     "share", "contamination"),
                      title="per version")]
    examples = [{"request_id": e["request_id"], "version": e["version"], "score": e["score"],
                 "inputs": ", ".join(f"{k}={v}" for k, v in e["inputs"].items())[:200]}
                for e in report.get("examples") or []]
    if examples:
        out.append(rows(examples, ("request_id", "version", "score", "inputs"),
                        title="most outlying rows"))
    elif not report.get("checked"):
        out.append(text("No served row was checked: versions trained before outlier detection "
                        "(or with outliers: {enabled: false}) have no detector.", "yellow"))
    return out


def drift_report(report: dict[str, Any]) -> list[Any]:
    """The verdict, then per column the chosen test and why, its score, threshold and
    verdict, then the multivariate detector."""
    verdict = "drift found" if report.get("drift") else "no drift"
    features = report.get("features") or []
    multi = report.get("multivariate") or {}
    head = record({"id": report.get("id"), "drift": report.get("drift"),
                   "drifted_columns": [f["column"] for f in features if f.get("drift")],
                   "prediction_drift": (report.get("prediction") or {}).get("drift"),
                   "multivariate_auc": multi.get("auc"),
                   "multivariate_p_value": multi.get("p_value"),
                   "reference": report.get("reference"), "current": report.get("current")},
                  title=f"drift: {verdict}")
    items = [{"column": f["column"], "test": f["test"], "why": f.get("reason") or "",
              "statistic": f.get("statistic"),
              "p_value/distance": f["p_value"] if f.get("p_value") is not None
              else f.get("distance"),
              "threshold": f.get("threshold"), "verdict": "DRIFT" if f.get("drift") else "ok"}
             for f in features]
    table = rows(items, ["column", "test", "why", "statistic", "p_value/distance", "threshold",
                         "verdict"], title="per column")
    return [head, table, text(verdict, "red" if report.get("drift") else "green")]


def canary_verdict(v: dict[str, Any]) -> list[Any]:
    arms = [{"arm": a["role"], "version": a["version"], "labelled": a["n"],
             v["metric"]: a["metric"]} for a in (v["primary"], v["canary"])]
    head = record({"verdict": v["verdict"], "p_value": v["p_value"], "alpha": v["alpha"],
                   f"{v['tested']} difference": v["difference"],
                   "confidence sequence": "-" if v["lower"] is None else
                   f"[{v['lower']:.4g}, {v['upper']:.4g}]",
                   "decided after": v["decided_at"], "since": v["since"]},
                  title=f"{v['model']}: canary v{v['canary_version']} vs champion "
                        f"v{v['primary_version']}")
    colour = {"canary_better": "green", "canary_worse": "red"}.get(v["verdict"], "yellow")
    return [head, rows(arms, ["arm", "version", "labelled", v["metric"]]),
            text(v["reason"], colour)]


def jobs_list(out: dict[str, Any]) -> list[Any]:
    items = [{**j, "next": "paused" if j.get("paused") else j.get("next_run"),
              "last": (j.get("last_run") or {}).get("status")} for j in out["items"]]
    return [rows(items, ["id", "trigger", "next", "last"], title=f"{len(items)} jobs")]


def job_runs(page: dict[str, Any]) -> list[Any]:
    """The ledger; a page of one run also shows its steps and captured logs."""
    items = page["items"]
    out = [rows([{**r, "id": r["id"][:8], "started_at": str(r.get("started_at") or "")[:19],
                  "duration": _seconds(r.get("duration_ms"))} for r in items],
                list(JOB_RUN_COLUMNS), title=f"{len(items)} of {page['total']} runs")]
    if len(items) == 1:
        out += job_run_detail(items[0])
    elif items:
        out.append(text("--limit 1 shows the newest run's steps and logs", "dim"))
    return out


def job_run_detail(run: dict[str, Any]) -> list[Any]:
    out: list[Any] = []
    steps = (run.get("result") or {}).get("steps") if isinstance(run.get("result"), dict) else None
    if steps:
        out.append(rows([{"step": s.get("step"), "detail": _step_text(s)} for s in steps],
                        ["step", "detail"], title="steps"))
    elif run.get("result") is not None:
        out.append(record({"result": run["result"]}))
    out.append(text("logs:", "bold"))
    if run.get("logs"):
        out.append(text(run["logs"]))
    elif run.get("status") in ("queued", "running"):
        out.append(text(f"(the run is {run['status']}: its logs are kept when it ends)", "dim"))
    else:
        out.append(text("(no logs captured)", "dim"))
    return out


def _step_text(step: dict[str, Any]) -> str:
    parts = []
    for key, value in step.items():
        if key == "step" or value is None:
            continue
        if isinstance(value, dict):
            value = _metrics(value, limit=6) if key == "metrics" else ", ".join(
                f"{k}={cell(v)}" for k, v in value.items() if v is not None)
            parts.append(f"{key}: [{value}]")
        else:
            parts.append(f"{key}={cell(value)}")
    return ", ".join(parts)


def _seconds(ms: Any) -> str | None:
    return f"{ms / 1000:.1f} s" if isinstance(ms, int | float) else None


def job_run_row(run: dict[str, Any]) -> list[Any]:
    return [record(run, title=f"{run.get('job')}: {run.get('status')}",
                   fields=["id", "job", "trigger", "status", "attempt", "created_at",
                           "finished_at", "duration_ms", "error"])]


def job_state(job: dict[str, Any]) -> list[Any]:
    state = ("paused" if job.get("paused") else f"scheduled, next run {job['next_run']}"
             if job.get("next_run") else f"scheduled ({job.get('trigger')})")
    return [text(f"{job['id']}: {state}", "yellow" if job.get("paused") else "green"),
            record(job, fields=["id", "kind", "trigger", "paused", "next_run", "source"])]
