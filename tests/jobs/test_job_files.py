"""Job files become scheduled jobs; changes reload them; an invalid file is reported, not fatal."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from scheduler_clock import Rig

JOB = """\
name: {name}
dataset: customers
target: churned
model: {{kind: LogisticRegression}}
schedule:
  train: {train}
  drift: {{every: 30m, window: 2h}}
"""


def write(rig: Rig, file: str, text: str) -> Path:
    path = rig.tmp_path / "jobs" / file
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # a visible change
    return path


def ids(rig: Rig) -> dict[str, str]:
    return {j.id: j.trigger for j in rig.jobs.list_jobs().items}


def test_a_job_file_defines_a_training_loop_and_a_drift_check(rig: Rig) -> None:
    write(rig, "churn.yaml", JOB.format(name="churn", train="{on: new_data}"))
    out = rig.jobs.reload()
    assert out.changed and out.files[0].ok
    assert ids(rig) == {"train.churn": "on new data in customers",
                        "drift.churn": "every 30m"}


def test_a_changed_file_is_rescheduled_and_a_removed_one_unscheduled(rig: Rig) -> None:
    path = write(rig, "churn.yaml", JOB.format(name="churn", train="{on: new_data}"))
    rig.jobs.reload()
    assert not rig.jobs.reload().changed  # nothing changed: nothing parsed again
    write(rig, "churn.yaml", JOB.format(name="churn", train="{cron: '0 3 * * *'}"))
    assert rig.jobs.reload().changed
    assert ids(rig)["train.churn"] == "cron 0 3 * * *"
    path.unlink()
    rig.jobs.reload()
    assert ids(rig) == {}


def test_an_invalid_file_is_reported_with_its_line_and_the_others_still_run(rig: Rig) -> None:
    write(rig, "good.yaml", JOB.format(name="good", train="{every: 6h}"))
    write(rig, "bad.yaml", JOB.format(name="bad", train="{cron: 'at noon'}"))
    write(rig, "worse.yaml", "name: [unclosed\n")
    files = {f.name: f for f in rig.jobs.reload().files}
    assert files["good.yaml"].ok
    assert not files["bad.yaml"].ok
    assert files["bad.yaml"].error.line == 6  # the `train:` line
    assert "crontab" in files["bad.yaml"].error.message
    assert "not valid YAML" in files["worse.yaml"].error.message
    assert set(ids(rig)) == {"train.good", "drift.good"}


def test_fixing_an_invalid_file_schedules_it(rig: Rig) -> None:
    write(rig, "churn.yaml", JOB.format(name="churn", train="{every: never}"))
    rig.jobs.reload()
    assert ids(rig) == {}
    write(rig, "churn.yaml", JOB.format(name="churn", train="{every: 6h}"))
    rig.jobs.reload()
    assert ids(rig)["train.churn"] == "every 6h"


def test_two_files_with_the_same_job_name_the_second_is_refused(rig: Rig) -> None:
    write(rig, "a.yaml", JOB.format(name="churn", train="{every: 6h}"))
    write(rig, "b.yaml", JOB.format(name="churn", train="{every: 1h}"))
    files = {f.name: f for f in rig.jobs.reload().files}
    assert files["a.yaml"].ok and not files["b.yaml"].ok
    assert "already defined" in files["b.yaml"].error.message
    assert ids(rig)["train.churn"] == "every 6h"


@pytest.mark.parametrize("make", ["symlink", "binary", "huge"])
def test_hostile_job_files_are_reported_not_followed(rig: Rig, make: str) -> None:
    path = rig.tmp_path / "jobs" / "evil.yaml"
    if make == "symlink":
        target = rig.tmp_path / "outside.yaml"
        target.write_text(JOB.format(name="evil", train="{every: 1h}"))
        path.symlink_to(target)
    elif make == "binary":
        path.write_bytes(b"\xff\xfe\x00name: x")
    else:
        path.write_text("# " + "x" * 1_100_000 + "\n")
    (f,) = rig.jobs.reload().files
    assert not f.ok and f.error.message
    assert ids(rig) == {}


def test_new_data_queues_the_loop_once_per_dataset_version(rig: Rig) -> None:
    write(rig, "churn.yaml", JOB.format(name="churn", train="{on: new_data}"))
    rig.jobs.reload()
    first = rig.jobs.on_new_data("customers", 3)
    assert [r.idempotency_key for r in first] == ["train.churn:customers@3"]
    assert rig.jobs.on_new_data("customers", 3) == []  # the same version: never twice
    assert rig.jobs.on_new_data("other", 1) == []
    assert len(rig.jobs.on_new_data("customers", 4)) == 1


def test_a_loop_still_waiting_for_older_data_is_superseded_by_newer_data(rig: Rig) -> None:
    write(rig, "churn.yaml", JOB.format(name="churn", train="{on: new_data}"))
    rig.jobs.reload()
    (older,) = rig.jobs.on_new_data("customers", 1)
    (newer,) = rig.jobs.on_new_data("customers", 2)
    gone = rig.jobs.ledger.get(older.id)
    assert gone.status == "skipped" and gone.error == "superseded by customers@2"
    assert rig.jobs.ledger.get(newer.id).status == "queued"
    assert rig.jobs.on_new_data("customers", 1) == []  # superseded still counts as handled


def test_a_paused_loop_ignores_new_data(rig: Rig) -> None:
    from scheduler_clock import ADMIN

    write(rig, "churn.yaml", JOB.format(name="churn", train="{on: new_data}"))
    rig.jobs.reload()
    rig.jobs.pause("train.churn", by=ADMIN)
    assert rig.jobs.on_new_data("customers", 1) == []
    assert rig.runs("train.churn") == []


def test_new_data_run_carries_its_dataset_version_as_columns_into_its_retry(rig: Rig) -> None:
    write(rig, "churn.yaml", JOB.format(name="churn", train="{on: new_data, retries: 1}"))
    rig.jobs.reload()
    rig.start()
    (first,) = rig.jobs.on_new_data("customers", 3)
    assert (first.dataset, first.dataset_version) == ("customers", 3)
    rig.clock.advance(1)  # the run: no training service in this rig, so it fails
    rig.clock.advance(31)  # its retry, after the 30 s backoff
    runs = sorted(rig.runs("train.churn"), key=lambda r: r.attempt)
    assert [(r.trigger, r.status) for r in runs] == [("new_data", "failed"), ("retry", "failed")]
    assert all((r.idempotency_key, r.dataset, r.dataset_version) ==
               ("train.churn:customers@3", "customers", 3) for r in runs)
    assert "dataset" not in runs[0].model_dump()  # the API's JobRun shape is unchanged
