"""Labfile 2: point-to-point links and impairments, validated, exported and compiled."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labplan import labfile
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.model import Shaping
from labplan.ops import AddAddress, AddRoute, CreatePeerLink, SetShaping

TRIANGLE: dict[str, Any] = {
    "labfile": 2,
    "name": "triangle",
    "networks": {"lan": {"subnet": "10.10.0.0/24"}},
    "nodes": {"r1": {"networks": {"lan": {}}}, "r2": {}, "r3": {}},
    "links": [
        {
            "endpoints": ["r1:eth1", "r2:eth1"],
            "ipv4": ["10.0.12.1/30", "10.0.12.2/30"],
            "ipv6": ["fd00:12::1/64", "fd00:12::2/64"],
            "mtu": 9000,
            "impairments": {"delay": "10ms", "jitter": "2ms", "loss": "1%", "rate": "100mbit"},
        },
        {"endpoints": ["r2:eth2", "r3:eth1"], "impairments": {"r2:eth2": {"delay": "5ms"}}},
        {"endpoints": ["r3:eth2", "r1:eth2"], "ipv4": ["10.0.13.0/31", "10.0.13.1/31"]},
    ],
}


def errors(document: dict[str, Any]) -> list[str]:
    with pytest.raises(LabfileError) as caught:
        labfile.validate(document)
    return [str(e) for e in caught.value.errors]


def with_link(**link: Any) -> dict[str, Any]:
    document = copy.deepcopy(TRIANGLE)
    document["links"].append(link)
    return document


def test_links_load_with_their_ends_addresses_and_impairments() -> None:
    lab = labfile.validate(TRIANGLE)

    first, second, third = lab.links
    assert [e.endpoint for e in first.ends] == ["r1:eth1", "r2:eth1"]
    assert (first.ends[0].ipv4, first.ends[1].ipv6) == ("10.0.12.1/30", "fd00:12::2/64")
    assert first.mtu == 9000 and third.mtu == 1500
    both = Shaping(rate=100_000_000, delay=10_000, jitter=2_000, loss=1.0)
    assert first.ends[0].impairments == first.ends[1].impairments == both
    assert second.ends[0].impairments == Shaping(delay=5_000)
    assert second.ends[1].impairments is None


def test_a_network_attachment_takes_the_next_name_free_of_links() -> None:
    document = copy.deepcopy(TRIANGLE)
    document["links"][0]["endpoints"] = ["r1:eth0", "r2:eth1"]

    lab = labfile.validate(document)

    assert lab.node("r1").networks[0].ifname == "eth1"


def test_the_export_is_labfile_2_and_round_trips() -> None:
    lab = labfile.validate(TRIANGLE)

    document = labfile.dump(lab)

    assert document["labfile"] == 2
    assert document["links"][1] == {
        "endpoints": ["r2:eth2", "r3:eth1"],
        "mtu": 1500,
        "impairments": {"r2:eth2": {"delay": "5ms"}},
    }
    assert labfile.dump(labfile.validate(document)) == document


def test_a_lab_without_anything_new_stays_labfile_1() -> None:
    document = {
        "labfile": 2,
        "name": "plain",
        "networks": {"lan": {"subnet": "10.10.0.0/24", "impairments": {"delay": "5ms"}}},
        "nodes": {"a": {"networks": {"lan": {}}}},
    }

    exported = labfile.dump(labfile.validate(document))

    assert exported["labfile"] == 1 and "links" not in exported
    assert exported["networks"]["lan"]["shaping"] == {"delay": "5ms"}
    assert labfile.dump(labfile.validate(exported)) == exported


def test_a_labfile_1_refuses_the_keys_of_labfile_2_by_name() -> None:
    document = {
        "labfile": 1,
        "name": "old",
        "networks": {"lan": {"subnet": "10.10.0.0/24", "shaping": {"corrupt": "1%"}}},
        "nodes": {"a": {"networks": {"lan": {"impairments": {"loss": "1%"}}}}},
        "links": [],
    }

    assert errors(document) == [
        "networks.lan.shaping.corrupt: corrupt is a labfile 2 key; write labfile: 2 at the "
        "top of the file to use it",
        "nodes.a.networks.lan.impairments: impairments is a labfile 2 key; write labfile: 2 "
        "at the top of the file to use it",
        "links: links is a labfile 2 key; write labfile: 2 at the top of the file to use it",
    ]


@pytest.mark.parametrize(
    ("link", "message"),
    [
        (
            {"endpoints": ["r1:eth3"]},
            "links.3.endpoints: a veth link has two endpoints, like [r1:eth1, r2:eth1]; give "
            "a type (dummy, host or vxlan) for an interface whose far side is not a node",
        ),
        (
            {"endpoints": ["r1:eth3", "r9:eth1"]},
            "links.3.endpoints.1: r9 is not a node of this lab (nodes: r1, r2, r3)",
        ),
        (
            {"endpoints": ["r1", "r2:eth3"]},
            'links.3.endpoints.0: "r1" is not a valid endpoint (write node:ifname, like r1:eth1)',
        ),
        (
            {"endpoints": ["r1:eth3", "r2:lo"]},
            'links.3.endpoints.1: "lo" cannot be used as an interface name',
        ),
        (
            {"endpoints": ["r1:eth1", "r3:eth3"]},
            "links.3.endpoints.0: r1:eth1 is already an end of links.0",
        ),
        (
            {"endpoints": ["r1:eth3", "r1:eth3"]},
            "links.3.endpoints.1: r1:eth3 is already the other end of this link",
        ),
        (
            {"endpoints": ["r1:eth3", "r2:eth3"], "ipv4": ["10.0.14.1/30", "10.0.15.2/30"]},
            "links.3.ipv4.1: 10.0.15.2/30 is not in the subnet of the other end, 10.0.14.0/30: "
            "both ends of a link are in one subnet",
        ),
        (
            {"endpoints": ["r1:eth3", "r2:eth3"], "ipv4": ["10.0.14.0/30", "10.0.14.2/30"]},
            "links.3.ipv4.0: 10.0.14.0 is the network address of 10.0.14.0/30",
        ),
        (
            {"endpoints": ["r1:eth3", "r2:eth3"], "ipv4": ["10.0.14.1/32", "10.0.14.2/30"]},
            "links.3.ipv4.0: 10.0.14.1/32 leaves no room for the other end (use a /30 or a /31)",
        ),
        (
            {"endpoints": ["r1:eth3", "r2:eth3"], "ipv4": ["10.0.12.5/24", "10.0.12.6/24"]},
            "links.3.ipv4: 10.0.12.0/24 overlaps the subnet of links.0 (10.0.12.0/30)",
        ),
        (
            {"endpoints": ["r1:eth3", "r2:eth3"], "ipv4": ["10.10.0.201/30", "10.10.0.202/30"]},
            "links.3.ipv4: 10.10.0.200/30 overlaps the subnet of network lan (10.10.0.0/24)",
        ),
        (
            {"endpoints": ["r1:eth3", "r2:eth3"], "ipv4": ["10.0.14.1", "10.0.14.2/30"]},
            'links.3.ipv4.0: "10.0.14.1" is not an IPv4 address with its prefix '
            "(like 10.0.12.1/30)",
        ),
        (
            {"endpoints": ["r1:eth3", "r2:eth3"], "ipv6": ["fd00:14::1/64", "fd00:14::1/64"]},
            "links.3.ipv6.1: fd00:14::1 is already the other end's address",
        ),
        (
            {"endpoints": ["r1:eth3", "r2:eth3"], "impairments": {"r3:eth1": {"delay": "1ms"}}},
            "links.3.impairments.r3:eth1: r3:eth1 is not an end of this link (its ends: r1:eth3, "
            "r2:eth3)",
        ),
        (
            {"endpoints": ["r1:eth3", "r2:eth3"], "impairments": {"reorder": "5%"}},
            "links.3.impairments.reorder: reorder needs a delay (add delay, like 20ms)",
        ),
        (
            {"endpoints": ["r1:eth3", "r2:eth3"], "mtu": 40},
            "links.3.mtu: 40 is out of range: mtu must be between 68 and 65535",
        ),
    ],
)
def test_a_bad_link_is_refused_naming_its_field(link: dict[str, Any], message: str) -> None:
    assert errors(with_link(**link)) == [message]


def test_every_bad_link_is_reported_at_once() -> None:
    document = with_link(endpoints=["r1:eth1", "r9:eth1"])
    document["links"].append({"endpoints": ["r2:eth3", "r3:eth3"], "mtu": 1})

    assert [e.split(":")[0] for e in errors(document)] == [
        "links.3.endpoints.0",
        "links.3.endpoints.1",
        "links.4.mtu",
    ]


def test_an_attachment_may_not_take_a_links_interface() -> None:
    document = copy.deepcopy(TRIANGLE)
    document["nodes"]["r1"]["networks"]["lan"] = {"ifname": "eth2"}

    assert errors(document) == [
        "nodes.r1.networks.lan.ifname: eth2 is already this node's end of links.2"
    ]


def test_a_node_on_the_host_network_cannot_have_a_link() -> None:
    document = copy.deepcopy(TRIANGLE)
    document["networks"]["hostnet"] = {"driver": "host"}
    document["nodes"]["r2"] = {"networks": {"hostnet": {}}}

    assert errors(document)[0] == (
        "links.0.endpoints.1: r2 is on the host network hostnet, in the host's network "
        "namespace: a link needs a node with a namespace of its own"
    )


def test_a_route_may_go_via_a_links_other_end() -> None:
    document = copy.deepcopy(TRIANGLE)
    document["nodes"]["r2"]["routes"] = [{"dst": "10.10.0.0/24", "via": "10.0.12.1"}]

    lab = labfile.validate(document)

    assert lab.node("r2").routes[0].via == "10.0.12.1"
    # Compiled after the link's addresses: the kernel refuses a via it cannot reach yet.
    ops = compile_plan(lab, deployment=1).hosts[0].ops
    route = next(
        i for i, op in enumerate(ops) if isinstance(op, AddRoute) and op.dst != "0.0.0.0/0"
    )
    link_address = next(
        i for i, op in enumerate(ops) if isinstance(op, AddAddress) and op.address == "10.0.12.2/30"
    )
    assert link_address < route


def test_network_and_attachment_impairments() -> None:
    document = {
        "labfile": 2,
        "name": "lossy",
        "networks": {"lan": {"subnet": "10.10.0.0/24", "impairments": {"delay": "5ms"}}},
        "nodes": {
            "a": {"networks": {"lan": {"impairments": {"loss": "2%", "corrupt": "0.1%"}}}},
            "b": {"networks": {"lan": {}}},
        },
    }
    plan = compile_plan(labfile.validate(document), deployment=5)

    shaping = [op for op in plan.hosts[0].ops if isinstance(op, SetShaping)]

    # An attachment's own impairments replace its network's, for what it sends.
    assert [(op.netns, op.delay, op.loss, op.corrupt) for op in shaping] == [
        ("lm5-n0", None, 2.0, 0.1),
        ("lm5-n1", 5_000, None, None),
    ]


def test_a_network_has_impairments_or_shaping_not_both() -> None:
    document = {
        "labfile": 2,
        "name": "both",
        "networks": {
            "lan": {
                "subnet": "10.10.0.0/24",
                "impairments": {"delay": "5ms"},
                "shaping": {"delay": "5ms"},
            }
        },
    }

    assert errors(document) == [
        "networks.lan.shaping: shaping is labfile 1's name of impairments: give one of them, "
        "not both"
    ]


def test_links_compile_to_one_veth_pair_between_the_namespaces() -> None:
    plan = compile_plan(labfile.validate(TRIANGLE), deployment=9)
    ops = plan.hosts[0].ops

    pairs = [op for op in ops if isinstance(op, CreatePeerLink)]
    assert pairs[0] == CreatePeerLink("lm9-n0", "eth1", "lm9-n1", "eth1", 9000)
    assert len(pairs) == 3
    addresses = [(op.netns, op.address) for op in ops if isinstance(op, AddAddress)]
    assert ("lm9-n1", "fd00:12::2/64") in addresses and ("lm9-n0", "10.0.13.1/31") in addresses
    # Link-only nodes are named in /etc/hosts by their first link address.
    spawn = ops[-1]
    assert ("10.0.12.2", "r2") in spawn.hosts  # type: ignore[attr-defined]


def test_a_link_between_hosts_is_refused_at_placement() -> None:
    with pytest.raises(LabfileError) as caught:
        compile_plan(
            labfile.validate(TRIANGLE), deployment=9, placement={"r1": "a", "r2": "b", "r3": "a"}
        )

    assert str(caught.value.errors[0]) == (
        "links.0.endpoints: r1 is placed on host a and r2 on b; a link belongs to one host "
        "(nodes on different hosts meet on an overlay network)"
    )


def test_a_missing_kernel_feature_is_traced_to_the_fields_that_need_it() -> None:
    from labplan.feature_fields import fields_needing

    document = copy.deepcopy(TRIANGLE)
    document["networks"]["lan"]["impairments"] = {"loss": "1%"}
    document["nodes"]["r1"]["networks"]["lan"] = {"impairments": {"rate": "1mbit"}}
    lab = labfile.validate(document)

    assert fields_needing(lab, "netem") == [
        "networks.lan.impairments",
        "links.0.impairments",
        "links.1.impairments",
    ]
    assert fields_needing(lab, "tbf") == [
        "nodes.r1.networks.lan.impairments",
        "links.0.impairments",
    ]
    assert fields_needing(lab, "veth") == ["networks.lan.driver", "links.0", "links.1", "links.2"]
