"""Jobs: the scheduler's jobs, their next runs, and the run ledger with results and logs.

Everything comes from ``GET /api/v1/jobs`` and ``GET /api/v1/jobs/{id}/runs``;
operators run a job now, pause it or resume it (``POST /api/v1/jobs/{id}/run``,
``/pause``, ``/resume``). While a run of the selected job is queued or running,
its history is redrawn every few seconds.
"""

from __future__ import annotations

import json
from functools import partial
from typing import Any
from urllib.parse import quote

import altair as alt
import console_lib as lib
import console_views as views
import pandas as pd
import streamlit as st

from appliance.client import ApplianceClient

ANY = "(any)"
STATUSES = ["queued", "running", "succeeded", "failed", "interrupted", "skipped"]
ACTIVE = ("queued", "running")
STATUS_COLOURS = ["#1f77b4", "#17becf", "#2ca02c", "#d62728", "#ff7f0e", "#7f7f7f"]
JOB_COLUMNS = ["id", "kind", "trigger", "next_run", "paused", "running", "last_status",
               "last_started", "last_duration", "last_error"]
RUN_COLUMNS = ["status", "trigger", "attempt", "started_at", "finished_at", "duration",
               "error", "idempotency_key", "id"]
HISTORY = 200  # newest runs fetched for the table and the chart
REFRESH_SECONDS = 3

# st.session_state keys
JOB = "jobs_job"
RUN_STATUS = "jobs_run_status"
DETAIL = "jobs_detail"

EMPTY_HINT = ("No jobs are scheduled. Put a job file into the jobs folder ({folder}); "
              "see docs/reference/jobs.md.")


# -- the schedules ------------------------------------------------------------------


def duration_text(ms: Any) -> str | None:
    """``duration_ms`` as people read it: 840 ms, 13.4 s, 2 min 5 s."""
    if ms is None:
        return None
    ms = float(ms)
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes} min {seconds} s"


def file_banner(files: list[dict[str, Any]], folder: str) -> None:
    """Job files that do not validate (never scheduled), each with its line and message."""
    bad = [f for f in files if not f.get("ok")]
    valid = len(files) - len(bad)
    st.caption(f"Job files in `{folder}`: {valid} valid, {len(bad)} invalid.")
    if not bad:
        return
    lines = [f"**{len(bad)} job file{'s' if len(bad) != 1 else ''} invalid** "
             "(not scheduled; fix and save, the folder is re-read every few seconds):"]
    for f in bad:
        error = f.get("error") or {}
        where = [f"line {error['line']}" if error.get("line") is not None else None,
                 f"field `{error['field']}`" if error.get("field") else None]
        at = ", ".join(w for w in where if w)
        lines.append(f"- `{f.get('name')}`{f' ({at})' if at else ''}: "
                     f"{error.get('message') or 'invalid'}")
    st.warning("\n".join(lines))


