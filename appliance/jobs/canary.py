"""The scheduled canary check of a job file with ``promote.canary`` (``canary.<job>``).

Every ``promote.canary.every`` it asks for the model's canary verdict and lets
the rule act on it (``appliance.monitor.canary.CanaryService.act``): with
``auto: true`` a better canary is promoted (or an approver is asked, when the
job requires approval or the registry refuses the move) and a worse one is
taken out of the routing. The result, with its evidence, is the run's result
in the ledger.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from appliance.domain.canary import CanaryAction
from appliance.jobs.defs import JobDef, RunContext, timing
from appliance.jobs.files import LoadedFile
from appliance.jobs.ports import JobCollaborators
from appliance.train.spec import CanaryRuleSpec, JobSpec


def canary_job(spec: JobSpec, source: str,
               run: Callable[[RunContext], Any]) -> JobDef | None:
    """The job's ``canary.<name>`` definition, or None when it has no canary rule."""
    rule = spec.promote.canary
    if rule is None:
        return None
    acts = "promote or roll back on the verdict" if rule.auto else "report the verdict"
    return JobDef(id=f"canary.{spec.name}", kind="canary", run=run,
                  trigger=timing(None, rule.every), retries=0, source=source,
                  description=f"canary verdict of {spec.name} (alpha {rule.alpha:g}, at least "
                              f"{rule.min_samples} labels per arm): {acts}")


def scheduled_canary(services: JobCollaborators, spec: JobSpec,
                     ctx: RunContext) -> CanaryAction:
    rule = spec.promote.canary
    assert rule is not None, "a canary job comes from a job file with promote.canary"
    if services.canary is None:
        raise RuntimeError("no canary service is wired to the jobs")
    out = services.canary.act(spec.name, rule, require_approval=spec.promote.require_approval)
    ctx.log(f"{spec.name}: {out.action.value}: {out.message}")
    return out


def rule_of(files: Iterable[LoadedFile], model: str) -> CanaryRuleSpec | None:
    """The ``promote.canary`` rule of the valid job file that names ``model``, if any."""
    for f in files:
        if f.ok and f.spec is not None and f.spec.name == model:
            return f.spec.promote.canary
    return None
