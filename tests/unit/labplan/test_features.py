"""What a plan needs from a host, and what a host's reported facts lack."""

from __future__ import annotations

from labplan import features
from labplan.compiler import compile_plan
from labplan.labfile import validate
from labplan.ops import HostPlan

HYBRID = {
    "cgroup_mode": "hybrid",
    "cgroup_controllers": ["cpu", "memory", "pids", "blkio"],
    "link_kinds": ["veth", "bridge", "macvlan", "vxlan"],
    "qdiscs": ["tbf", "htb"],
    "user_namespaces": True,
    "nftables": True,
}


def host_plan(networks: dict[str, object], node: dict[str, object]) -> HostPlan:
    tree = {"labfile": 1, "name": "needs", "networks": networks, "nodes": {"a": node}}
    return compile_plan(validate(tree), deployment=3).hosts[0]


def test_a_bridge_lab_with_limits_needs_links_cgroups_nat_and_user_namespaces() -> None:
    plan = host_plan(
        {"lan": {"subnet": "10.1.0.0/24"}},
        {"networks": {"lan": {}}, "limits": {"memory": "64M", "pids": 10}},
    )

    assert features.requirements(plan) == [
        "cgroup controller memory",
        "cgroup controller pids",
        "bridge",
        "nftables",
        "veth",
        "user namespaces",
    ]
    assert features.missing(HYBRID, plan) == []


def test_a_host_without_ipvlan_or_netem_is_told_which_it_lacks() -> None:
    plan = host_plan(
        {
            "lan": {"subnet": "10.1.0.0/24"},
            "l2": {
                "driver": "ipvlan",
                "parent": "lan",
                "subnet": "10.2.0.0/24",
                "shaping": {"delay": "20ms"},
            },
        },
        {"networks": {"l2": {}}},
    )

    assert features.missing(HYBRID, plan) == ["ipvlan", "netem"]


def test_io_limits_need_blkio_on_v1_and_io_on_v2() -> None:
    plan = host_plan({}, {"limits": {"io_weight": 100}})
    v2 = {**HYBRID, "cgroup_mode": "v2", "cgroup_controllers": ["cpu", "memory", "pids"]}

    assert features.missing(HYBRID, plan) == []
    assert features.missing(v2, plan) == ["cgroup controller io"]


def test_links_of_one_endpoint_need_their_kinds_and_a_host_with_them_has_them() -> None:
    tree = {
        "labfile": 2,
        "name": "ports",
        "nodes": {"a": {}},
        "links": [
            {"type": "dummy", "endpoints": ["a:lo1"]},
            {"type": "vxlan", "endpoints": ["a:vx0"], "remote": "192.0.2.7", "vni": 7},
        ],
    }
    plan = compile_plan(validate(tree), deployment=3).hosts[0]

    assert features.missing(HYBRID, plan) == ["dummy"]
    with_dummy = {**HYBRID, "link_kinds": [*HYBRID["link_kinds"], "dummy"]}  # type: ignore[misc]
    assert features.missing(with_dummy, plan) == []
