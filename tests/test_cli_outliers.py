"""`appliance outliers MODEL`: the outlier share and the flagged rows, as a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

from appliance_test_support import make_settings
from cli_testing import invoke
from outlier_model import customers, out_of_range, register_churn


def test_outliers_verb_prints_the_share_per_version_and_the_flagged_rows(tmp_path: Path) -> None:
    from appliance.runtime import build

    home = tmp_path / "home"
    app = build(make_settings(home))
    try:
        register_churn(app.registry)
        app.serving.predict("churny", [*customers(20),
                                       {**out_of_range(customers(1, 3)[0]), "request_id": "odd"}])
        app.serving.log.flush()
    finally:
        app.close()

    answer = invoke(home, "outliers", "churny", "--json")
    assert answer.exit_code == 0, answer.output
    report = json.loads(answer.stdout)
    assert report["checked"] == 21 and report["outliers"] >= 1
    assert "odd" in {e["request_id"] for e in report["examples"]}

    table = invoke(home, "outliers", "churny", "--examples", "3")
    assert table.exit_code == 0, table.output
    assert "outliers of churny" in table.stdout and "most outlying rows" in table.stdout
    assert "odd" in table.stdout


def test_outliers_verb_fails_cleanly_for_an_unknown_model(tmp_path: Path) -> None:
    answer = invoke(tmp_path / "home", "outliers", "ghost")
    assert answer.exit_code != 0 and "ghost" in answer.output
