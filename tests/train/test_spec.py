"""Job files: the DESIGN §4 example parses; bad files name the field and the line."""

from __future__ import annotations

import sys
import textwrap

import pytest

from appliance.errors import InvalidInput
from appliance.train import estimators
from appliance.train.spec import parse_job, validate_job

DESIGN_EXAMPLE = """\
name: churn
dataset: customers            # dataset name in the store
target: churned
features: {exclude: [customer_id]}
model: {kind: xgboost.XGBClassifier, params: {n_estimators: 200, max_depth: 5}}
split: {test_size: 0.2, seed: 7}
metric: roc_auc               # the metric that gates promotion
search: {n_iter: 20, params: {max_depth: [3, 5, 7]}}   # optional
promote: {alias: champion, min_delta: 0.0, require_approval: false}
fairness: {sensitive: [gender], max_demographic_parity_difference: 0.1}
schedule:
  train: {on: new_data}       # or {cron: "0 3 * * *"} / {every: 6h}
  drift: {every: 1h, window: 24h, p_val: 0.05}
"""

MINIMAL = """\
name: churn
dataset: customers
target: churned
model:
  kind: {kind}
"""


def refused(text: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse_job(textwrap.dedent(text))
    return info.value


def test_parse_job_design_example_accepted() -> None:
    spec = parse_job(DESIGN_EXAMPLE)
    assert spec.model.kind == "xgboost.XGBClassifier"
    assert spec.model.params == {"n_estimators": 200, "max_depth": 5}
    assert spec.search is not None and spec.search.kind == "random"
    assert spec.schedule is not None and spec.schedule.train is not None
    assert spec.schedule.train.on == "new_data" and spec.schedule.train.cron is None
    assert spec.schedule.drift is not None
    assert (spec.schedule.drift.every, spec.schedule.drift.window,
            spec.schedule.drift.p_val) == ("1h", "24h", 0.05)
    assert spec.promote.alias == "champion" and spec.higher_is_better
    assert spec.fairness is not None and spec.fairness.sensitive == ["gender"]


def test_parse_job_defaults_filled() -> None:
    spec = parse_job(MINIMAL.format(kind="Ridge"))
    assert spec.model.kind == "sklearn.linear_model.Ridge"
    assert spec.metric == "rmse" and not spec.higher_is_better
    assert spec.split.test_size == 0.2 and spec.split.seed == 0
    assert spec.promote.alias == "champion" and spec.promote.min_delta == 0.0
    assert spec.limitations == [] and spec.search is None


@pytest.mark.parametrize("kind", ["os.system", "subprocess.Popen", "builtins.eval",
                                  "sklearn.svm.SVC", "HistGradientBoostingClassifier",
                                  "sklearn.ensemble._forest.RandomForestClassifier"])
def test_parse_job_unknown_estimator_refused_with_field_and_line(kind: str) -> None:
    before = set(sys.modules)
    err = refused(MINIMAL.format(kind=kind))
    assert "line 5" in err.message and "model.kind" in err.message
    assert f"unknown estimator {kind!r}" in err.message
    assert err.detail["field"] == "model.kind" and err.detail["line"] == 5
    assert not {"subprocess", "os"} & (set(sys.modules) - before)


def test_parse_job_unknown_field_refused_with_line() -> None:
    err = refused(MINIMAL.format(kind="Ridge") + "modle: {kind: Ridge}\n")
    assert "line 6" in err.message and "unknown field 'modle'" in err.message


def test_parse_job_nested_unknown_field_refused_with_line() -> None:
    err = refused(MINIMAL.format(kind="Ridge") + "promote:\n  alias: champion\n  force: true\n")
    assert err.detail == {"field": "promote.force", "line": 8, "errors": err.detail["errors"]}


def test_parse_job_wrong_type_refused_with_line() -> None:
    err = refused(MINIMAL.format(kind="Ridge") + "split:\n  seed: 1\n  test_size: 1.5\n")
    assert err.detail["field"] == "split.test_size" and err.detail["line"] == 8


def test_parse_job_missing_field_refused() -> None:
    err = refused("name: a\ndataset: b\nmodel: {kind: Ridge}\n")
    assert err.detail["field"] == "target" and "required" in err.message


def test_parse_job_bad_yaml_refused_with_line() -> None:
    err = refused("name: a\ndataset: b\ntarget: [unclosed\nmodel: {kind: Ridge}\n")
    assert "not valid YAML" in err.message and err.detail["line"] is not None


def test_parse_job_not_a_mapping_refused() -> None:
    assert "mapping" in refused("- just\n- a list\n").message


def test_parse_job_duplicate_key_refused() -> None:
    err = refused(MINIMAL.format(kind="Ridge") + "target: other\n")
    assert err.detail["line"] == 6 and "twice" in err.message


def test_parse_job_bad_name_refused() -> None:
    err = refused(MINIMAL.format(kind="Ridge").replace("name: churn", "name: ../etc"))
    assert err.detail["field"] == "name" and err.detail["line"] == 1


def test_parse_job_unknown_param_refused_naming_it() -> None:
    text = MINIMAL.format(kind="RandomForestClassifier") + "  params: {n_estimatorz: 5}\n"
    err = refused(text)
    assert "n_estimatorz" in err.message and err.detail["field"] == "model.params.n_estimatorz"
    assert err.detail["line"] == 6


def test_parse_job_unknown_search_param_refused() -> None:
    text = MINIMAL.format(kind="Ridge") + "search:\n  params: {depth: [1, 2]}\n"
    assert refused(text).detail["field"] == "search.params.depth"


def test_parse_job_object_param_refused() -> None:
    text = MINIMAL.format(kind="XGBClassifier") + "  params: {callbacks: [x]}\n"
    assert refused(text).detail["field"] == "model.params.callbacks"


def test_parse_job_metric_for_other_task_refused() -> None:
    err = refused(MINIMAL.format(kind="Ridge") + "metric: roc_auc\n")
    assert err.detail == {"field": "metric", "line": 6}


def test_parse_job_fairness_threshold_for_regression_refused() -> None:
    text = MINIMAL.format(kind="Ridge") + ("fairness:\n  sensitive: [g]\n"
                                           "  max_demographic_parity_difference: 0.1\n")
    assert refused(text).detail["line"] == 8


def test_validate_job_mapping_refused_without_line() -> None:
    with pytest.raises(InvalidInput) as info:
        validate_job({"name": "a", "dataset": "b", "target": "y", "model": {"kind": "os.system"}})
    assert info.value.detail["field"] == "model.kind" and info.value.detail["line"] is None


@pytest.mark.parametrize("name", ["xgboost.XGBClassifier", "XGBClassifier",
                                  "sklearn.ensemble.RandomForestClassifier", "RandomForestClassifier"])
def test_resolve_estimator_long_and_short_names(name: str) -> None:
    assert estimators.resolve(name).cls == name.rsplit(".", 1)[-1]


def test_resolve_estimator_non_string_refused() -> None:
    with pytest.raises(InvalidInput):
        estimators.resolve(["os", "system"])


def test_allowlist_modules_are_sklearn_or_xgboost() -> None:
    for info in estimators.ALLOWLIST.values():
        assert info.module == "xgboost" or info.module.startswith("sklearn.")
        assert not info.cls.startswith("HistGradientBoosting")


@pytest.mark.parametrize(("schedule", "field", "words"), [
    ("train: {on: new_data, cron: '0 3 * * *'}", "schedule.train", "exactly one"),
    ("train: {}", "schedule.train", "exactly one"),
    ("train: {cron: 'every day'}", "schedule.train", "crontab"),
    ("train: {every: soon}", "schedule.train", "duration"),
    ("train: {on: new_file}", "schedule.train.on", "new_data"),
    ("drift: {every: 0s}", "schedule.drift", "between 1s"),
    ("drift: {window: forever}", "schedule.drift", "window"),
    ("drift: {p_val: 1.5}", "schedule.drift.p_val", "less than 1"),
    ("validate: {every: 1h}", "schedule.validate", "unknown field"),
])
def test_parse_job_bad_schedules_refused_naming_the_field(schedule: str, field: str,
                                                          words: str) -> None:
    err = refused(MINIMAL.format(kind="Ridge") + "schedule:\n  " + schedule + "\n")
    assert err.detail["field"] == field
    assert words in err.message


def test_parse_job_schedule_cron_and_interval_accepted() -> None:
    spec = parse_job(MINIMAL.format(kind="Ridge") + "schedule:\n  train: {cron: '0 3 * * *'}\n"
                     "  drift: {cron: '*/5 * * * *', window: 2h, min_accuracy: 0.8}\n")
    assert spec.schedule is not None and spec.schedule.train is not None
    assert spec.schedule.train.cron == "0 3 * * *" and spec.schedule.train.retries == 1
    assert spec.schedule.drift is not None and spec.schedule.drift.every is None
    assert spec.schedule.drift.min_accuracy == 0.8


def test_parse_job_keeps_the_text_it_was_parsed_from() -> None:
    spec = parse_job(DESIGN_EXAMPLE)
    assert spec.source == DESIGN_EXAMPLE and spec.text() == DESIGN_EXAMPLE


def test_job_spec_without_source_writes_itself_out_as_yaml_that_parses_back() -> None:
    spec = validate_job(parse_job(DESIGN_EXAMPLE).model_dump(mode="json"))
    assert spec.source is None
    again = parse_job(spec.text())
    assert again.model_dump() == spec.model_dump()


def test_check_job_later_on_a_spec_parsed_without_checks_names_the_same_line() -> None:
    from appliance.train.spec import check_job

    text = MINIMAL.format(kind="RandomForestClassifier") + "  params: {n_estimatorz: 5}\n"
    spec = parse_job(text, check_params=False)  # the scheduler's job-file loader
    with pytest.raises(InvalidInput) as info:
        check_job(spec)  # the training service, when the loop submits the spec
    assert info.value.message == refused(text).message
    assert info.value.detail["line"] == 6


def test_parse_job_drift_tests_and_thresholds_per_column() -> None:
    spec = parse_job(MINIMAL.format(kind="Ridge") + "drift:\n  tests: {age: psi, plan: chi2}\n"
                     "  thresholds: {age: 0.2}\n  multivariate: false\n")
    assert spec.drift is not None
    assert spec.drift.tests == {"age": "psi", "plan": "chisquare"}  # the alias resolved
    assert spec.drift.thresholds == {"age": 0.2} and spec.drift.multivariate is False


def test_parse_job_unknown_drift_test_refused_naming_the_choices_and_line() -> None:
    err = refused(MINIMAL.format(kind="Ridge") + "drift:\n  tests:\n    age: kolmogorov\n")
    assert err.detail["field"] == "drift.tests" and err.detail["line"] == 7
    assert "unknown drift test 'kolmogorov'" in err.message and "wasserstein" in err.message
