"""The continuous-training loop and the scheduled drift check, as job bodies.

The loop for one dataset version: check the version was accepted (validation
ran at ingest), test it for drift against the champion's training data, train
(or attach to the run already training on it), then read what the gate did:
registered, promoted or held for approval. A promoted version's training data
becomes the drift baseline. Every step is written to the run's result.

Idempotent by construction: a version is trained by at most one live run per
job (``TrainingService.runs_for``), and a run registers at most one model
version (``RegistryService.version_for_run``), so a loop re-queued after a
crash attaches to what already happened instead of repeating it.

The services come in as ``JobCollaborators`` (Protocols, ``appliance.jobs.ports``);
the job's parsed ``JobSpec`` goes to training as it is. The scheduled drift job
publishes each live-metric check as a ``LiveMetricChecked`` event (alerts react).
"""

from __future__ import annotations

import logging
from typing import Any

from appliance.domain.drift import DriftOptions
from appliance.domain.events import LiveMetricChecked
from appliance.domain.jobs import DriftJobResult, LoopResult, Trigger
from appliance.domain.lineage import version_node
from appliance.domain.registry import CHALLENGER, CHAMPION
from appliance.domain.runs import RunStatus
from appliance.errors import ApplianceError, InvalidInput, NotFound, TrainingFailed
from appliance.events import EventBus
from appliance.failpoints import failpoint
from appliance.jobs.defs import RunContext
from appliance.jobs.ports import JobCollaborators
from appliance.train.spec import JobSpec

log = logging.getLogger(__name__)
LIVE = (RunStatus.queued.value, RunStatus.running.value, RunStatus.succeeded.value)


class TrainingLoop:
    def __init__(self, services: JobCollaborators, *, timeout: float) -> None:
        self.training = services.training
        self.datasets = services.datasets
        self.registry = services.registry
        self.drift = services.drift
        self.timeout = timeout

    def run(self, ctx: RunContext, spec: JobSpec) -> LoopResult:
        dataset = spec.dataset
        number = ctx.dataset_version
        if number is None:
            try:
                number = self.datasets.current_version(dataset)
            except NotFound:
                # a scheduled tick before the dataset's first file has nothing to train; a
                # run asked for by hand still says the dataset does not exist (a typo)
                if ctx.trigger not in (Trigger.cron.value, Trigger.interval.value):
                    raise
                number = None
            if number is None:
                ctx.log(f"{dataset} has no accepted version yet: nothing to train")
                return LoopResult(trained=False, reason=f"{dataset} has no accepted version")
        steps: list[dict[str, Any]] = []
        version = self.datasets.version(dataset, number)
        steps.append({"step": "validate", "dataset_version": f"{dataset}@{number}",
                      "status": version.status, "rows": version.rows})
        ctx.log(f"{dataset}@{number} was accepted against its contract "
                f"({version.rows} rows)")
        steps.append(self._drift_step(ctx, spec.name, dataset, number, spec.drift))
        failpoint("loop.after_drift")

        live = [r for r in self.training.runs_for(spec.name, dataset, number)
                if r.status in LIVE]
        if live:
            run = live[-1]
            ctx.log(f"attaching to run {run.id} already training on {dataset}@{number}")
        else:
            run = self.training.submit(spec, by="scheduler", dataset_version=number)
            ctx.log(f"queued training run {run.id} on {dataset}@{number}")
        failpoint("loop.after_submit")
        final = self.training.wait(run.id, timeout=self.timeout + 600, beat=ctx.beat)
        ctx.log(f"training run {final.id} {final.status.value}")
        steps.append({"step": "train", "run_id": final.id, "status": final.status.value,
                      "metrics": dict(final.metrics)})
        if final.status is not RunStatus.succeeded:
            raise TrainingFailed(f"training run {final.id} {final.status.value}: "
                                 f"{final.error or 'no detail'}",
                                 detail={"run_id": final.id})

        mv = self.registry.version_for_run(final.id)
        if mv is None:
            raise TrainingFailed(f"run {final.id} succeeded but registered no model version",
                                 detail={"run_id": final.id})
        steps.append({"step": "evaluate",
                      "gate": None if mv.gate is None else mv.gate.model_dump()})
        steps.append({"step": "register", "model_version": f"{spec.name}@{mv.number}",
                      "status": mv.status.value})
        aliases = self.registry.aliases(spec.name)
        alias = spec.promote.alias
        promoted = aliases.get(alias) == mv.number
        held = not promoted and aliases.get(CHALLENGER) == mv.number
        steps.append({"step": "promote", "alias": alias, "promoted": promoted,
                      "held_for_approval": held,
                      "champion": aliases.get(CHAMPION)})
        if promoted and alias == CHAMPION:
            steps.append({"step": "baseline", "reference": version_node(dataset, number)})
            ctx.log(f"{spec.name} v{mv.number} is {alias}; the drift baseline is now "
                    f"{dataset}@{number}")
        else:
            held_because = mv.gate.held_because if mv.gate is not None else None
            ctx.log(f"{spec.name} v{mv.number} registered, " + (
                f"held as challenger: {held_because}" if held and held_because
                else "held for approval as challenger" if held
                else f"not promoted (champion stays v{aliases.get(CHAMPION)})"))
        return LoopResult(trained=True, dataset_version=number, run_id=final.id,
                          model_version=mv.number, promoted=promoted,
                          held_for_approval=held, steps=steps)

    def _drift_step(self, ctx: RunContext, model: str, dataset: str, number: int,
                    options: DriftOptions | None) -> dict[str, Any]:
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
        if reference.dataset == dataset and reference.dataset_version == number:
            return {"step": "drift", "skipped": "the champion was trained on this version"}
        try:
            report = self.drift.check(model, dataset_version=number, options=options,
                                      by="scheduler")
        except ApplianceError as exc:
            return {"step": "drift", "skipped": exc.message}
        drifted = report.drifted
        if report.drift:
            ctx.log(f"{dataset}@{number} drifted from the champion's training data: "
                    f"{', '.join(drifted) or 'predictions'}")
        return {"step": "drift", "report": str(report.id), "drift": report.drift,
                "drifted": drifted}


