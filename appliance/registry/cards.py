"""Model cards: generated from what the registry knows, as JSON and Markdown.

The card is built from stored facts only (the version row, its run, its alias
events). The Markdown renderer must never fail on a stored card: every section
tolerates a missing or older-shaped value, and values that come from the data
(group names, warnings) are escaped so they cannot break the document.
"""

from __future__ import annotations

import json
from typing import Any

from appliance.domain.cards import CardEdge, ModelCard, SearchSummary, TrainingData
from appliance.domain.explain import GlobalImportances
from appliance.domain.privacy import ErasureNote
from appliance.domain.registry import AliasEvent, ModelVersion

_NO_FAIRNESS = "No sensitive columns were named in the job file."


def build_card(
    *,
    model: str,
    version: ModelVersion,
    run: dict[str, Any] | None,
    purpose: str | None,
    limitations: list[str],
    contract_version: int | None,
    lineage: list[CardEdge],
    promotions: list[AliasEvent],
    warnings: list[str] | None = None,
    erased: list[ErasureNote] | None = None,
    importances: dict[str, Any] | None = None,
) -> ModelCard:
    return ModelCard(
        model=model,
        version=version.number,
        purpose=purpose or "not stated in the job file",
        task=version.task,
        flavor=version.flavor,
        estimator=(run or {}).get("params", {}).get("estimator"),
        training_data=TrainingData(dataset=version.dataset, version=version.dataset_version,
                                   contract_version=contract_version, lineage=lineage),
        metrics=version.metrics or {},
        search=_search(run),
        parity=version.parity,
        fairness=version.fairness,
        training_warnings=[str(w) for w in warnings or []],
        signature=version.signature,
        onnx_sha256=version.onnx_sha256,
        run_id=version.run_id,
        known_limitations=limitations or [
            "Trained and evaluated on a single holdout split of one dataset version.",
            "Performance on data that drifts from the training data is not guaranteed.",
        ],
        promotions=promotions,
        created_by=version.created_by,
        created_at=version.created_at,
        erased_data=erased or [],
        importances=_importances(importances),
    )


def _importances(stored: Any) -> GlobalImportances | None:
    """The stored importances, or None when absent or of a shape this code cannot read."""
    from pydantic import ValidationError

    if not isinstance(stored, dict):
        return None
    try:
        return GlobalImportances.model_validate(stored)
    except ValidationError:
        return None


def _search(run: dict[str, Any] | None) -> SearchSummary | None:
    """The hyperparameter search behind a run: its trial count (child runs of kind trial)."""
    trials = [c for c in (run or {}).get("children") or [] if c.get("kind") == "trial"]
    if not trials:
        return None
    return SearchSummary(trials=len(trials))


def render_markdown(card: ModelCard) -> str:
    lines = [f"# Model card: {card.model} v{card.version}", "", "## Purpose", "",
             _text(card.purpose), "", "## Model", ""]
    lines += [f"- Task: {card.task or 'n/a'}", f"- Flavor: {card.flavor or 'n/a'}",
              f"- Estimator: {_text(card.estimator or 'n/a')}",
              f"- ONNX sha256: `{card.onnx_sha256}`",
              f"- Training run: `{card.run_id or 'n/a'}`"]
    if card.search:
        lines.append(f"- Hyperparameter search: {card.search.trials} trials; the best "
                     "parameters were refitted on the whole training split")
    data = card.training_data
    lines += ["", "## Training data", "",
              f"- Dataset: {data.dataset or 'n/a'} version {data.version or 'n/a'}",
              f"- Contract version: {data.contract_version or 'n/a'}"]
    for edge in data.lineage:
        lines.append(f"- Lineage: `{edge.src}` -> `{edge.dst}` ({edge.relation})")
    for note in card.erased_data:
        lines.append(f"- **Trained on data since erased**: {_text(note.sentence())}")
    lines += ["", "## Training warnings", ""]
    warnings = card.training_warnings
    lines += [f"- {_text(w)}" for w in warnings] if warnings else ["None."]
    lines += ["", "## Metrics (holdout)", ""]
    metrics = card.metrics
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {_cell(k)} | {_num(v)} |" for k, v in sorted(metrics.items())]
    else:
        lines.append("No metrics recorded.")
    lines += ["", "## Feature importance", "", *_importance_lines(card.importances)]
    lines += ["", "## ONNX parity", "", _parity(card.parity)]
    lines += ["", "## Fairness", "", *_fairness(card.fairness)]
    lines += ["", "## Known limitations", ""]
    lines += [f"- {_text(x)}" for x in card.known_limitations]
    lines += ["", "## Promotions", ""]
    if card.promotions:
        lines += [f"- {p.at.isoformat()}: `{p.alias}` {p.action} by {p.actor}"
                  + (" (forced)" if p.forced else "") + f": {_text(p.reason or '-')}"
                  for p in card.promotions]
    else:
        lines.append("Never promoted.")
    return "\n".join(lines) + "\n"


