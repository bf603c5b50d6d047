"""Labfile 2 VLANs: vlan_filtering bridges with access and trunk ports, and the vlan
driver's 802.1Q sub-interfaces, validated, exported, compiled, rendered and decoded."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labplan import features, labfile
from labplan.codec import plan_from_dict, plan_to_dict
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.ops import (
    AddBridgeVlan,
    AttachToBridge,
    CreateBridge,
    CreateVethPair,
    CreateVlan,
    SetLinkUp,
    SetPortVlans,
)
from labplan.render import render_plan

VLANS: dict[str, Any] = {
    "labfile": 2,
    "name": "vlans",
    "networks": {
        "lan": {"driver": "bridge", "subnet": "10.10.0.0/24", "vlan_filtering": True},
        "v100": {"driver": "vlan", "parent": "lan", "id": 100, "subnet": "10.100.0.0/24"},
    },
    "nodes": {
        "r1": {"networks": {"lan": {"ipv4": "10.10.0.11", "vlan": 10}}},
        "sw": {"networks": {"lan": {"vlans": [10, 20]}}},
        "h1": {"networks": {"v100": {}}},
    },
}


def vlans() -> dict[str, Any]:
    return copy.deepcopy(VLANS)


def errors(document: dict[str, Any]) -> list[str]:
    with pytest.raises(LabfileError) as caught:
        labfile.validate(document)
    return [str(e) for e in caught.value.errors]


def test_it_reads_access_and_trunk_ports_and_a_vlan_network() -> None:
    lab = labfile.validate(vlans())
    assert lab.version == 2
    assert lab.network("lan").vlan_filtering is True
    assert lab.network("v100").vlan_id == 100
    r1, sw = lab.node("r1").networks[0], lab.node("sw").networks[0]
    assert (r1.vlan, r1.vlans) == (10, ())
    assert (sw.vlan, sw.vlans) == (None, (10, 20))


def test_an_export_says_the_vlans_and_reads_back_the_same() -> None:
    lab = labfile.validate(vlans())
    document = labfile.dump(lab)
    assert document["networks"]["lan"]["vlan_filtering"] is True
    assert document["networks"]["v100"]["id"] == 100
    assert document["nodes"]["r1"]["networks"]["lan"]["vlan"] == 10
    assert document["nodes"]["sw"]["networks"]["lan"]["vlans"] == [10, 20]
    assert "vlan" not in document["nodes"]["sw"]["networks"]["lan"]
    assert labfile.validate(document) == lab


def test_a_v1_file_has_no_vlan_keys() -> None:
    document = vlans()
    document["labfile"] = 1
    del document["networks"]["v100"], document["nodes"]["h1"]
    assert errors(document) == [
        "networks.lan.vlan_filtering: vlan_filtering is a labfile 2 key; write labfile: 2 at "
        "the top of the file to use it",
        "nodes.r1.networks.lan.vlan: vlan is a labfile 2 key; write labfile: 2 at the top of "
        "the file to use it",
        "nodes.sw.networks.lan.vlans: vlans is a labfile 2 key; write labfile: 2 at the top of "
        "the file to use it",
    ]


def test_a_plain_bridge_exports_as_v1_without_vlan_filtering() -> None:
    document = {"labfile": 1, "name": "plain", "networks": {"lan": {"subnet": "10.1.0.0/24"}}}
    exported = labfile.dump(labfile.validate(document))
    assert exported["labfile"] == 1
    assert "vlan_filtering" not in exported["networks"]["lan"]


def test_it_refuses_vlans_on_a_bridge_without_vlan_filtering() -> None:
    document = vlans()
    document["networks"]["lan"]["vlan_filtering"] = False
    assert errors(document) == [
        "nodes.r1.networks.lan.vlan: lan is not a vlan_filtering bridge; add vlan_filtering: "
        "true to networks.lan",
        "nodes.sw.networks.lan.vlans: lan is not a vlan_filtering bridge; add vlan_filtering: "
        "true to networks.lan",
    ]


def test_vlan_filtering_and_vlans_belong_to_bridges_only() -> None:
    document = vlans()
    document["networks"]["mv"] = {
        "driver": "macvlan",
        "parent": "host:eth9",
        "subnet": "10.20.0.0/24",
        "vlan_filtering": True,
    }
    document["nodes"]["m"] = {"networks": {"mv": {"vlan": 10}}}
    assert errors(document) == [
        "networks.mv.vlan_filtering: vlan_filtering is not an option of the macvlan driver",
        "nodes.m.networks.mv.vlan: vlan is not an option of the macvlan driver",
    ]


@pytest.mark.parametrize(
    ("port", "message"),
    [
        (
            {"vlan": 0},
            "nodes.r1.networks.lan.vlan: 0 is out of range: vlan must be between 1 and 4094",
        ),
        (
            {"vlan": 4095},
            "nodes.r1.networks.lan.vlan: 4095 is out of range: vlan must be between 1 and 4094",
        ),
        (
            {"vlans": [10, 5000]},
            "nodes.r1.networks.lan.vlans.1: 5000 is out of range: vlan must be between 1 and 4094",
        ),
        (
            {"vlans": [10, 20, 10]},
            "nodes.r1.networks.lan.vlans.2: 10 is already listed (nodes.r1.networks.lan.vlans.0)",
        ),
        (
            {"vlan": 10, "vlans": [20, 10]},
            "nodes.r1.networks.lan.vlans.1: 10 is this port's untagged VLAN (vlan: 10); vlans "
            "lists the VLANs it carries tagged",
        ),
        (
            {"vlans": [1]},
            "nodes.r1.networks.lan.vlans.0: 1 is this port's untagged VLAN (the bridge's "
            "default); vlans lists the VLANs it carries tagged",
        ),
    ],
)
def test_it_refuses_a_port_vlan_a_bridge_cannot_take(port: dict[str, Any], message: str) -> None:
    document = vlans()
    document["nodes"]["r1"]["networks"]["lan"] = port
    assert errors(document) == [message]


def test_a_vlan_network_needs_its_id_parent_and_subnet() -> None:
    document = vlans()
    document["networks"]["v100"] = {"driver": "vlan"}
    assert errors(document) == [
        "networks.v100.subnet: a vlan network needs a subnet (an IPv4 CIDR like 10.10.0.0/24)",
        "networks.v100.parent: a vlan network needs a parent: a bridge network of this lab or "
        "host:IFNAME",
        "networks.v100.id: a vlan network needs an id: its 802.1Q VLAN id, 1..4094",
    ]


def test_a_vlan_id_is_once_per_parent_and_one_node_per_network() -> None:
    document = vlans()
    document["networks"]["w100"] = {
        "driver": "vlan",
        "parent": "lan",
        "id": 100,
        "subnet": "10.101.0.0/24",
    }
    document["nodes"]["h2"] = {"networks": {"v100": {}}}
    assert sorted(errors(document)) == [
        "networks.v100.parent: a vlan network takes at most one node: lan has one 802.1Q "
        "sub-interface per VLAN id, and 2 nodes attach to v100 (h1, h2); attach the others to "
        "lan with vlan: 100 (or vlans: [100])",
        "networks.w100.id: VLAN 100 on lan is already network v100; give this one another id "
        "or attach its nodes to that one",
    ]


def test_it_compiles_the_bridge_its_ports_and_the_sub_interface_in_order() -> None:
    plan = compile_plan(labfile.validate(vlans()), deployment=7)
    ops = plan.hosts[0].ops
    [bridge] = [op for op in ops if isinstance(op, CreateBridge)]
    assert bridge.vlan_filtering is True
    assert ops[ops.index(bridge) + 1] == AddBridgeVlan("lm7-b0", 100)
    ports = {op.name: op.peer_netns for op in ops if isinstance(op, CreateVethPair)}
    vlan_ops = [op for op in ops if isinstance(op, SetPortVlans)]
    assert [(ports[op.link], op.pvid, op.tagged) for op in vlan_ops] == [
        ("lm7-n1", 10, ()),  # r1, an access port
        ("lm7-n2", 1, (10, 20)),  # sw, a trunk with VLAN 1 untagged
    ]
    for op in vlan_ops:
        at = ops.index(op)
        assert ops[at - 1] == AttachToBridge(op.link, "lm7-b0")
        assert ops[at + 1] == SetLinkUp(None, op.link)  # up only once in its VLANs
    assert [op for op in ops if isinstance(op, CreateVlan)] == [
        CreateVlan("lm7-b0", "lm7-n0", "eth0", 100, None, 1500)
    ]


def test_the_rendered_plan_says_the_commands() -> None:
    text = render_plan(compile_plan(labfile.validate(vlans()), deployment=7))
    for line in (
        "ip link add lm7-b0 type bridge vlan_filtering 1",
        "bridge vlan add dev lm7-b0 vid 100 self",
        "bridge vlan del dev lm7-v1x0 vid 1\nbridge vlan add dev lm7-v1x0 vid 10 pvid untagged",
        "bridge vlan add dev lm7-v2x0 vid 10\nbridge vlan add dev lm7-v2x0 vid 20",
        "ip link add link lm7-b0 name eth0 netns lm7-n0 mtu 1500 type vlan id 100",
    ):
        assert line in text


def test_the_plan_round_trips_and_older_bridges_decode_unchanged() -> None:
    plan = compile_plan(labfile.validate(vlans()), deployment=7)
    data = plan_to_dict(plan)
    assert plan_from_dict(data) == plan
    plain = {"labfile": 1, "name": "plain", "networks": {"lan": {"subnet": "10.1.0.0/24"}}}
    older = plan_to_dict(compile_plan(labfile.validate(plain), deployment=7))
    assert "vlan_filtering" not in older["hosts"][0]["ops"][0] | older["hosts"][0]["ops"][1]
    assert plan_from_dict(older).hosts[0].ops


@pytest.mark.parametrize(
    ("kind", "field", "value", "message"),
    [
        ("set_port_vlans", "pvid", 0, "0 is not a whole number in 1..4094"),
        (
            "set_port_vlans",
            "tagged",
            [20, 10],
            "[20, 10] is not a sorted list of distinct VLAN ids",
        ),
        ("set_port_vlans", "tagged", [10], "10 is the port's untagged VLAN (pvid)"),
        ("add_bridge_vlan", "vid", 4095, "4095 is not a whole number in 1..4094"),
        (
            "create_vlan",
            "parent",
            "lm8-b0",
            "'lm8-b0' is not a bridge of deployment lm7 or a host link",
        ),
        ("create_bridge", "vlan_filtering", "yes", "'yes' is not true or false"),
    ],
)
def test_an_agent_refuses_a_forged_vlan_field(
    kind: str, field: str, value: object, message: str
) -> None:
    data = plan_to_dict(compile_plan(labfile.validate(vlans()), deployment=7))
    ops = data["hosts"][0]["ops"]
    index = next(
        i
        for i, op in enumerate(ops)
        if op["op"] == kind and (kind != "set_port_vlans" or op["pvid"] == 10)
    )
    ops[index][field] = value
    with pytest.raises(LabfileError) as caught:
        plan_from_dict(data)
    path = "tagged" if message.startswith("10 is the port") else field
    assert [str(e) for e in caught.value.errors] == [f"hosts.local.ops.{index}.{path}: {message}"]


def test_a_host_without_8021q_or_vlan_filtering_is_told_which() -> None:
    [host] = compile_plan(labfile.validate(vlans()), deployment=7).hosts
    facts = {"link_kinds": ["veth", "bridge"], "nftables": True, "user_namespaces": True}
    assert features.missing(facts, host) == ["bridge vlan filtering", "vlan"]
    facts |= {"link_kinds": ["veth", "bridge", "vlan"], "bridge_vlan_filtering": True}
    assert features.missing(facts, host) == []
