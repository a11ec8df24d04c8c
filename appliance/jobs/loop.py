"""The continuous-training loop and the scheduled drift check, as job bodies.

The loop for one dataset version: check the version was accepted (validation
ran at ingest), test it for drift against the champion's training data, train
(or attach to the run already training on it), then read what the gate did:
registered, promoted or held for approval. A promoted version's training data
becomes the drift baseline. Every step is written to the run's result.

Idempotent by construction: a version is trained by at most one live run per
job (``TrainingService.runs_for``), and a run registers at most one model
version (``TrainingService._version_of_run``), so a loop re-queued after a
crash attaches to what already happened instead of repeating it.
"""

from __future__ import annotations

import logging
from typing import Any

from appliance.domain.registry import CHALLENGER, CHAMPION
from appliance.domain.runs import RunStatus
from appliance.errors import ApplianceError, InvalidInput, NotFound
from appliance.failpoints import failpoint

log = logging.getLogger(__name__)
LIVE = (RunStatus.queued.value, RunStatus.running.value, RunStatus.succeeded.value)


class TrainingLoop:
    def __init__(self, services: dict[str, Any], *, timeout: float) -> None:
        self.training = services["training"]
        self.datasets = services["datasets"]
        self.registry = services["registry"]
        self.drift = services.get("drift")
        self.timeout = timeout

    def run(self, ctx: Any, job_text: str, spec: Any) -> dict[str, Any]:
        dataset = spec.dataset
        number = ctx.params.get("dataset_version")
        if number is None:
            number = self.datasets.current_version(dataset)
            if number is None:
                ctx.log(f"{dataset} has no accepted version yet: nothing to train")
                return {"trained": False, "reason": f"{dataset} has no accepted version"}
        steps: list[dict[str, Any]] = []
        version = self.datasets.version(dataset, number)
        steps.append({"step": "validate", "dataset_version": f"{dataset}@{number}",
                      "status": version.status, "rows": version.rows})
        ctx.log(f"{dataset}@{number} was accepted against its contract "
                f"({version.rows} rows)")
        steps.append(self._drift_step(ctx, spec.name, dataset, number))
        failpoint("loop.after_drift")

        live = [r for r in self.training.runs_for(spec.name, dataset, number)
                if r.status in LIVE]
        if live:
            run = live[-1]
            ctx.log(f"attaching to run {run.id} already training on {dataset}@{number}")
        else:
            run = self.training.submit(job_text, by="scheduler", dataset_version=number)
            ctx.log(f"queued training run {run.id} on {dataset}@{number}")
        failpoint("loop.after_submit")
        final = self.training.wait(run.id, timeout=self.timeout + 600, beat=ctx.beat)
        ctx.log(f"training run {final.id} {final.status.value}")
        steps.append({"step": "train", "run_id": final.id, "status": final.status.value,
                      "metrics": dict(final.metrics)})
        if final.status is not RunStatus.succeeded:
            raise InvalidInput(f"training run {final.id} {final.status.value}: "
                               f"{final.error or 'no detail'}",
                               detail={"run_id": final.id})

        mv = next((v for v in self.registry.show_model(spec.name)["versions"]
                   if v.get("run_id") == final.id), None)
        if mv is None:
            raise InvalidInput(f"run {final.id} succeeded but registered no model version")
        steps.append({"step": "evaluate", "gate": mv.get("gate")})
        steps.append({"step": "register", "model_version": f"{spec.name}@{mv['number']}",
                      "status": mv.get("status")})
        aliases = self.registry.aliases(spec.name)
        alias = spec.promote.alias
        promoted = aliases.get(alias) == mv["number"]
        held = not promoted and aliases.get(CHALLENGER) == mv["number"]
        steps.append({"step": "promote", "alias": alias, "promoted": promoted,
                      "held_for_approval": held,
                      "champion": aliases.get(CHAMPION)})
        if promoted and alias == CHAMPION:
            steps.append({"step": "baseline", "reference": f"dataset:{dataset}@{number}"})
            ctx.log(f"{spec.name} v{mv['number']} is {alias}; the drift baseline is now "
                    f"{dataset}@{number}")
        else:
            held_because = (mv.get("gate") or {}).get("held_because")
            ctx.log(f"{spec.name} v{mv['number']} registered, " + (
                f"held as challenger: {held_because}" if held and held_because
                else "held for approval as challenger" if held
                else f"not promoted (champion stays v{aliases.get(CHAMPION)})"))
        return {"trained": True, "dataset_version": number, "run_id": final.id,
                "model_version": mv["number"], "promoted": promoted,
                "held_for_approval": held, "steps": steps}

    def _drift_step(self, ctx: Any, model: str, dataset: str, number: int) -> dict[str, Any]:
        """New data vs the champion's training data; a drift alert is raised by the check."""
        if self.drift is None:
            return {"step": "drift", "skipped": "no drift service"}
        try:
            champion = self.registry.aliases(model).get(CHAMPION)
        except NotFound:
            champion = None
        if champion is None:
            return {"step": "drift", "skipped": "no champion yet"}
        reference = self.registry.version(model, champion)
        if reference.get("dataset") == dataset and reference.get("dataset_version") == number:
            return {"step": "drift", "skipped": "the champion was trained on this version"}
        try:
            report = self.drift.check(model, dataset_version=number, by="scheduler")
        except ApplianceError as exc:
            return {"step": "drift", "skipped": exc.message}
        drifted = [f["column"] for f in report.get("features") or [] if f.get("drift")]
        if report["drift"]:
            ctx.log(f"{dataset}@{number} drifted from the champion's training data: "
                    f"{', '.join(drifted) or 'predictions'}")
        return {"step": "drift", "report": report["id"], "drift": report["drift"],
                "drifted": drifted}