def schedule_rows(jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for job in jobs:
        last = job.get("last_run") or {}
        rows.append({**job, "last_status": last.get("status"),
                     "last_started": last.get("started_at") or last.get("created_at"),
                     "last_duration": duration_text(last.get("duration_ms")),
                     "last_error": last.get("error")})
    return rows


def schedules_table(jobs: list[dict[str, Any]]) -> None:
    views.table(views.frame(schedule_rows(jobs), JOB_COLUMNS), colour_by="last_status")


def pick_job(jobs: list[dict[str, Any]]) -> dict[str, Any]:
    ids = [j["id"] for j in jobs]
    if st.session_state.get(JOB) not in ids:
        st.session_state.pop(JOB, None)  # the job went away (its file was removed)
    by_id = {j["id"]: j for j in jobs}
    job_id: str = st.selectbox("Job", ids, key=JOB,
                               format_func=lambda i: f"{i} · {by_id[i]['trigger']}")
    return by_id[job_id]


def active(job: dict[str, Any]) -> bool:
    return bool(job.get("running")) or (job.get("last_run") or {}).get("status") in ACTIVE


# -- actions (operators and up) -------------------------------------------------------


def queued(job_id: str, run: dict[str, Any]) -> str:
    st.session_state[DETAIL] = run["id"]  # show the new run in the detail below
    st.session_state[RUN_STATUS] = ANY
    return f"Queued a run of {job_id} (run {str(run['id'])[:8]})."


def run_now(client: ApplianceClient, job_id: str) -> None:
    lib.attempt(lambda: client.run_job(job_id), partial(queued, job_id), notice="toast")


def pause(client: ApplianceClient, job_id: str) -> None:
    lib.attempt(lambda: client.pause_job(job_id),
                lambda _: f"Paused {job_id}: no scheduled runs until it is resumed.",
                notice="toast")


def resume(client: ApplianceClient, job_id: str) -> None:
    lib.attempt(lambda: client.resume_job(job_id),
                lambda job: f"Resumed {job_id}: next run {job.get('next_run') or 'on its trigger'}.",
                notice="toast")


def actions(client: ApplianceClient, job: dict[str, Any]) -> None:
    if not lib.has_role("operator"):
        st.caption("Operators can run, pause and resume jobs.")
        return
    c = st.columns([1, 1, 1, 5])
    c[0].button("Run now", key="jobs_run_now", type="primary",
                on_click=partial(run_now, client, job["id"]),
                help="Queue a run now; it waits for a run already going, never overlaps it.")
    c[1].button("Pause", key="jobs_pause", disabled=bool(job.get("paused")),
                on_click=partial(pause, client, job["id"]),
                help="Stop scheduled runs (kept across restarts); Run now still works.")
    c[2].button("Resume", key="jobs_resume", disabled=not job.get("paused"),
                on_click=partial(resume, client, job["id"]))


def job_header(job: dict[str, Any]) -> None:
    state = "paused" if job.get("paused") else (f"next run {job['next_run']}"
                                                if job.get("next_run") else "no scheduled run")
    source = f" · from `{job['source']}`" if job.get("source") else ""
    st.markdown(f"**{job['id']}** ({job['kind']}) · {job['trigger']} · {state} · "
                f"retries {job.get('retries', 0)}{source}")
    if job.get("description"):
        st.caption(job["description"])


# -- the run history ------------------------------------------------------------------


def run_label(run: dict[str, Any]) -> str:
    when = run.get("started_at") or run.get("created_at") or "?"
    return f"{when} · {run['status']} · {run['trigger']} · {str(run['id'])[:8]}"


def history_table(runs: list[dict[str, Any]]) -> None:
    df = views.frame([{**r, "duration": duration_text(r.get("duration_ms"))} for r in runs],
                     RUN_COLUMNS)
    colours = {**views.COLOURS, "skipped": "background-color: #e2e3e5; color: #383d41"}
    data: Any = df
    if not df.empty:
        data = df.style.map(lambda v: colours.get(str(v), ""), subset=["status"])
    st.dataframe(data, hide_index=True, width="stretch")


def durations_chart(runs: list[dict[str, Any]]) -> None:
    """Each finished run's duration at its start time, coloured by status."""
    timed = [r for r in runs if r.get("duration_ms") is not None
             and (r.get("started_at") or r.get("created_at"))]
    if not timed:
        st.caption("No timed runs yet: durations are charted once runs finish.")
        return
    df = pd.DataFrame({
        "started": pd.to_datetime([r.get("started_at") or r.get("created_at") for r in timed],
                                  utc=True, format="ISO8601"),
        "seconds": [float(r["duration_ms"]) / 1000 for r in timed],
        "status": [str(r["status"]) for r in timed],
        "trigger": [str(r.get("trigger")) for r in timed],
        "run": [str(r["id"])[:8] for r in timed],
    })
    x = alt.X("started:T", title="started (UTC)",
              axis=alt.Axis(format="%d %b %H:%M:%S", labelAngle=-20, labelOverlap=True))
    y = alt.Y("seconds:Q", title="duration (s)")
    colour = alt.Color("status:N", title="status",
                       scale=alt.Scale(domain=STATUSES, range=STATUS_COLOURS))
    tooltip = [alt.Tooltip("started:T", format="%Y-%m-%d %H:%M:%S UTC"), "seconds", "status",
               "trigger", "run"]
    stems = alt.Chart(df).mark_rule(opacity=0.5).encode(x=x, y=y, color=colour)
    dots = alt.Chart(df).mark_circle(size=90, opacity=1).encode(x=x, y=y, color=colour,
                                                                tooltip=tooltip)
    st.altair_chart((stems + dots).properties(height=220, title="Run durations"),
                    width="stretch")


# -- one run --------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def step_text(step: dict[str, Any]) -> str:
    """One step of a training-loop run, as a sentence."""
    name = step.get("step")
    if step.get("skipped"):
        return f"skipped: {step['skipped']}"
    if name == "validate":
        return (f"{step.get('dataset_version')} is {step.get('status')} against its contract "
                f"({step.get('rows')} rows)")
    if name == "drift":
        drifted = ", ".join(step.get("drifted") or []) or "predictions"
        found = f"drift in {drifted}" if step.get("drift") else "no drift"
        return f"{found} against the champion's training data (report `{step.get('report')}`)"
    if name == "train":
        metrics = step.get("metrics") or {}
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in sorted(metrics.items()))
        return (f"training run `{step.get('run_id')}` {step.get('status')}"
                + (f": {shown}" if shown else ""))
    if name == "evaluate":
        gate = step.get("gate") or {}
        verdict = "passed" if gate.get("passed") else "failed"
        champion = gate.get("champion_value")
        versus = (f" vs champion {_fmt(champion)}" if champion is not None
                  else " (no champion yet)")
        return (f"gate {verdict}: {gate.get('metric')} {_fmt(gate.get('value'))}{versus}, "
                f"min_delta {_fmt(gate.get('min_delta'))}, fairness "
                f"{'passed' if gate.get('fairness_passed', True) else 'failed'}")
    if name == "register":
        return f"registered {step.get('model_version')} ({step.get('status')})"
    if name == "promote":
        if step.get("promoted"):
            return f"promoted to {step.get('alias')}"
        if step.get("held_for_approval"):
            return "held for approval as challenger"
        return f"not promoted: the champion stays v{step.get('champion')}"
    if name == "baseline":
        return f"the drift baseline is now {step.get('reference')}"
    rest = {k: v for k, v in step.items() if k != "step"}
    return ", ".join(f"{k} {_fmt(v)}" for k, v in rest.items()) or "done"


