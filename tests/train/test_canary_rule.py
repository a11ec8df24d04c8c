"""The job file's `promote.canary` block: parsed into JobSpec, refused with the field named."""

from __future__ import annotations

import pytest

from appliance.errors import InvalidInput
from appliance.train.spec import parse_job

JOB = """\
name: churn
dataset: customers
target: churned
model: {kind: LogisticRegression}
promote:
  canary: CANARY
"""


def job(canary: str) -> str:
    return JOB.replace("CANARY", canary)


def test_parse_job_reads_the_canary_rule_with_its_defaults() -> None:
    rule = parse_job(job("{auto: true}"), check_params=False).promote.canary
    assert rule is not None and rule.auto
    assert (rule.alpha, rule.tau, rule.min_samples, rule.every) == (0.05, 0.1, 200, "15m")
    rule = parse_job(job("{alpha: 0.01, tau: 0.2, min_samples: 500, every: 1h}"),
                     check_params=False).promote.canary
    assert rule is not None and not rule.auto
    assert (rule.alpha, rule.tau, rule.min_samples, rule.every) == (0.01, 0.2, 500, "1h")
    assert parse_job(JOB.replace("  canary: CANARY\n", "  min_delta: 0.0\n"),
                     check_params=False).promote.canary is None


@pytest.mark.parametrize(("canary", "field", "says"), [
    ("{alpha: 0.7}", "promote.canary.alpha", "less than 0.5"),
    ("{alpha: 0}", "promote.canary.alpha", "greater than 0"),
    ("{tau: -1}", "promote.canary.tau", "greater than 0"),
    ("{min_samples: 1}", "promote.canary.min_samples", "greater than or equal to 2"),
    ("{min_samples: many}", "promote.canary.min_samples", "integer"),
    ("{auto: maybe}", "promote.canary.auto", "boolean"),
    ("{every: soon}", "promote.canary", "not a duration"),
    ("{auto: true, promote: champion}", "promote.canary.promote", "unknown field"),
    ("yes", "promote.canary", "valid dictionary"),
])
def test_parse_job_refuses_a_bad_canary_rule(canary: str, field: str, says: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_job(job(canary), check_params=False)
    assert err.value.detail["field"] == field
    assert err.value.detail["line"] == 6
    assert says in err.value.message


def test_parse_job_refuses_a_canary_rule_on_another_alias() -> None:
    text = job("{auto: true}").replace("promote:\n", "promote:\n  alias: staging\n")
    with pytest.raises(InvalidInput, match="needs alias: champion"):
        parse_job(text, check_params=False)
