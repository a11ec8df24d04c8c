"""Model cards: generated from what the registry knows, as JSON and Markdown."""

from __future__ import annotations

from typing import Any


def build_card(
    *,
    model: str,
    version: dict[str, Any],
    run: dict[str, Any] | None,
    purpose: str | None,
    limitations: list[str],
    contract_version: int | None,
    lineage: list[dict[str, Any]],
    promotions: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "model": model,
        "version": version["number"],
        "purpose": purpose or "not stated in the job file",
        "task": version.get("task"),
        "flavor": version.get("flavor"),
        "estimator": (run or {}).get("params", {}).get("estimator"),
        "training_data": {
            "dataset": version.get("dataset"),
            "version": version.get("dataset_version"),
            "contract_version": contract_version,
            "lineage": lineage,
        },
        "metrics": version.get("metrics") or {},
        "parity": version.get("parity"),
        "fairness": version.get("fairness"),
        "signature": version.get("signature"),
        "onnx_sha256": version.get("onnx_sha256"),
        "run_id": version.get("run_id"),
        "known_limitations": limitations or [
            "Trained and evaluated on a single holdout split of one dataset version.",
            "Performance on data that drifts from the training data is not guaranteed.",
        ],
        "promotions": promotions,
        "created_by": version.get("created_by"),
        "created_at": version.get("created_at"),
    }


def render_markdown(card: dict[str, Any]) -> str:
    lines = [f"# Model card: {card['model']} v{card['version']}", "", "## Purpose", "",
             card["purpose"], "", "## Model", ""]
    lines += [f"- Task: {card.get('task') or 'n/a'}", f"- Flavor: {card.get('flavor') or 'n/a'}",
              f"- Estimator: {card.get('estimator') or 'n/a'}",
              f"- ONNX sha256: `{card.get('onnx_sha256')}`",
              f"- Training run: `{card.get('run_id') or 'n/a'}`", ""]
    data = card["training_data"]
    lines += ["## Training data", "",
              f"- Dataset: {data.get('dataset') or 'n/a'} version {data.get('version') or 'n/a'}",
              f"- Contract version: {data.get('contract_version') or 'n/a'}"]
    for edge in data.get("lineage") or []:
        lines.append(f"- Lineage: `{edge['src']}` -> `{edge['dst']}` ({edge['relation']})")
    lines += ["", "## Metrics (holdout)", ""]
    metrics = card.get("metrics") or {}
    if metrics:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_num(v)} |" for k, v in sorted(metrics.items())]
    else:
        lines.append("No metrics recorded.")
    parity = card.get("parity")
    lines += ["", "## ONNX parity", ""]
    if parity:
        lines.append(
            f"{'Passed' if parity.get('passed') else 'FAILED'}: {parity.get('rows_checked')} rows "
            f"({parity.get('threshold_rows', 0)} at split thresholds), max abs difference "
            f"{_num(parity.get('max_abs_diff'))}, tolerance {parity.get('tolerance')}.")
    else:
        lines.append("Not checked: the model was registered as ONNX, with no native model.")
    fairness = card.get("fairness")
    lines += ["", "## Fairness", ""]
    if fairness:
        for key in ("demographic_parity_difference", "equalized_odds_difference"):
            if fairness.get(key) is not None:
                lines.append(f"- {key.replace('_', ' ')}: {_num(fairness[key])}")
        for column, groups in (fairness.get("by_group") or {}).items():
            lines += ["", f"By `{column}`:", "", "| group | " + " | ".join(_metric_names(groups)) + " |",
                      "|---|" + "---|" * len(_metric_names(groups))]
            for group, values in groups.items():
                lines.append(f"| {group} | " + " | ".join(_num(values.get(m))
                                                          for m in _metric_names(groups)) + " |")
    else:
        lines.append("No sensitive columns were named in the job file.")
    lines += ["", "## Known limitations", ""] + [f"- {x}" for x in card["known_limitations"]]
    lines += ["", "## Promotions", ""]
    if card["promotions"]:
        lines += [f"- {p['at']}: `{p['alias']}` {p['action']} by {p['actor']}"
                  + (" (forced)" if p.get("forced") else "") + f": {p['reason'] or '-'}"
                  for p in card["promotions"]]
    else:
        lines.append("Never promoted.")
    return "\n".join(lines) + "\n"


def _metric_names(groups: dict[str, dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for values in groups.values():
        names += [k for k in values if k not in names]
    return names


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
