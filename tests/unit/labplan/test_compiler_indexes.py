"""Kernel names stay put across a redeploy: indexes are kept for what is still there."""

from __future__ import annotations

import pytest

from labplan.compiler import Indexes, assign_indexes, compile_plan
from labplan.errors import LabfileError
from labplan.labfile import validate
from labplan.ops import CreateBridge, SpawnNode


def lab(*nodes: str, networks: tuple[str, ...] = ("lan",)) -> dict[str, object]:
    return {
        "labfile": 1,
        "name": "redeploy",
        "networks": {
            name: {"driver": "bridge", "subnet": f"10.{i}.0.0/24"}
            for i, name in enumerate(networks)
        },
        "nodes": {name: {"networks": {networks[0]: {}}} for name in nodes},
    }


def netns_of(plan_lab: dict[str, object], indexes: Indexes | None = None) -> dict[str, str | None]:
    plan = compile_plan(validate(plan_lab), deployment=7, indexes=indexes)
    return {op.node: op.netns for op in plan.hosts[0].ops if isinstance(op, SpawnNode)}


def test_without_previous_indexes_follow_name_order() -> None:
    indexes = assign_indexes(validate(lab("web", "db", "cache")))

    assert indexes.nodes == {"cache": 0, "db": 1, "web": 2}


def test_a_node_added_before_others_in_name_order_renames_nothing_that_stays() -> None:
    before = validate(lab("db", "web"))
    after = validate(lab("app", "db", "web"))

    names_before = netns_of(lab("db", "web"))
    names_after = netns_of(lab("app", "db", "web"), assign_indexes(after, assign_indexes(before)))

    assert names_after["db"] == names_before["db"] == "lm7-n0"
    assert names_after["web"] == names_before["web"] == "lm7-n1"
    assert names_after["app"] == "lm7-n2"


def test_a_removed_node_frees_its_index_for_the_next_new_one() -> None:
    first = assign_indexes(validate(lab("a", "b", "c")))
    second = assign_indexes(validate(lab("a", "c")), first)
    third = assign_indexes(validate(lab("a", "c", "d")), second)

    assert second.nodes == {"a": 0, "c": 2}
    assert third.nodes == {"a": 0, "c": 2, "d": 1}


def test_networks_keep_their_bridges_too() -> None:
    before = validate(lab("n", networks=("wan",)))
    after_tree = lab("n", networks=("wan", "alpha"))
    after = validate(after_tree)
    plan = compile_plan(after, deployment=7, indexes=assign_indexes(after, assign_indexes(before)))

    bridges = sorted(op.name for op in plan.hosts[0].ops if isinstance(op, CreateBridge))
    assert assign_indexes(after, assign_indexes(before)).networks == {"wan": 0, "alpha": 1}
    assert bridges == ["lm7-b0", "lm7-b1"]


def test_indexes_round_trip_through_json() -> None:
    indexes = assign_indexes(validate(lab("x", "y")))

    assert Indexes.from_dict(indexes.as_dict()) == indexes


def test_indexes_that_do_not_match_the_lab_are_refused() -> None:
    stale = Indexes({"gone": 0}, {"lan": 0})

    with pytest.raises(LabfileError) as caught:
        compile_plan(validate(lab("web")), deployment=7, indexes=stale)

    assert [str(e) for e in caught.value.errors] == [
        "indexes.nodes: the nodes indexes do not match the lab's nodes"
    ]