def scheduled_drift(services: dict[str, Any], spec: Any) -> dict[str, Any]:
    """Drift of the prediction-log window against the champion's data, then the live metrics
    from delayed labels against the job's thresholds."""
    from appliance.domain.jobs import parse_duration

    drift, serving, alerts = services["drift"], services.get("serving"), services.get("alerts")
    schedule = spec.schedule.drift
    hours = parse_duration(schedule.window, field="window") / 3600
    out: dict[str, Any] = {"model": spec.name, "window_hours": hours}
    try:
        report = drift.check(spec.name, window_hours=hours, p_val=schedule.p_val,
                             by="scheduler")
        out["drift"] = {"report": report["id"], "drift": report["drift"],
                        "drifted": [f["column"] for f in report.get("features") or []
                                    if f.get("drift")]}
    except NotFound as exc:
        out["drift"] = {"skipped": exc.message}
    except InvalidInput as exc:  # an empty window is not a failure
        out["drift"] = {"skipped": exc.message}
    if serving is not None and (schedule.min_accuracy is not None
                                or schedule.max_rmse is not None):
        try:
            perf = serving.performance(spec.name, hours=hours)
        except NotFound as exc:
            out["metrics"] = {"skipped": exc.message}
            return out
        checked = []
        for v in perf["versions"]:
            if schedule.min_accuracy is not None and v.get("accuracy") is not None:
                checked.append({"version": v["version"], "metric": "accuracy",
                                "value": v["accuracy"]})
                if alerts is not None:
                    alerts.check_metric(spec.name, v["version"], "accuracy", v["accuracy"],
                                        schedule.min_accuracy, higher_is_better=True)
            if schedule.max_rmse is not None and v.get("rmse") is not None:
                checked.append({"version": v["version"], "metric": "rmse", "value": v["rmse"]})
                if alerts is not None:
                    alerts.check_metric(spec.name, v["version"], "rmse", v["rmse"],
                                        schedule.max_rmse, higher_is_better=False)
        out["metrics"] = checked
    return out