def scheduled_drift(services: JobCollaborators, events: EventBus,
                    spec: JobSpec) -> DriftJobResult:
    """Drift of the prediction-log window against the champion's data, then the live metrics
    from delayed labels against the job's thresholds."""
    from appliance.domain.jobs import parse_duration

    drift, serving = services.drift, services.serving
    if drift is None:
        raise RuntimeError("no drift service is wired to the jobs")
    schedule = spec.schedule.drift if spec.schedule else None
    assert schedule is not None, "a drift job comes from a job file with schedule.drift"
    hours = parse_duration(schedule.window, field="window") / 3600
    try:
        report = drift.check(spec.name, window_hours=hours, p_val=schedule.p_val,
                             options=spec.drift, by="scheduler")
        found: dict[str, Any] = {"report": str(report.id), "drift": report.drift,
                                 "drifted": report.drifted}
    except NotFound as exc:
        found = {"skipped": exc.message}
    except InvalidInput as exc:  # an empty window is not a failure
        found = {"skipped": exc.message}
    out = DriftJobResult(model=spec.name, window_hours=hours, drift=found)
    if serving is None or (schedule.min_accuracy is None and schedule.max_rmse is None):
        return out
    try:
        perf = serving.performance(spec.name, hours=hours)
    except NotFound as exc:
        return out.model_copy(update={"metrics": {"skipped": exc.message}})
    checked = []
    for v in perf.versions:
        for metric, threshold, higher in (("accuracy", schedule.min_accuracy, True),
                                          ("rmse", schedule.max_rmse, False)):
            value = getattr(v, metric)
            if threshold is None or value is None:
                continue
            checked.append({"version": v.version, "metric": metric, "value": value})
            events.publish(LiveMetricChecked(spec.name, v.version, metric, value,
                                             threshold, higher_is_better=higher))
    return out.model_copy(update={"metrics": checked})
