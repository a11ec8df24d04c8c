"""Contract inference benchmark: ours against ``pandera.infer_schema`` on real, time-ordered tables.

Not a test (its fast subset is tests/validate/test_contract_corpus.py). Install
the peers, then run it once:

    scripts/install-wheel.sh .venv test,bench
    .venv/bin/python bench/contracts.py              # --strict: exit 1 when a target is missed

The corpus (``contract_corpus.py`` beside this file) is 8 public tables that
ship inside pip packages (matplotlib, statsmodels, plotly), each sorted by time
and cut into 4 consecutive splits. Each inferrer infers a contract from the
first split; then every later split is checked as it is (a *natural* file:
any rejection is a false rejection) and with each of six faults injected:
a type change (numbers as text with a decimal comma), a missing column, a
null flood (70% of a column), an unseen-category flood (50% of a categorical
column, where the table has one), a unit change (x1000) and every row
duplicated x10.

Ours is the ingest path's code, ``infer_contract`` + ``validate_frame``, on
polars frames; the reference is ``pandera.infer_schema`` + ``validate(lazy=True)``
on the same frames converted to pandas. Each inferrer runs in a child process
of its own, so its wall time and its peak resident memory (``ru_maxrss``
above the child's baseline after imports and loading) are its alone.

A fault found on a split that the inferrer already rejects unfaulted is
counted, but also shown as *masked*: it says nothing about the fault.

Targets (ours): 0 false rejections on natural splits; at least 5 of 6 fault
kinds caught (every trial a rejection or a warning), and the first four
(type change, missing column, null flood, category flood) always rejected.
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import time
from collections import Counter
from dataclasses import asdict
from typing import Annotated, Any

import typer
from contract_corpus import CORPUS, FAULTS, INFERRERS, SPLITS, Trial, available, load, run_dataset
from rich.console import Console
from rich.table import Table

HARD_FAULTS = FAULTS[:4]          # must be rejections
MIN_FAULT_KINDS_CAUGHT = 5

console = Console(width=150)  # the tables stay readable in a log or a pipe
app = typer.Typer(add_completion=False)


def _run_child(inferrer: str, names: list[str], parts: int) -> dict[str, Any]:
    """In a child process: warm up, then time one inferrer over the whole corpus."""
    datasets = [d for d in CORPUS if d.name in names]
    for d in datasets:
        load(d)  # file cache and the readers warm for both inferrers alike
    run_dataset(datasets[0], inferrer, parts=parts)  # imports (pandera, pandas) and first-call costs
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    trials = [t for d in datasets for t in run_dataset(d, inferrer, parts=parts)]
    elapsed = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"trials": [asdict(t) for t in trials], "seconds": elapsed,
            "peak_mb": peak / 1024, "extra_peak_mb": (peak - base) / 1024}


def _in_child(inferrer: str, names: list[str], parts: int) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        out: dict[str, Any] = pool.apply(_run_child, (inferrer, names, parts))
    return out


def score(trials: list[Trial]) -> dict[str, Any]:
    """Natural outcomes, per fault kind the outcomes, masked trials, and the targets."""
    natural = Counter(t.outcome for t in trials if t.fault is None)
    unfaulted = {(t.dataset, t.split): t.outcome for t in trials if t.fault is None}
    faults: dict[str, dict[str, int]] = {}
    for fault in FAULTS:
        mine = [t for t in trials if t.fault == fault]
        counts = Counter(t.outcome for t in mine)
        faults[fault] = {
            "trials": len(mine),
            "rejected": counts["rejected"],
            "warning": counts["warning"],
            "missed": counts["clean"],
            "masked": sum(unfaulted[(t.dataset, t.split)] == "rejected" for t in mine),
        }
    caught = [f for f, c in faults.items() if c["trials"] and c["missed"] == 0]
    hard = [f for f in HARD_FAULTS if faults[f]["trials"] and faults[f]["rejected"] == faults[f]["trials"]]
    return {
        "natural": {k: natural[k] for k in ("clean", "warning", "rejected")},
        "faults": faults,
        "kinds_caught": caught,
        "hard_kinds_rejected": hard,
        "targets_met": natural["rejected"] == 0 and len(caught) >= MIN_FAULT_KINDS_CAUGHT
        and len(hard) == len(HARD_FAULTS),
    }


def _print(results: dict[str, dict[str, Any]], scores: dict[str, dict[str, Any]], names: list[str],
           parts: int) -> None:
    console.print(f"[bold]Contract inference on {len(names)} time-ordered tables[/bold] "
                  f"({', '.join(names)}), {parts} splits each: infer from the first, check the rest.")
    summary = Table(title="Natural later splits (any rejection is a false rejection)")
    for column in ("inferrer", "splits", "clean", "warning", "false rejections", "fault kinds caught",
                   "first four rejected", "time s", "peak MB (+ over baseline)"):
        summary.add_column(column, justify="left" if column == "inferrer" else "right")
    for name, s in scores.items():
        r = results[name]
        n = s["natural"]
        summary.add_row(
            name, str(sum(n.values())), str(n["clean"]), str(n["warning"]), str(n["rejected"]),
            f"{len(s['kinds_caught'])} / {len(FAULTS)}",
            f"{len(s['hard_kinds_rejected'])} / {len(HARD_FAULTS)}",
            f"{r['seconds']:.2f}", f"{r['peak_mb']:.0f} (+{r['extra_peak_mb']:.0f})",
        )
    console.print(summary)
    faults = Table(title="Injected faults: rejected / warning / missed (masked: found on a split "
                         "already rejected unfaulted)")
    faults.add_column("fault")
    for name in scores:
        faults.add_column(name, justify="right")
    for fault in FAULTS:
        cells = []
        for s in scores.values():
            c = s["faults"][fault]
            masked = f" ({c['masked']} masked)" if c["masked"] else ""
            cells.append(f"{c['rejected']} / {c['warning']} / {c['missed']} of {c['trials']}{masked}")
        faults.add_row(fault, *cells)
    console.print(faults)
    ours, theirs = list(results)[:2]
    ratio = results[theirs]["seconds"] / max(results[ours]["seconds"], 1e-9)
    console.print(f"time {theirs} / {ours}: {ratio:.2f}x")


@app.command()
def main(
    datasets: Annotated[list[str] | None,
                        typer.Option(help="Tables to use (default: all installed).")] = None,
    splits: Annotated[int, typer.Option(help="Consecutive splits per table.")] = SPLITS,
    strict: Annotated[bool, typer.Option(help="Exit 1 when our targets are missed.")] = False,
) -> None:
    """Ours vs pandera.infer_schema: false rejections on natural splits, faults caught, time, memory."""
    wanted = datasets or [d.name for d in CORPUS]
    names = [d.name for d in CORPUS if d.name in wanted and available(d)]
    skipped = sorted(set(wanted) - set(names))
    if skipped:
        console.print(f"[yellow]not installed, skipped: {', '.join(skipped)}[/yellow] "
                      "(scripts/install-wheel.sh .venv test,bench)")
    if not names:
        raise typer.Exit(2)
    results: dict[str, dict[str, Any]] = {}
    scores: dict[str, dict[str, Any]] = {}
    for inferrer in INFERRERS:
        console.print(f"  running {inferrer} ...")
        results[inferrer] = _in_child(inferrer, names, splits)
        scores[inferrer] = score([Trial(**t) for t in results[inferrer]["trials"]])
    _print(results, scores, names, splits)
    ours = scores[next(iter(INFERRERS))]
    met = ours["targets_met"]
    console.print(("[green]targets met[/green]" if met else "[red]targets missed[/red]") +
                  ": 0 false rejections, >= 5 of 6 fault kinds caught, the first four rejected")
    if strict and not met:
        sys.exit(1)


if __name__ == "__main__":
    app()
