"""Labfile 2 links of one endpoint (`type: dummy | host | vxlan`): validated with every
refusal naming its field, exported back where they were, compiled to the ops that make
them, and those reaching out of the lab kept for admins."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labplan import labfile
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.model import LinkEnd, Port
from labplan.ops import (
    AddAddress,
    AddRoute,
    AttachToBridge,
    CreateDummy,
    CreateTunnel,
    CreateVethPair,
    SetAltname,
    SetLinkUp,
)

LAB: dict[str, Any] = {
    "labfile": 2,
    "name": "edges",
    "networks": {"lan": {"subnet": "10.10.0.0/24"}},
    "nodes": {
        "r1": {"networks": {"lan": {}}, "routes": [{"dst": "0.0.0.0/0", "via": "10.0.99.1"}]},
        "r2": {},
    },
    "links": [
        {"type": "dummy", "endpoints": ["r1:lo1"], "ipv4": ["10.255.0.1/32"]},
        {"endpoints": ["r1:eth1", "r2:eth1"], "ipv4": ["10.0.12.1/30", "10.0.12.2/30"]},
        {
            "type": "host",
            "endpoints": ["r1:eth9"],
            "ipv4": ["10.0.99.2/30", "10.0.99.1/30"],
            "ipv6": ["fd00:99::2/64"],
            "host_ifname": "r1-eth9",
        },
        {
            "type": "vxlan",
            "endpoints": ["r2:vx0"],
            "remote": "198.51.100.7",
            "vni": 100,
            "port": 4790,
            "parent": "uplink0",
            "ipv4": ["10.0.77.1/24"],
            "mtu": 1450,
        },
    ],
}


def errors(document: dict[str, Any]) -> list[str]:
    with pytest.raises(LabfileError) as caught:
        labfile.validate(document)
    return [str(e) for e in caught.value.errors]


def with_link(**link: Any) -> dict[str, Any]:
    document = copy.deepcopy(LAB)
    document["links"].append(link)
    return document


def test_links_of_one_endpoint_load_apart_from_the_veth_links() -> None:
    lab = labfile.validate(LAB)

    assert [link.ends[0].endpoint for link in lab.links] == ["r1:eth1"]
    assert lab.ports == (
        Port(0, "dummy", LinkEnd("r1", "lo1", "10.255.0.1/32")),
        Port(
            2,
            "host",
            LinkEnd("r1", "eth9", "10.0.99.2/30", "fd00:99::2/64"),
            host_ifname="r1-eth9",
            host_ipv4="10.0.99.1/30",
        ),
        Port(
            3,
            "vxlan",
            LinkEnd("r2", "vx0", "10.0.77.1/24"),
            mtu=1450,
            remote="198.51.100.7",
            vni=100,
            port=4790,
            parent="uplink0",
        ),
    )
    # Their interfaces are the node's: an attachment without ifname steps over them.
    assert lab.node("r1").networks[0].ifname == "eth0"


def test_the_export_puts_each_link_back_in_its_place_and_round_trips() -> None:
    document = labfile.dump(labfile.validate(LAB))

    assert [link.get("type", "veth") for link in document["links"]] == [
        "dummy",
        "veth",
        "host",
        "vxlan",
    ]
    assert document["links"][3] == {
        "type": "vxlan",
        "endpoints": ["r2:vx0"],
        "ipv4": ["10.0.77.1/24"],
        "mtu": 1450,
        "remote": "198.51.100.7",
        "vni": 100,
        "port": 4790,
        "parent": "uplink0",
    }
    assert labfile.dump(labfile.validate(document)) == document


def test_host_and_vxlan_links_are_for_admins_and_a_dummy_for_anyone() -> None:
    needs = labfile.admin_requirements(labfile.validate(LAB))

    assert [str(e) for e in needs] == [
        "links.2.type: only an admin may make a host link: its other end is in the host's "
        "own network namespace",
        "links.3.type: only an admin may make a vxlan link: it tunnels out of the host, to "
        "an endpoint outside the lab",
    ]


def test_they_compile_to_the_ops_that_make_them_before_addresses_and_routes() -> None:
    plan = compile_plan(labfile.validate(LAB), deployment=5)
    ops = plan.hosts[0].ops

    dummy = ops.index(CreateDummy("lm5-n0", "lo1", 1500))
    veth = next(op for op in ops if isinstance(op, CreateVethPair) and op.peer_ifname == "eth9")
    assert veth.name == "lm5-v0xrr" and veth.peer_netns == "lm5-n0"
    named = ops.index(SetAltname("lm5-v0xrr", "r1-eth9"))
    tunnel = ops.index(CreateTunnel("lm5-n1", "vx0", 100, "198.51.100.7", 4790, "uplink0", 1450))
    host_address = ops.index(AddAddress(None, "lm5-v0xrr", "10.0.99.1/30"))
    assert AddAddress("lm5-n0", "eth9", "fd00:99::2/64") in ops
    assert SetLinkUp(None, "lm5-v0xrr") in ops and SetLinkUp("lm5-n1", "vx0") in ops
    route = ops.index(AddRoute("lm5-n0", "0.0.0.0/0", "10.0.99.1"))
    assert ops.index(veth) < named < host_address < route
    assert dummy < host_address and tunnel < host_address


def test_a_plan_with_a_dummy_needs_a_kernel_with_dummy_links() -> None:
    from labplan.features import requirements

    plan = compile_plan(labfile.validate(LAB), deployment=5)

    assert {"dummy", "vxlan", "veth"} <= set(requirements(plan.hosts[0]))


def test_the_host_side_of_a_host_link_routes_its_subnet_on_the_host() -> None:
    # The subnet the agent's host guard checks against the host's routes and addresses
    # before it makes anything: a host link may not shadow the host's own.
    from labplan.subnets import routed_subnets

    plan = compile_plan(labfile.validate(LAB), deployment=5)

    assert [str(s) for s in routed_subnets(plan.hosts[0])] == ["10.10.0.0/24", "10.0.99.0/30"]


@pytest.mark.parametrize(
    ("link", "message"),
    [
        (
            {"type": "dummy", "endpoints": ["r1:lo2", "r2:lo2"]},
            "links.4.endpoints: a dummy link has one endpoint, the node's interface (a dummy "
            "interface), like [r1:eth1]",
        ),
        (
            {"type": "tunnel", "endpoints": ["r1:lo2"]},
            'links.4.type: "tunnel" is not one of veth, dummy, host, vxlan, network',
        ),
        (
            {"endpoints": ["r1:eth5", "r2:eth5"], "vni": 5},
            "links.4.vni: vni is a key of a link of type vxlan",
        ),
        (
            {"type": "dummy", "endpoints": ["r1:lo2"], "host_ifname": "x"},
            "links.4.host_ifname: host_ifname is a key of a link of type host or network",
        ),
        (
            {"type": "vxlan", "endpoints": ["r1:vx1"], "vni": 5},
            "links.4.remote: a vxlan link needs its remote",
        ),
        (
            {"type": "vxlan", "endpoints": ["r1:vx1"], "vni": 5, "remote": "224.0.0.5"},
            "links.4.remote: 224.0.0.5 is not the unicast address of a remote tunnel endpoint",
        ),
        (
            {"type": "vxlan", "endpoints": ["r1:vx1"], "remote": "192.0.2.9", "vni": 0},
            "links.4.vni: 0 is out of range: vni must be between 1 and 16777215",
        ),
        (
            {"type": "host", "endpoints": ["r1:eth7"], "host_ifname": "lm3-b0"},
            "links.4.host_ifname: lm3-b0 is a name labmgr keeps for its own links",
        ),
        (
            {"type": "host", "endpoints": ["r1:eth7"], "ipv4": ["10.0.98.2/30", "10.0.97.1/30"]},
            "links.4.ipv4.1: 10.0.97.1/30 is not in the subnet of the node's end, "
            "10.0.98.0/30: both ends of a link are in one subnet",
        ),
        (
            {"type": "dummy", "endpoints": ["r1:lo2"], "ipv4": ["10.0.98.1/32", "10.0.98.2/32"]},
            "links.4.ipv4.1: a dummy link has one address, the node's interface's",
        ),
        (
            {"type": "dummy", "endpoints": ["r1:lo1"]},
            "links.4.endpoints.0: r1:lo1 is already an end of links.0",
        ),
        (
            {"type": "host", "endpoints": ["r1:eth7"], "impairments": {"delay": "5ms"}},
            "links.4.impairments: impairments are of veth links between two nodes",
        ),
        (
            {"type": "dummy", "endpoints": ["r1:lo2"], "ipv4": ["10.10.0.7/32"]},
            "links.4.ipv4: 10.10.0.7/32 overlaps the subnet of network lan (10.10.0.0/24)",
        ),
    ],
)
def test_a_bad_link_of_one_endpoint_is_refused_naming_its_field(
    link: dict[str, Any], message: str
) -> None:
    assert errors(with_link(**link)) == [message]


def test_a_link_of_one_endpoint_is_a_labfile_2_key() -> None:
    document = {"labfile": 1, "name": "old", "nodes": {"a": {}}, "links": []}
    assert errors(document)[0].startswith("links: links is a labfile 2 key")


# --- network links: one more port of a node on a bridge of the lab ---------------------

MGMT: dict[str, Any] = {
    "labfile": 2,
    "name": "mgmt",
    "networks": {
        "clab": {"subnet": "172.20.20.0/24", "gateway": "172.20.20.1"},
        "off": {"driver": "none"},
    },
    "nodes": {
        "r1": {"networks": {"clab": {}}},
        "r2": {"networks": {"clab": {"ipv4": "172.20.20.3"}}},
    },
    "links": [
        {
            "type": "network",
            "endpoints": ["r1:eth1"],
            "network": "clab",
            "ipv4": ["172.20.20.2/24"],
        }
    ],
}


def with_network_link(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(MGMT)
    document["links"][0] |= changes
    return {**document, "links": [{k: v for k, v in document["links"][0].items() if v != ...}]}


def test_a_network_link_is_a_second_port_on_the_bridge_whose_address_no_node_takes() -> None:
    lab = labfile.validate(MGMT)

    (port,) = lab.ports
    assert (port.type, port.network, port.end.ipv4, port.mtu) == (
        "network",
        "clab",
        "172.20.20.2/24",
        1500,
    )
    # r1's own attachment skips the link's address, as it skips r2's static one.
    assert lab.node("r1").networks[0].ipv4 == "172.20.20.4"
    assert labfile.validate(labfile.dump(lab)) == lab
    assert labfile.admin_requirements(lab) == []

    ops = compile_plan(lab, deployment=5).hosts[0].ops
    veth = ops.index(CreateVethPair("lm5-v0xrr", "lm5-n0", "eth1", None, 1500, 65541, "labmgr:lm5"))
    attach = ops.index(AttachToBridge("lm5-v0xrr", "lm5-b0"))
    address = ops.index(AddAddress("lm5-n0", "eth1", "172.20.20.2/24"))
    assert veth < attach < ops.index(SetLinkUp(None, "lm5-v0xrr")) < address


def test_naming_a_network_links_host_side_is_an_admins() -> None:
    lab = labfile.validate(with_network_link(host_ifname="r1-mgmt"))

    assert [str(e) for e in labfile.admin_requirements(lab)] == [
        "links.0.host_ifname: only an admin may name an interface of the host; leave it "
        "out, and labmgr names the bridge's side itself"
    ]
    ops = compile_plan(lab, deployment=5).hosts[0].ops
    assert ops.index(SetAltname("lm5-v0xrr", "r1-mgmt")) < ops.index(
        AttachToBridge("lm5-v0xrr", "lm5-b0")
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"network": ...}, "links.0.network: a network link names the bridge network it joins"),
        (
            {"network": "lan"},
            "links.0.network: lan is not a network of this lab (networks: clab, off)",
        ),
        (
            {"network": "off", "ipv4": ...},
            "links.0.network: off is a none network: a network link is a port of a bridge",
        ),
        (
            {"ipv4": ["10.9.0.2/24"]},
            "links.0.ipv4.0: 10.9.0.2 is not in the subnet of clab, 172.20.20.0/24",
        ),
        (
            {"ipv4": ["172.20.20.2/30"]},
            "links.0.ipv4.0: 172.20.20.2/30 has another prefix than clab's 172.20.20.0/24: "
            "172.20.20.2/24",
        ),
        ({"ipv4": ["172.20.20.1/24"]}, "links.0.ipv4.0: 172.20.20.1 is the gateway of clab"),
        (
            {"ipv4": ["172.20.20.3/24"]},
            "links.0.ipv4.0: 172.20.20.3 is already the address of nodes.r2 on clab",
        ),
        (
            {"ipv4": ["172.20.20.2/24", "172.20.20.5/24"]},
            "links.0.ipv4.1: a network link has one address, the node's interface's",
        ),
        (
            {"ipv6": ["fd00:20::2/64"]},
            "links.0.ipv6.0: clab has no ipv6 subnet to be in",
        ),
        ({"remote": "192.0.2.1"}, "links.0.remote: remote is a key of a link of type vxlan"),
    ],
)
def test_a_bad_network_link_is_refused_naming_its_field(
    changes: dict[str, Any], message: str
) -> None:
    assert errors(with_network_link(**changes)) == [message]


def test_a_network_links_address_that_leaves_the_nodes_none_is_refused_on_the_link() -> None:
    document = copy.deepcopy(MGMT)
    document["networks"]["clab"] = {"subnet": "172.20.20.0/30", "gateway": "none"}
    document["nodes"]["r2"] = {"networks": {"clab": {}}}
    document["links"][0]["ipv4"] = ["172.20.20.1/30"]

    assert errors(document) == [
        "links.0.ipv4.0: 172.20.20.0/30 has no free address left for r2, once this link "
        "takes its address"
    ]


def test_a_network_links_node_is_on_the_host_of_its_bridge() -> None:
    document = copy.deepcopy(MGMT)
    document["nodes"]["r3"] = {}
    document["links"][0]["endpoints"] = ["r3:eth1"]
    lab = labfile.validate(document)

    with pytest.raises(LabfileError) as caught:
        compile_plan(lab, deployment=5, placement={"r1": "h1", "r2": "h1", "r3": "h2"})
    assert [str(e) for e in caught.value.errors] == [
        "links.0.network: bridge network clab is on host h1 but r3 is placed on h2; a "
        "bridge cannot span hosts"
    ]
