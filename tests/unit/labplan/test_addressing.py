"""Automatic addresses, interface names, MACs and default routes."""

from __future__ import annotations

from typing import Any

import pytest

from labplan import addressing
from labplan.labfile import load, validate
from labplan.model import Route


def test_nodes_get_the_lowest_free_addresses_in_sorted_name_order() -> None:
    assigned = addressing.assign_ipv4(
        "10.0.0.0/24", "10.0.0.1", {"c": None, "a": None, "b": "10.0.0.2", "d": None}
    )
    assert assigned == {"a": "10.0.0.3", "b": "10.0.0.2", "c": "10.0.0.4", "d": "10.0.0.5"}


def test_without_a_gateway_the_first_host_address_is_free() -> None:
    assert addressing.assign_ipv4("10.0.0.0/30", None, {"a": None, "b": None}) == {
        "a": "10.0.0.1",
        "b": "10.0.0.2",
    }


def test_capacity_counts_host_addresses_minus_the_gateway() -> None:
    assert addressing.capacity("10.0.0.0/24", "10.0.0.1") == 253
    assert addressing.capacity("10.0.0.0/30", None) == 2


def test_interface_names_skip_the_names_a_node_already_uses() -> None:
    assert addressing.assign_ifnames([None, "eth0", None, "wan", None]) == [
        "eth1",
        "eth0",
        "eth2",
        "wan",
        "eth3",
    ]


def test_macs_follow_dockers_scheme() -> None:
    assert addressing.docker_mac("10.10.0.10") == "02:42:0a:0a:00:0a"
    assert addressing.docker_mac("192.168.1.255") == "02:42:c0:a8:01:ff"


def test_the_default_route_uses_the_first_network_with_a_gateway() -> None:
    assert addressing.default_routes([None, "10.2.0.1", "10.3.0.1"]) == (
        Route("0.0.0.0/0", "10.2.0.1"),
    )
    assert addressing.default_routes([None, None]) == ()


LAB = """
labfile: 1
name: order
networks:
  lan: {subnet: 10.10.0.0/24}
  core: {subnet: 10.40.0.0/24}
  wan: {driver: macvlan, parent: lan, subnet: 10.20.0.0/24}
  l2: {driver: ipvlan, parent: core, subnet: 10.30.0.0/24}
nodes:
  zed: {networks: {wan: {}, lan: {}}}
  amy: {networks: {lan: {ipv4: 10.10.0.2}, l2: {}}}
  bob: {networks: {l2: {}, lan: {ifname: eth0}}}
"""


def attachments(lab_text: str) -> dict[str, list[tuple[Any, ...]]]:
    lab = load(lab_text)
    return {
        node.name: [(a.network, a.ipv4, a.ifname, a.mac) for a in node.networks]
        for node in lab.nodes
    }


def test_a_lab_gets_the_same_addresses_every_time() -> None:
    assert attachments(LAB) == attachments(LAB)
    assert attachments(LAB) == {
        "amy": [
            ("lan", "10.10.0.2", "eth0", "02:42:0a:0a:00:02"),
            ("l2", "10.30.0.1", "eth1", None),
        ],
        "bob": [
            ("l2", "10.30.0.2", "eth1", None),
            ("lan", "10.10.0.3", "eth0", "02:42:0a:0a:00:03"),
        ],
        "zed": [
            ("wan", "10.20.0.1", "eth0", "02:42:0a:14:00:01"),
            ("lan", "10.10.0.4", "eth1", "02:42:0a:0a:00:04"),
        ],
    }


def test_reordering_nodes_and_networks_in_the_file_does_not_change_addresses() -> None:
    lines = LAB.strip().splitlines()
    nodes_at = lines.index("nodes:")
    shuffled = "\n".join(
        lines[:3] + lines[3:nodes_at][::-1] + ["nodes:"] + lines[nodes_at + 1 :][::-1]
    )
    assert shuffled != LAB.strip()
    assert attachments(shuffled) == attachments(LAB)


def test_default_routes_go_through_the_first_attached_gateway() -> None:
    lab = load(LAB)
    assert lab.node("zed").routes == (Route("0.0.0.0/0", "10.10.0.1"),)  # wan has no gateway
    assert lab.node("bob").routes == (Route("0.0.0.0/0", "10.10.0.1"),)


@pytest.mark.parametrize("count", [1, 253])
def test_a_subnet_can_be_filled_exactly(count: int) -> None:
    tree = {
        "labfile": 1,
        "name": "full",
        "networks": {"lan": {"subnet": "10.0.0.0/24"}},
        "nodes": {f"n{i}": {"networks": {"lan": {}}} for i in range(count)},
    }
    lab = validate(tree)
    addresses = {n.networks[0].ipv4 for n in lab.nodes}
    assert len(addresses) == count
    assert "10.0.0.1" not in addresses and "10.0.0.255" not in addresses
