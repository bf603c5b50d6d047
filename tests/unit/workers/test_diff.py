"""Redeploy diffs over host plans: which nodes keep running, which go, what is pruned."""

from __future__ import annotations

import copy
from typing import Any

from labplan import labfile, ops
from labplan.compiler import compile_plan
from workers.diff import diff

LAB: dict[str, Any] = {
    "labfile": 1,
    "name": "pair",
    "networks": {
        "lan": {"driver": "bridge", "subnet": "10.10.0.0/24"},
        "dmz": {"driver": "bridge", "subnet": "10.20.0.0/24"},
    },
    "nodes": {
        "a": {"networks": {"lan": {}}},
        "b": {"networks": {"lan": {}, "dmz": {}}},
        "c": {"networks": {"dmz": {}}},
    },
}


def host_plan(data: dict[str, Any]) -> ops.HostPlan:
    plan = compile_plan(labfile.validate(data), deployment=3).for_host("local")
    assert plan is not None
    return plan


def changed(**edits: Any) -> dict[str, Any]:
    data = copy.deepcopy(LAB)
    for path, value in edits.items():
        *parents, key = path.split("__")
        target = data
        for part in parents:
            target = target[part]
        if value is None:
            del target[key]
        else:
            target[key] = value
    return data


def test_the_same_plan_changes_nothing() -> None:
    change = diff(host_plan(LAB), host_plan(LAB))

    assert change.unchanged and change.kept == ("a", "b", "c")


def test_a_node_added_last_keeps_the_others_and_only_rewrites_their_hosts_files() -> None:
    change = diff(host_plan(LAB), host_plan(changed(nodes__d={"networks": {"lan": {}}})))

    assert change.kept == ("a", "b", "c") and change.added == ("d",)
    assert change.stale_nodes == () and change.stale_links == ()
    assert [n.name for n in change.hosts_changed] == ["a", "b", "c"]
    assert ("10.10.0.4", "d") in change.new_hosts["a"]


def test_a_changed_limit_replaces_only_that_node() -> None:
    change = diff(
        host_plan(LAB),
        host_plan(changed(nodes__c={"networks": {"dmz": {}}, "limits": {"pids": 9}})),
    )

    assert change.kept == ("a", "b") and change.replaced == ("c",)
    [stale] = change.stale_nodes
    assert (stale.netns, stale.cgroup, stale.veths) == ("lm3-n2", "lm3/n2", ("lm3-v2x0",))
    assert change.stale_links == ()


def test_a_changed_network_replaces_every_node_joined_to_it() -> None:
    edited = changed(networks__dmz={"driver": "bridge", "subnet": "10.30.0.0/24"})

    change = diff(host_plan(LAB), host_plan(edited))

    assert change.kept == ("a",) and change.replaced == ("b", "c")
    assert change.stale_links == ("lm3-b0",)  # dmz sorts first: bridge 0


def test_a_removed_node_is_pruned_with_its_links() -> None:
    change = diff(host_plan(LAB), host_plan(changed(nodes__c=None)))

    assert change.removed == ("c",) and change.kept == ("a", "b")
    assert [n.veths for n in change.stale_nodes] == [("lm3-v2x0",)]


CHAIN: dict[str, Any] = {
    "labfile": 2,
    "name": "chain",
    "nodes": {"r1": {}, "r2": {}, "r3": {}, "r4": {}},
    "links": [
        {"endpoints": ["r1:eth1", "r2:eth1"], "ipv4": ["10.0.12.1/30", "10.0.12.2/30"]},
        {"endpoints": ["r2:eth2", "r3:eth1"]},
        {"endpoints": ["r3:eth2", "r4:eth1"]},
    ],
}


def test_a_node_replaced_takes_the_other_end_of_its_links_with_it() -> None:
    edited = copy.deepcopy(CHAIN)
    edited["nodes"]["r1"] = {"limits": {"pids": 9}}

    change = diff(host_plan(CHAIN), host_plan(edited))

    # r1's namespace goes, and with it the pair r2 has an end of: the apply makes the pair
    # again into r2, which keeps running, as r3 and r4 do.
    assert change.replaced == ("r1",) and change.kept == ("r2", "r3", "r4")
    # The pair is deleted by r1's end before its namespace goes, which the kernel frees
    # later: r2's old end is gone when the apply makes it again.
    (stale,) = change.stale_nodes
    netns = {op.node: op.netns for op in host_plan(CHAIN).ops if isinstance(op, ops.SpawnNode)}
    assert stale.peer_links == (("eth1", netns["r2"], "eth1"),)


def test_a_changed_link_replaces_both_its_ends_only() -> None:
    edited = copy.deepcopy(CHAIN)
    edited["links"][2]["mtu"] = 9000

    change = diff(host_plan(CHAIN), host_plan(edited))

    assert change.replaced == ("r3", "r4") and change.kept == ("r1", "r2")


POD: dict[str, Any] = {
    "labfile": 2,
    "name": "pod",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.10.0.0/24"}},
    "nodes": {
        "app": {"networks": {"lan": {}}},
        "bystander": {"networks": {"lan": {}}},
        "zsidecar": {"network_mode": "container:app"},
    },
}


def pod(**app: Any) -> dict[str, Any]:
    data = copy.deepcopy(POD)
    data["nodes"]["app"].update(app)
    return data


def test_a_node_in_anothers_netns_owns_none_and_goes_alone() -> None:
    without = copy.deepcopy(POD)
    del without["nodes"]["zsidecar"]
    change = diff(host_plan(POD), host_plan(without))

    assert change.removed == ("zsidecar",) and change.kept == ("app", "bystander")
    [stale] = change.stale_nodes
    assert stale.netns is None  # app's namespace stays with app


def test_a_node_made_again_takes_the_nodes_in_its_netns_with_it() -> None:
    change = diff(host_plan(POD), host_plan(pod(limits={"memory": "64M"})))

    assert change.replaced == ("app", "zsidecar") and change.kept == ("bystander",)
    assert [n.netns for n in change.stale_nodes] == ["lm3-n0", None]
