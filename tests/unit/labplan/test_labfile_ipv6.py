"""Labfile 2: IPv6 on networks (subnet6, static and automatic addresses, routes)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from labplan import labfile
from labplan.compiler import compile_plan
from labplan.errors import LabfileError
from labplan.ops import AddAddress, AddRoute

DUAL: dict[str, Any] = {
    "labfile": 2,
    "name": "dual",
    "networks": {
        "lan": {"subnet": "10.10.0.0/24", "subnet6": "fd00:10::/64"},
        "dmz": {"subnet": "10.20.0.0/24", "subnet6": "fd00:20::/64"},
    },
    "nodes": {
        "a": {"networks": {"lan": {}}},
        "b": {"networks": {"lan": {"ipv6": "fd00:10::2"}, "dmz": {}}},
        "c": {
            "networks": {"dmz": {}},
            "routes": [
                {"dst": "0.0.0.0/0", "via": "10.20.0.1"},
                {"dst": "fd00:10::/64", "via": "fd00:20::2"},
            ],
        },
    },
}


def errors(document: dict[str, Any]) -> list[str]:
    with pytest.raises(LabfileError) as caught:
        labfile.validate(document)
    return [str(e) for e in caught.value.errors]


def edited(path: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(DUAL)
    *parents, key = path.split(".")
    target = document
    for part in parents:
        target = target[part]
    target[key] = value
    return document


def test_nodes_get_ipv6_addresses_static_or_the_lowest_free_after_the_first() -> None:
    lab = labfile.validate(DUAL)

    # b holds ::2 by its own choice; a, with none, takes the next free one (::1 stays
    # free, as a gateway's would).
    assert lab.node("b").attachment("lan").ipv6 == "fd00:10::2"  # type: ignore[union-attr]
    assert lab.node("a").attachment("lan").ipv6 == "fd00:10::3"  # type: ignore[union-attr]
    assert lab.node("c").attachment("dmz").ipv6 == "fd00:20::3"  # type: ignore[union-attr]
    assert lab.node("b").attachment("dmz").ipv6 == "fd00:20::2"  # type: ignore[union-attr]


def test_the_plan_adds_both_families_and_the_ipv6_route() -> None:
    plan = compile_plan(labfile.validate(DUAL), deployment=4)
    ops = plan.hosts[0].ops

    addresses = [(op.netns, op.ifname, op.address) for op in ops if isinstance(op, AddAddress)]
    assert ("lm4-n0", "eth0", "10.10.0.2/24") in addresses
    assert ("lm4-n0", "eth0", "fd00:10::3/64") in addresses
    routes = [(op.netns, op.dst, op.via) for op in ops if isinstance(op, AddRoute)]
    assert ("lm4-n2", "fd00:10::/64", "fd00:20::2") in routes
    # The host's bridges hold no IPv6 address: a lab's IPv6 is between its nodes.
    assert not [a for a in addresses if a[0] is None and ":" in a[2]]


def test_the_export_keeps_the_addresses_and_round_trips() -> None:
    document = labfile.dump(labfile.validate(DUAL))

    assert document["labfile"] == 2
    assert document["networks"]["lan"]["subnet6"] == "fd00:10::/64"
    assert document["nodes"]["a"]["networks"]["lan"]["ipv6"] == "fd00:10::3"
    assert labfile.dump(labfile.validate(document)) == document


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            "networks.lan.subnet6",
            "fd00:10::1/64",
            "networks.lan.subnet6: fd00:10::1/64 has host bits set; did you mean fd00:10::/64?",
        ),
        (
            "networks.lan.subnet6",
            "10.1.0.0/24",
            'networks.lan.subnet6: "10.1.0.0/24" is not an IPv6 subnet (write an IPv6 CIDR, '
            "like fd00:10::/64)",
        ),
        (
            "networks.dmz.subnet6",
            "fd00:10::/48",
            "networks.dmz.subnet6: fd00:10::/48 overlaps the subnet6 of lan (fd00:10::/64)",
        ),
        (
            "nodes.a.networks.lan",
            {"ipv6": "fd00:99::5"},
            "nodes.a.networks.lan.ipv6: fd00:99::5 is not in the subnet fd00:10::/64",
        ),
        (
            "nodes.a.networks.lan",
            {"ipv6": "fd00:10::"},
            "nodes.a.networks.lan.ipv6: fd00:10:: is the network address of fd00:10::/64",
        ),
        (
            "nodes.a.networks.lan",
            {"ipv6": "fd00:10::2"},
            "nodes.b.networks.lan.ipv6: fd00:10::2 is already the address of nodes.a on lan",
        ),
        (
            "nodes.a.networks.lan",
            {"ipv6": "fd00:10::5/64"},
            'nodes.a.networks.lan.ipv6: "fd00:10::5/64" is not an IPv6 address (give the bare '
            "address, like fd00:10::10; the prefix comes from the subnet6)",
        ),
        (
            "nodes.c.routes",
            [{"dst": "fd00:10::/64", "via": "10.20.0.1"}],
            "nodes.c.routes.0.via: 10.20.0.1 is not of the family of the destination fd00:10::/64",
        ),
        (
            "nodes.c.routes",
            [{"dst": "::/0", "via": "fd00:30::1"}],
            "nodes.c.routes.0.via: fd00:30::1 is not in a subnet this node is attached to "
            "(dmz fd00:20::/64)",
        ),
    ],
)
def test_a_bad_ipv6_value_is_refused_naming_its_field(path: str, value: Any, message: str) -> None:
    assert errors(edited(path, value))[0] == message


def test_an_ipv6_address_needs_a_subnet6() -> None:
    document = edited("networks.lan", {"subnet": "10.10.0.0/24"})

    assert errors(document) == [
        "nodes.b.networks.lan.ipv6: lan has no IPv6 subnet; add subnet6 to networks.lan"
    ]


def test_subnet6_is_a_labfile_2_key() -> None:
    document = edited("labfile", 1)
    document["nodes"]["b"]["networks"]["lan"] = {}
    document["nodes"]["c"]["routes"] = []

    assert errors(document) == [
        f"networks.{n}.subnet6: subnet6 is a labfile 2 key; write labfile: 2 at the top of "
        "the file to use it"
        for n in ("lan", "dmz")
    ]