def _importance_lines(imp: GlobalImportances | None) -> list[str]:
    if imp is None:
        return ["Not computed: the version predates explanations or was uploaded as ONNX."]
    native = imp.native_kind or "none"
    lines = [f"Permutation importance on {imp.rows} holdout rows through the ONNX model "
             f"({imp.repeats} shuffles each, seed {imp.seed}): the loss of {_cell(imp.metric)} "
             f"(baseline {_num(imp.baseline)}) when a column is shuffled. Native importance: "
             f"{native} (share of 1).", "",
             "| feature | permutation | std | native |", "|---|---|---|---|"]
    lines += [f"| {_cell(f.feature)} | {_num(f.permutation)} | {_num(f.permutation_std)} | "
              f"{_num(f.native)} |" for f in imp.features]
    return lines


def _parity(parity: dict[str, Any] | None) -> str:
    if not parity:
        return "Not checked: the model was registered as ONNX, with no native model."
    tolerance = parity.get("tolerance")
    if isinstance(tolerance, dict):  # per output: {"probability_abs": 1e-05, "labels": ...}
        tolerance = ", ".join(f"{k.replace('_', ' ')} {_num(v)}" for k, v in tolerance.items()
                              if k not in ("flavor", "task"))
    return (f"{'Passed' if parity.get('passed') else 'FAILED'}: {parity.get('rows_checked')} rows "
            f"({parity.get('threshold_rows', 0)} at split thresholds), max abs difference "
            f"{_num(parity.get('max_abs_diff'))}, tolerance {_text(tolerance)}.")


def _fairness(fairness: dict[str, Any] | None) -> list[str]:
    """The fairness section: verdict, gap metrics against their limits, per-group table."""
    if not fairness:
        return [_NO_FAIRNESS]
    sensitive = [str(c) for c in fairness.get("sensitive") or []]
    lines = []
    if sensitive:
        lines.append("Sensitive columns: " + ", ".join(f"`{_cell(c)}`" for c in sensitive) + ".")
    if "passed" in fairness:
        lines.append("Thresholds met." if fairness.get("passed") else "Thresholds NOT met.")
    thresholds = fairness.get("thresholds") or {}
    if lines:
        lines.append("")
    for key in ("demographic_parity_difference", "equalized_odds_difference"):
        value, limit = fairness.get(key), thresholds.get(f"max_{key}")
        if value is None and limit is None:
            continue
        shown = _num(value) if value is not None else "not computed"
        lines.append(f"- {key.replace('_', ' ')}: {shown}"
                     + (f" (limit {_num(limit)})" if limit is not None else ""))
    for violation in fairness.get("violations") or []:
        lines.append(f"- Violation: {_text(violation)}")
    rows = _group_rows(fairness.get("by_group"), sensitive)
    if rows:
        keys = list(dict.fromkeys(k for _, values in rows for k in values))
        groups = list(dict.fromkeys(k for group, _ in rows for k in group))
        lines += ["", "| " + " | ".join(_cell(c) for c in groups + keys) + " |",
                  "|" + "---|" * (len(groups) + len(keys))]
        for group, values in rows:
            cells = [_cell(group.get(c, "")) for c in groups] + [_num(values.get(k)) for k in keys]
            lines.append("| " + " | ".join(cells) + " |")
    return lines or [_NO_FAIRNESS]


def _group_rows(by_group: Any, sensitive: list[str]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Per-group rows as (group columns, metric values).

    The stored shape is a list of ``{"group": {column: value}, metric: value}``;
    a mapping ``{column: {group: {metric: value}}}`` (an older shape) is read too.
    """
    rows: list[tuple[dict[str, Any], dict[str, Any]]] = []
    if isinstance(by_group, list):
        for entry in by_group:
            if not isinstance(entry, dict):
                continue
            group = entry.get("group")
            group = group if isinstance(group, dict) else {
                (sensitive[0] if sensitive else "group"): group}
            rows.append((group, {k: v for k, v in entry.items() if k != "group"}))
    elif isinstance(by_group, dict):
        for column, groups in by_group.items():
            for name, values in (groups or {}).items() if isinstance(groups, dict) else []:
                rows.append(({str(column): name}, values if isinstance(values, dict) else {}))
    return rows


def _text(value: Any) -> str:
    """One line of prose: newlines folded, so a value cannot start a heading or a list."""
    return " ".join(str(value).split())


def _cell(value: Any) -> str:
    """A table cell: one line, pipes escaped."""
    return _text(value).replace("|", "\\|")


def _num(v: Any) -> str:
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int | str) or v is None:
        return _cell(v)
    return _cell(json.dumps(v, default=str))