def steps_list(steps: list[dict[str, Any]]) -> None:
    lines = [f"{i}. **{s.get('step')}**: {step_text(s)}" for i, s in enumerate(steps, 1)]
    st.markdown("\n".join(lines))


def run_detail(client: ApplianceClient, job_id: str, run_id: str) -> None:
    run = lib.fetch(lambda: client.job_run(job_id, run_id))
    if run is None:
        return
    with st.expander(f"Run {str(run['id'])[:8]} · {run['status']}", expanded=True):
        duration = duration_text(run.get("duration_ms")) or "-"
        key = f" · key `{run['idempotency_key']}`" if run.get("idempotency_key") else ""
        retry = f" · retry of `{run['retry_of']}`" if run.get("retry_of") else ""
        st.caption(f"{run['trigger']} · attempt {run['attempt']} · queued {run.get('created_at')}"
                   f" · started {run.get('started_at') or '-'} · finished "
                   f"{run.get('finished_at') or '-'} · duration {duration}{key}{retry}"
                   f" · id `{run['id']}`")
        if run.get("error"):
            show = st.info if run["status"] == "skipped" else st.error
            show(f"The run {run['status']}: {run['error']}")
        result = run.get("result")
        steps = result.get("steps") if isinstance(result, dict) else None
        if steps:
            st.markdown("**Steps**")
            steps_list(steps)
        if result is not None:
            st.markdown("**Result**")
            st.json(result, expanded=not steps)
        st.markdown("**Logs**")
        if run.get("logs"):
            st.code(run["logs"], language=None)
        else:
            st.caption("No logs captured." if run["status"] not in ACTIVE
                       else "Logs are kept when the run finishes.")


def pick_run(runs: list[dict[str, Any]]) -> str:
    ids = [r["id"] for r in runs]
    if st.session_state.get(DETAIL) not in ids:
        st.session_state.pop(DETAIL, None)  # not in this list: show the newest run
    labels = {r["id"]: run_label(r) for r in runs}
    run_id: str = st.selectbox("Run", ids, format_func=labels.__getitem__, key=DETAIL)
    return run_id


def history_body(client: ApplianceClient, job_id: str, refreshing: bool = False) -> None:
    if refreshing:
        now = lib.fetch(lambda: client.get(f"/jobs/{quote(job_id, safe='')}"))
        if now is not None and not active(now):
            st.rerun()  # the run just finished: redraw the whole page and stop refreshing
    status = st.selectbox("Status", [ANY, *STATUSES], key=RUN_STATUS)
    answer = lib.fetch(lambda: client.job_runs(job_id, status=None if status == ANY else status,
                                               limit=HISTORY))
    if answer is None:
        return
    runs, total = answer["items"], answer["total"]
    if not runs:
        st.info("No runs match this status." if status != ANY
                else "No runs yet: it runs on its trigger, or press Run now.")
        return
    shown = f"the newest {len(runs)}" if total > len(runs) else "all"
    st.caption(f"{total} run{'s' if total != 1 else ''} · showing {shown}, newest first"
               + (f" · refreshing every {REFRESH_SECONDS}s" if refreshing else ""))
    history_table(runs)
    durations_chart(runs)
    run_detail(client, job_id, pick_run(runs))


def show_history(client: ApplianceClient, job: dict[str, Any]) -> None:
    """The run ledger of ``job``; redrawn every few seconds while a run is queued or running."""
    if active(job):
        st.fragment(history_body, run_every=REFRESH_SECONDS)(client, job["id"], refreshing=True)
    else:
        history_body(client, job["id"])


def main() -> None:
    client = lib.open_page("Jobs")
    answer = lib.fetch(client.jobs)
    if answer is None:
        return
    file_banner(answer.get("files") or [], answer.get("jobs_dir") or "the jobs folder")
    jobs = answer["items"]
    if not jobs:
        st.info(EMPTY_HINT.format(folder=answer.get("jobs_dir")))
        return
    st.subheader("Schedules")
    schedules_table(jobs)
    st.subheader("Job")
    job = pick_job(jobs)
    job_header(job)
    actions(client, job)
    st.subheader("Runs")
    show_history(client, job)


main()
