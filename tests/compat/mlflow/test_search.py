"""MLflow's search grammar, parsed and evaluated on translated runs."""

from __future__ import annotations

import pytest

from appliance.compat.mlflow import search, wire
from appliance.errors import InvalidInput


def _run(name: str, *, status: str = "FINISHED", start: int = 0, auc: float | None = None,
         alpha: str | None = None, team: str | None = None) -> wire.Run:
    return wire.Run(
        info=wire.RunInfo(run_id=name, run_uuid=name, run_name=name, experiment_id="0",
                          user_id="u", status=status, start_time=start, end_time=None,
                          artifact_uri="x", lifecycle_stage="active"),
        data=wire.RunData(
            metrics=[wire.Metric(key="auc", value=auc, timestamp=0)] if auc is not None else [],
            params=[wire.KeyValue(key="alpha", value=alpha)] if alpha else [],
            tags=[wire.KeyValue(key="team", value=team)] if team else []))


RUNS = [_run("a", auc=0.9, alpha="0.5", team="ml", start=1),
        _run("b", auc=0.7, alpha="0.1", status="FAILED", start=2),
        _run("c", team="data", start=3)]


@pytest.mark.parametrize(("text", "names"), [
    ("metrics.auc > 0.8", ["a"]),
    ("metrics.auc >= 0.7 AND params.alpha = '0.1'", ["b"]),
    ("attributes.status = 'FAILED'", ["b"]),
    ("status != 'FAILED'", ["a", "c"]),
    ("tags.team LIKE 'm%'", ["a"]),
    ("tags.team ILIKE 'DATA'", ["c"]),
    ("attributes.run_name IN ('a', 'c')", ["a", "c"]),
    ("params.`alpha` = '0.5' and metrics.auc < 1", ["a"]),
    ("", ["a", "b", "c"]),
])
def test_filter_runs_selects_what_mlflow_would(text: str, names: list[str]) -> None:
    assert [r.info.run_name for r in search.filter_runs(RUNS, text)] == names


@pytest.mark.parametrize("text", ["metrics.auc >> 1", "nonsense", "attributes.nope = 'x'",
                                  "metrics.auc > 1 OR metrics.auc < 0", "color.x = 'y'"])
def test_filter_refuses_what_it_cannot_parse(text: str) -> None:
    with pytest.raises(InvalidInput):
        search.parse_filter(text)


def test_order_runs_sorts_by_clauses_with_missing_values_last() -> None:
    assert [r.info.run_name for r in search.order_runs(RUNS, ["metrics.auc DESC"])] == \
        ["a", "b", "c"]
    assert [r.info.run_name for r in search.order_runs(RUNS, ["metrics.auc"])] == ["b", "a", "c"]
    assert [r.info.run_name for r in search.order_runs(RUNS, [])] == ["c", "b", "a"]
    with pytest.raises(InvalidInput):
        search.order_runs(RUNS, ["metrics.auc sideways"])
