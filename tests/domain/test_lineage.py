"""Lineage node ids: one module builds them (the strings stored since the first release) and
parses them back."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from appliance.domain import lineage as ln
from appliance.errors import InvalidInput

SHA = "ab" * 32
RUN = uuid.UUID("12345678-1234-5678-1234-567812345678")
START = dt.datetime(2026, 11, 27, 4, 17, 31, tzinfo=dt.UTC)
END = dt.datetime(2026, 11, 28, 5, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))


@pytest.mark.parametrize(("built", "text"), [
    (ln.file_node(SHA), f"file:{SHA}"),
    (ln.dataset_node("customers"), "dataset:customers"),
    (ln.version_node("customers", 3), "dataset:customers@3"),
    (ln.run_node(RUN), f"run:{RUN}"),
    (ln.model_node("churn", 2), "model:churn@2"),
    (ln.artifact_node(SHA), f"artifact:{SHA}"),
    (ln.alias_node("churn", "champion"), "alias:churn:champion"),
    (ln.alias_node("churn", "champion", 3), "alias:churn:champion:3"),
    (ln.predictions_node("churn", 2, START, END),
     "predictions:churn@2:20261127T041731Z..20261128T030000Z"),
    (ln.drift_node(RUN), f"drift:{RUN}"),
    (ln.erasure_node(RUN), f"erasure:{RUN}"),
])
def test_build_node_gives_the_stored_string_and_passes_the_check(built: str, text: str) -> None:
    assert built == text
    assert ln.check_node(built) == built


def test_build_nodes_cover_every_kind_the_check_knows() -> None:
    built = {ln.node_kind(n) for n in (
        ln.file_node(SHA), ln.version_node("d", 1), ln.run_node(RUN), ln.model_node("m", 1),
        ln.artifact_node(SHA), ln.alias_node("m", "champion"),
        ln.predictions_node("m", 1, START, END), ln.drift_node(RUN), ln.erasure_node(RUN))}
    assert built == set(ln.KINDS)


def test_parse_node_splits_each_kind_into_its_parts() -> None:
    assert ln.parse_node("dataset:customers@3") == ln.Node("dataset:customers@3", "dataset",
                                                           "customers", 3)
    assert ln.parse_node("dataset:customers").number is None
    assert ln.parse_node("model:churn@12").number == 12
    move = ln.parse_node("alias:churn:champion:4")
    assert (move.key, move.alias, move.move) == ("churn", "champion", 4)
    assert ln.parse_node("alias:churn:champion").move is None
    window = ln.parse_node(ln.predictions_node("churn", 2, START, END))
    assert (window.key, window.number, window.start, window.end) == (
        "churn", 2, "20261127T041731Z", "20261128T030000Z")
    assert ln.parse_node(ln.run_node(RUN)).key == str(RUN)
    assert ln.parse_node(ln.file_node(SHA)).key == SHA


@pytest.mark.parametrize("node", ["", "dataset", "nope:x", "dataset:Bad", "dataset:x@0",
                                  "run:not-a-uuid", "alias:churn", "x" * 300, 7])
def test_parse_node_refuses_a_malformed_id(node: object) -> None:
    with pytest.raises(InvalidInput):
        ln.parse_node(node)


def test_node_label_reads_each_kind() -> None:
    assert ln.node_label("dataset:customers@3") == "customers v3"
    assert ln.node_label("alias:churn:champion:2") == "churn champion move 2"
    assert ln.node_label(ln.predictions_node("churn", 2, START, END)) == \
        "churn v2 predictions 2026-11-27 04:17 to 2026-11-28 03:00"
