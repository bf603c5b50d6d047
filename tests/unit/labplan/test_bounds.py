"""Bounds on what a lab makes in the kernel: a 1 MiB labfile cannot become 100,000 veths,
the benchmark's 1,000 nodes and every example pass, and an agent refuses a forged plan
past the bounds before it looks at a single op."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_codec import every_kind_lab

from bench.labmgr_run import labfile as bench_labfile
from labplan import bounds
from labplan.codec import plan_from_dict, plan_to_dict
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.labfile import load, validate
from labplan.reader import MAX_BYTES

EXAMPLES = sorted((Path(__file__).parents[3] / "examples").glob("*.yaml"))


def refusal(data: object) -> list[str]:
    with pytest.raises(LabfileError) as raised:
        validate(data)
    return [str(e) for e in raised.value.errors]


def subnet(i: int) -> str:
    return f"10.{i // 256}.{i % 256}.0/24"


def attachment_flood() -> str:
    """A labfile of at most 1 MiB with as many attachments as the per-node bound allows:
    1,000 bridges and 1,000 nodes on 64 of them each."""
    tree = {
        "labfile": 1,
        "name": "flood",
        "networks": {f"b{i}": {"subnet": subnet(i)} for i in range(1000)},
        "nodes": {
            f"n{i}": {"networks": {f"b{(i + k * 15) % 1000}": {} for k in range(64)}}
            for i in range(1000)
        },
    }
    return json.dumps(tree, separators=(",", ":"))


def test_a_1_mib_labfile_built_for_attachments_is_refused_with_its_counts() -> None:
    text = attachment_flood()
    assert len(text.encode()) <= MAX_BYTES

    with pytest.raises(LabfileError) as raised:
        load(text)

    assert [str(e) for e in raised.value.errors] == [
        "nodes: the lab attaches nodes to networks 64,000 times (each is a veth, macvlan, "
        "ipvlan or vlan link); at most 4,000",
        "nodes: the lab makes 199,001 kernel objects (links 129,000, addresses 65,000, "
        "cgroups 1,001, netns 1,000, routes 1,000, firewall rules 1,000, processes 1,000); "
        "at most 20,000",
    ]


def test_a_node_on_too_many_networks_is_refused_on_its_networks(tree: dict[str, Any]) -> None:
    tree["networks"] = {f"b{i}": {"subnet": subnet(i)} for i in range(100)}
    tree["nodes"] = {"web": {"networks": {f"b{i}": {} for i in range(100)}}}
    assert refusal(tree) == ["nodes.web.networks: a node has at most 64 networks; this one has 100"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "routes",
            [{"dst": f"10.{i // 256}.{i % 256}.0/24", "via": "10.10.0.1"} for i in range(300)],
            "nodes.web.routes: a node has at most 256 routes; this one has 300",
        ),
        (
            "environment",
            {f"V{i}": "x" for i in range(257)},
            "nodes.web.environment: a node has at most 256 environment variables; this one has 257",
        ),
        (
            "limits",
            {"io": [{"device": f"8:{i}", "rbps": "1M"} for i in range(17)]},
            "nodes.web.limits.io: a node has at most 16 io throttles; this one has 17",
        ),
    ],
)
def test_a_node_past_a_bound_of_its_own_is_refused_naming_the_field(
    tree: dict[str, Any], key: str, value: object, message: str
) -> None:
    tree["nodes"]["web"][key] = value
    assert refusal(tree) == [message]


def test_a_node_at_its_bounds_is_accepted(tree: dict[str, Any]) -> None:
    tree["networks"] = {f"b{i}": {"subnet": subnet(i)} for i in range(64)}
    tree["nodes"] = {
        "web": {
            "networks": {f"b{i}": {} for i in range(64)},
            "environment": {f"V{i}": "x" for i in range(256)},
            "limits": {"io": [{"device": f"8:{i}", "rbps": "1M"} for i in range(16)]},
            "routes": [{"dst": f"172.16.{i}.0/24", "via": "10.0.0.1"} for i in range(256)],
        }
    }
    assert len(validate(tree).node("web").networks) == 64


def test_the_benchmarks_thousand_nodes_pass_from_labfile_to_agent() -> None:
    lab = validate(bench_labfile(1000))
    plan = compile_plan(lab, deployment=990_001)

    assert bounds.lab_objects(lab).total == 8002
    # 11,004 ops: each node's 11, the bridge's create, guard, up, address and NAT.
    assert len(plan_from_dict(plan_to_dict(plan)).hosts[0].ops) == 11004


def test_a_thousand_nodes_on_four_networks_each_pass() -> None:
    tree = bench_labfile(1000)
    tree["networks"] = {f"lan{k}": {"subnet": f"10.20{k}.0.0/16"} for k in range(4)}
    for node in tree["nodes"].values():
        node["networks"] = {f"lan{k}": {} for k in range(4)}
    lab = validate(tree)
    assert bounds.lab_objects(lab).total <= bounds.MAX_KERNEL_OBJECTS
    compile_plan(lab, deployment=1)


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_the_count_of_a_lab_is_what_its_plan_makes_on_one_host(example: Path) -> None:
    lab = load(example.read_text())
    plan = compile_plan(lab, deployment=1, placement={n.name: "local" for n in lab.nodes})
    assert bounds.lab_objects(lab) == bounds.ops_objects(plan.hosts[0].ops)


def test_the_count_of_a_lab_with_every_kind_of_op_is_what_its_plan_makes() -> None:
    lab = every_kind_lab()
    plan = compile_plan(lab, deployment=1, placement={n.name: "local" for n in lab.nodes})
    made = bounds.ops_objects(plan.hosts[0].ops)
    assert bounds.lab_objects(lab) == made
    assert made.total <= sum(len(h.ops) for h in plan.hosts) <= made.total * 5 // 2


def overlays_on_two_hosts() -> dict[str, Any]:
    """1,000 overlays, each with two nodes on host a and two on host b: within the bounds
    on one host, past them once each host holds a bridge and a vxlan of every overlay."""
    nodes: dict[str, Any] = {
        f"{h}{i}": {"host": h, "networks": {}} for h in "ab" for i in range(32)
    }
    for j in range(1000):
        for h in "ab":
            for node in (f"{h}{(2 * j) % 32}", f"{h}{(2 * j + 1) % 32}"):
                nodes[node]["networks"][f"o{j}"] = {}
    return {
        "labfile": 1,
        "name": "spread",
        "networks": {f"o{j}": {"driver": "overlay", "subnet": subnet(j)} for j in range(1000)},
        "nodes": nodes,
    }


def test_a_lab_whose_plan_passes_the_bounds_across_hosts_is_refused_at_compile() -> None:
    lab = validate(overlays_on_two_hosts())
    assert bounds.lab_objects(lab).total <= bounds.MAX_KERNEL_OBJECTS

    with pytest.raises(LabfileError) as raised:
        compile_plan(lab, deployment=1, underlay={"a": "198.51.100.1", "b": "198.51.100.2"})

    assert [str(e) for e in raised.value.errors] == [
        "hosts: the plan makes 20,258 kernel objects on its hosts (links 12,000, "
        "addresses 5,000, fdb entries 2,000, firewall rules 1,000, cgroups 66, netns 64, "
        "routes 64, processes 64); at most 20,000"
    ]


# --- the agent's side: a forged plan ----------------------------------------------------


def forged_plan(ops: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": 1,
        "lab": "forged",
        "deployment": "lm1",
        "hosts": [{"host": "local", "deployment": "lm1", "group": 0x10001, "ops": ops}],
    }


def test_an_agent_refuses_a_plan_of_100000_ops_before_decoding_one() -> None:
    # Not one of these ops is valid: had the agent looked at them, it would say so.
    ops = [{"op": "create_veth_pair", "name": "eth0"}] * 100_000

    with pytest.raises(LabfileError) as raised:
        plan_from_dict(forged_plan(ops))

    assert [str(e) for e in raised.value.errors] == [
        "hosts: the plan holds 100,000 operations on its hosts; at most 50,000"
    ]


def test_an_agent_refuses_a_plan_of_valid_ops_making_too_many_objects() -> None:
    ops = [{"op": "create_netns", "netns": f"lm1-n{i % 36}"} for i in range(20_001)]

    with pytest.raises(LabfileError) as raised:
        plan_from_dict(forged_plan(ops))

    assert [str(e) for e in raised.value.errors] == [
        "hosts: the plan makes 20,001 kernel objects on its hosts (netns 20,001); at most 20,000"
    ]


def spawn(**changes: Any) -> dict[str, Any]:
    op = {
        "op": "spawn_node",
        "node": "web",
        "netns": "lm1-n0",
        "cgroup": "lm1/n0",
        "hostname": "web",
        "namespaces": ["mnt", "uts", "ipc", "pid", "cgroup", "user"],
        "privileged": False,
        "rootfs": "host",
        "command": [],
        "environment": [],
        "workdir": "/",
        "hosts": [],
    }
    return {**op, **changes}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"hosts": [["10.0.0.1", f"h{i}"] for i in range(1003)]},
            "hosts.local.ops.0.hosts: a node's /etc/hosts has at most 1,002 lines",
        ),
        (
            {"environment": [[f"V{i:03}", "x"] for i in range(257)]},
            "hosts.local.ops.0.environment: a node has at most 256 environment variables",
        ),
    ],
)
def test_an_agent_refuses_a_node_past_its_bounds(changes: dict[str, Any], message: str) -> None:
    assert plan_from_dict(forged_plan([spawn()])).hosts[0].ops  # the op itself is fine

    with pytest.raises(LabfileError) as raised:
        plan_from_dict(forged_plan([spawn(**changes)]))

    assert [str(e) for e in raised.value.errors] == [message]


def test_an_agent_refuses_shared_and_own_lines_past_the_bound() -> None:
    data = forged_plan([spawn(hosts={"shared": True, "own": [[0, "10.0.0.9", "extra"]]})])
    data["hosts"][0]["etc_hosts"] = [["10.0.0.1", f"h{i}"] for i in range(1002)]

    with pytest.raises(LabfileError) as raised:
        plan_from_dict(data)

    assert [str(e) for e in raised.value.errors] == [
        "hosts.local.ops.0.hosts: a node's /etc/hosts has at most 1,002 lines"
    ]
