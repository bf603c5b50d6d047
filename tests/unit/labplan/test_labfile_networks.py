"""Validation rules about networks: drivers, options, subnets, gateways, parents."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from labplan.labfile import validate

Errors = Callable[[object], list[str]]


def with_network(tree: dict[str, Any], name: str, network: Any) -> dict[str, Any]:
    tree["networks"][name] = network
    return tree


def test_it_defaults_to_the_bridge_driver_with_a_gateway_on_the_first_address(
    tree: dict[str, Any],
) -> None:
    lan = validate(tree).network("lan")
    assert (lan.driver, lan.gateway, lan.internal, lan.mtu) == ("bridge", "10.10.0.1", False, 1500)


def test_an_overlay_leaves_room_for_the_vxlan_header_by_default(tree: dict[str, Any]) -> None:
    with_network(tree, "wide", {"driver": "overlay", "subnet": "10.30.0.0/24"})
    wide = validate(tree).network("wide")
    assert (wide.mtu, wide.vni, wide.gateway) == (1450, None, "10.30.0.1")


def test_gateway_none_means_no_gateway(tree: dict[str, Any]) -> None:
    tree["networks"]["lan"]["gateway"] = "none"
    lab = validate(tree)
    assert lab.network("lan").gateway is None
    assert lab.node("db").networks[0].ipv4 == "10.10.0.1"
    assert lab.node("web").routes == ()
    assert [(r.dst, r.via) for r in lab.node("db").routes] == [("0.0.0.0/0", "10.20.0.1")]


def test_it_rejects_an_unknown_driver(tree: dict[str, Any], errors: Errors) -> None:
    tree["networks"]["lan"]["driver"] = "wifi"
    assert errors(tree) == [
        'networks.lan.driver: "wifi" is not one of bridge, host, none, macvlan, ipvlan, '
        "overlay, vlan"
    ]


def test_it_rejects_an_unknown_key_and_lists_the_known_ones(
    tree: dict[str, Any], errors: Errors
) -> None:
    tree["networks"]["lan"]["colour"] = "red"
    assert errors(tree) == [
        "networks.lan.colour: unknown key (known keys: driver, subnet, subnet6, gateway, gateway6, "
        "internal, mtu, impairments, shaping, parent, mode, vni, vlan_filtering, id)"
    ]


@pytest.mark.parametrize(
    ("driver", "option", "value"),
    [
        ("bridge", "mode", "bridge"),
        ("bridge", "parent", "dmz"),
        ("bridge", "vni", 10),
        ("overlay", "internal", True),
        ("macvlan", "gateway", "10.30.0.1"),
        ("ipvlan", "vni", 10),
        ("host", "mtu", 1500),
        ("none", "subnet", "10.30.0.0/24"),
        ("host", "shaping", {"rate": "1mbit"}),
    ],
)
def test_it_rejects_an_option_given_for_another_driver(
    tree: dict[str, Any], errors: Errors, driver: str, option: str, value: object
) -> None:
    network: dict[str, Any] = {"driver": driver}
    if driver in ("bridge", "overlay", "macvlan", "ipvlan"):
        network["subnet"] = "10.30.0.0/24"
    if driver in ("macvlan", "ipvlan"):
        network["parent"] = "lan"
    network[option] = value
    with_network(tree, "extra", network)
    assert errors(tree) == [
        f"networks.extra.{option}: {option} is not an option of the {driver} driver"
    ]


@pytest.mark.parametrize("driver", ["bridge", "overlay", "macvlan", "ipvlan"])
def test_it_requires_a_subnet_for_addressed_drivers(
    tree: dict[str, Any], errors: Errors, driver: str
) -> None:
    network = {"driver": driver} | ({"parent": "lan"} if "vlan" in driver else {})
    with_network(tree, "extra", network)
    article = "an" if driver[0] in "aeiou" else "a"
    assert errors(tree) == [
        f"networks.extra.subnet: {article} {driver} network needs a subnet (an IPv4 CIDR like "
        "10.10.0.0/24)"
    ]


def test_it_rejects_a_subnet_with_host_bits_set(tree: dict[str, Any], errors: Errors) -> None:
    tree["networks"]["lan"]["subnet"] = "10.10.0.1/24"
    assert errors(tree) == [
        "networks.lan.subnet: 10.10.0.1/24 has host bits set; did you mean 10.10.0.0/24?"
    ]


@pytest.mark.parametrize("subnet", ["10.10.0.0", "10.10.0.0/33", "10.300.0.0/24", "lan", 24])
def test_it_rejects_a_subnet_that_is_not_an_ipv4_cidr(
    tree: dict[str, Any], errors: Errors, subnet: object
) -> None:
    tree["networks"]["lan"]["subnet"] = subnet
    shown = f'"{subnet}"' if isinstance(subnet, str) else subnet
    assert errors(tree) == [
        f"networks.lan.subnet: {shown} is not a subnet (write an IPv4 CIDR, like 10.10.0.0/24)"
    ]


@pytest.mark.parametrize("prefix", [31, 32])
def test_it_rejects_a_subnet_without_room_for_hosts(
    tree: dict[str, Any], errors: Errors, prefix: int
) -> None:
    tree["networks"]["lan"]["subnet"] = f"10.10.0.0/{prefix}"
    assert errors(tree) == [
        f"networks.lan.subnet: 10.10.0.0/{prefix} leaves no room for hosts (use a prefix of "
        "/30 or shorter)"
    ]


def test_it_rejects_overlapping_subnets(tree: dict[str, Any], errors: Errors) -> None:
    with_network(tree, "small", {"subnet": "10.20.0.128/25"})
    assert errors(tree) == [
        "networks.small.subnet: 10.20.0.128/25 overlaps the subnet of dmz (10.20.0.0/24)",
    ]


def test_it_names_every_subnet_a_wide_subnet_overlaps(tree: dict[str, Any], errors: Errors) -> None:
    with_network(tree, "big", {"subnet": "10.0.0.0/8"})
    assert errors(tree) == [
        "networks.big.subnet: 10.0.0.0/8 overlaps the subnet of lan (10.10.0.0/24)",
        "networks.big.subnet: 10.0.0.0/8 overlaps the subnet of dmz (10.20.0.0/24)",
    ]


def test_it_rejects_a_subnet_too_small_for_its_nodes(tree: dict[str, Any], errors: Errors) -> None:
    tree["networks"]["lan"]["subnet"] = "10.10.0.0/30"
    tree["nodes"]["app"] = {"networks": {"lan": {}}}
    assert errors(tree) == [
        "networks.lan.subnet: 10.10.0.0/30 has room for 1 node address but 3 nodes attach to lan"
    ]


@pytest.mark.parametrize(
    ("gateway", "message"),
    [
        ("10.99.0.1", "10.99.0.1 is not in the subnet 10.10.0.0/24"),
        ("10.10.0.0", "10.10.0.0 is the network address of 10.10.0.0/24"),
        ("10.10.0.255", "10.10.0.255 is the broadcast address of 10.10.0.0/24"),
        ("10.10.0.1/24", '"10.10.0.1/24" is not an IPv4 address or "none"'),
        ("off", '"off" is not an IPv4 address or "none"'),
    ],
)
def test_it_rejects_a_gateway_that_cannot_be_a_host_of_the_subnet(
    tree: dict[str, Any], errors: Errors, gateway: str, message: str
) -> None:
    tree["networks"]["lan"]["gateway"] = gateway
    assert errors(tree) == [f"networks.lan.gateway: {message}"]


@pytest.mark.parametrize(("mtu", "shown"), [(67, "67"), (65536, "65536"), ("1500", '"1500"')])
def test_it_rejects_an_mtu_out_of_range(
    tree: dict[str, Any], errors: Errors, mtu: object, shown: str
) -> None:
    tree["networks"]["lan"]["mtu"] = mtu
    expected = (
        f"{shown} is out of range: mtu must be between 68 and 65535"
        if isinstance(mtu, int)
        else f"{shown} is not a whole number"
    )
    assert errors(tree) == [f"networks.lan.mtu: {expected}"]


def test_internal_must_be_a_boolean(tree: dict[str, Any], errors: Errors) -> None:
    tree["networks"]["lan"]["internal"] = "yes"
    assert errors(tree) == ['networks.lan.internal: "yes" is not true or false']


def test_it_requires_a_parent_for_macvlan(tree: dict[str, Any], errors: Errors) -> None:
    with_network(tree, "wan", {"driver": "macvlan", "subnet": "10.30.0.0/24"})
    assert errors(tree) == [
        "networks.wan.parent: a macvlan network needs a parent: a bridge network of this lab "
        "or host:IFNAME"
    ]


def test_it_rejects_a_parent_that_is_not_a_network_of_the_lab(
    tree: dict[str, Any], errors: Errors
) -> None:
    with_network(tree, "wan", {"driver": "macvlan", "subnet": "10.30.0.0/24", "parent": "wan2"})
    assert errors(tree) == [
        "networks.wan.parent: wan2 is not a network of this lab (a parent is a bridge network "
        "of this lab or host:IFNAME)"
    ]


def test_it_rejects_a_parent_that_is_not_a_bridge(tree: dict[str, Any], errors: Errors) -> None:
    with_network(tree, "wan", {"driver": "macvlan", "subnet": "10.30.0.0/24", "parent": "lan"})
    with_network(tree, "l3", {"driver": "ipvlan", "subnet": "10.40.0.0/24", "parent": "wan"})
    assert errors(tree) == [
        "networks.l3.parent: wan is a macvlan network; a parent must be a bridge network of "
        "this lab or host:IFNAME"
    ]


def test_a_host_parent_needs_a_valid_interface_name(tree: dict[str, Any], errors: Errors) -> None:
    with_network(tree, "wan", {"driver": "ipvlan", "subnet": "10.30.0.0/24", "parent": "host:"})
    with_network(
        tree, "wan2", {"driver": "macvlan", "subnet": "10.40.0.0/24", "parent": "host:dummy0"}
    )
    assert errors(tree) == [
        "networks.wan.parent: \"\" is not an interface name (use letters, digits, '_', '.' and '-')"
    ]


@pytest.mark.parametrize(
    ("driver", "mode", "message"),
    [
        ("macvlan", "l3", "l3 is not a macvlan mode (choose bridge, private, vepa, passthru)"),
        ("ipvlan", "vepa", "vepa is not an ipvlan mode (choose l2, l3, l3s)"),
        ("ipvlan", "fast", '"fast" is not one of bridge, private, vepa, passthru, l2, l3, l3s'),
    ],
)
def test_it_rejects_a_mode_of_another_driver(
    tree: dict[str, Any], errors: Errors, driver: str, mode: str, message: str
) -> None:
    network = {"driver": driver, "subnet": "10.30.0.0/24", "parent": "lan", "mode": mode}
    with_network(tree, "wan", network)
    assert errors(tree) == [f"networks.wan.mode: {message}"]


def test_modes_default_per_driver(tree: dict[str, Any]) -> None:
    with_network(tree, "wan", {"driver": "macvlan", "subnet": "10.30.0.0/24", "parent": "lan"})
    with_network(tree, "core", {"driver": "bridge", "subnet": "10.50.0.0/24"})
    with_network(tree, "l2", {"driver": "ipvlan", "subnet": "10.40.0.0/24", "parent": "core"})
    lab = validate(tree)
    assert (lab.network("wan").mode, lab.network("l2").mode) == ("bridge", "l2")


def test_a_passthru_macvlan_takes_at_most_one_node(tree: dict[str, Any], errors: Errors) -> None:
    network = {"driver": "macvlan", "subnet": "10.30.0.0/24", "parent": "lan", "mode": "passthru"}
    with_network(tree, "wan", network)
    tree["nodes"]["web"]["networks"]["wan"] = {}
    tree["nodes"]["db"]["networks"]["wan"] = {}
    assert errors(tree) == [
        "networks.wan.mode: a passthru macvlan network takes at most one node; 2 attach to it "
        "(db, web)"
    ]


@pytest.mark.parametrize(
    ("vni", "message"),
    [
        (0, "0 is out of range: vni must be between 1 and 16777215"),
        (16777216, "16777216 is out of range: vni must be between 1 and 16777215"),
    ],
)
def test_it_rejects_a_vni_out_of_range(
    tree: dict[str, Any], errors: Errors, vni: int, message: str
) -> None:
    with_network(tree, "wide", {"driver": "overlay", "subnet": "10.30.0.0/24", "vni": vni})
    assert errors(tree) == [f"networks.wide.vni: {message}"]


def test_it_rejects_a_vni_used_twice(tree: dict[str, Any], errors: Errors) -> None:
    with_network(tree, "a", {"driver": "overlay", "subnet": "10.30.0.0/24", "vni": 7})
    with_network(tree, "b", {"driver": "overlay", "subnet": "10.40.0.0/24", "vni": 7})
    assert errors(tree) == ["networks.b.vni: VNI 7 is already used by a"]


@pytest.mark.parametrize(
    ("shaping", "message"),
    [
        (
            {"rate": "fast"},
            'rate: "fast" is not a rate (use a number with a bit, kbit, mbit or '
            "gbit unit, like 10mbit)",
        ),
        ({"rate": 0}, "rate: 0 is out of range: rate must be between 1bit and 1000gbit"),
        (
            {"delay": "20"},
            'delay: "20" is not a time (use a number with a us, ms or s unit, like 20ms)',
        ),
        ({"delay": "61s"}, 'delay: "61s" is out of range: delay must be at most 60s'),
        ({"jitter": "5ms"}, "jitter: jitter needs a delay (add delay, like 20ms)"),
        ({"loss": "101%"}, 'loss: "101%" is out of range: loss must be between 0% and 100%'),
        ({"loss": "half"}, 'loss: "half" is not a percentage (use a percentage like 0.5%)'),
        (
            {"burst": 1},
            "burst: unknown key (known keys: rate, delay, jitter, loss, duplicate, corrupt, "
            "reorder)",
        ),
    ],
)
def test_it_rejects_shaping_that_does_not_parse_or_is_out_of_range(
    tree: dict[str, Any], errors: Errors, shaping: dict[str, Any], message: str
) -> None:
    tree["networks"]["lan"]["shaping"] = shaping
    assert errors(tree) == [f"networks.lan.shaping.{message}"]


def test_it_rejects_a_network_name_that_breaks_the_pattern(
    tree: dict[str, Any], errors: Errors
) -> None:
    with_network(tree, "Lan_2", {"driver": "none"})
    with_network(tree, "x" * 32, {"driver": "none"})
    hint = "lower-case letters, digits and hyphens, starting with a letter, at most 31 characters"
    assert errors(tree) == [
        f'networks.Lan_2: "Lan_2" is not a valid network name ({hint})',
        f'networks.{"x" * 32}: "{"x" * 32}" is not a valid network name ({hint})',
    ]


def test_it_rejects_a_network_that_is_not_a_mapping(tree: dict[str, Any], errors: Errors) -> None:
    with_network(tree, "lan", ["bridge"])
    with_network(tree, "dmz", None)
    assert errors(tree) == [
        "networks.lan: a list is not a mapping (the network needs keys)",
        "networks.dmz: null is not allowed here (remove the key to take the default)",
    ]


def test_it_rejects_more_than_a_thousand_networks(tree: dict[str, Any], errors: Errors) -> None:
    tree["networks"] = {f"n{i}": {"driver": "none"} for i in range(1001)}
    # The nodes' attachments are not reported as unknown networks on top of it.
    assert errors(tree) == ["networks: a lab has at most 1,000 networks; this one has 1,001"]


def test_ipvlan_networks_on_one_parent_share_one_mode(tree: dict[str, Any], errors: Errors) -> None:
    with_network(tree, "ia", {"driver": "ipvlan", "subnet": "10.30.0.0/24", "parent": "lan"})
    network = {"driver": "ipvlan", "subnet": "10.40.0.0/24", "parent": "lan", "mode": "l3"}
    with_network(tree, "ib", network)
    assert errors(tree) == [
        "networks.ib.mode: ipvlan network ia on the same parent lan is in l2 mode; ipvlan "
        "networks sharing a parent share one mode (give this one a parent of its own)"
    ]


def test_it_rejects_macvlan_and_ipvlan_children_on_one_parent(
    tree: dict[str, Any], errors: Errors
) -> None:
    with_network(tree, "l2", {"driver": "ipvlan", "subnet": "10.30.0.0/24", "parent": "lan"})
    with_network(tree, "wan", {"driver": "macvlan", "subnet": "10.40.0.0/24", "parent": "lan"})
    assert errors(tree) == [
        "networks.wan.parent: lan is already the parent of ipvlan network l2; one link can "
        "carry macvlan, ipvlan or vlan children, one kind only"
    ]
