"""VLANs on a kernel that has 802.1Q and bridge VLAN filtering (the VM tier's): access
ports of one VLAN reach each other and not another VLAN's, a trunk sees their frames
tagged, and a vlan network's sub-interface of the bridge meets a trunk's in its VLAN."""

from __future__ import annotations

from typing import Any

import pytest

from workers.facts import Facts

from .conftest import Lab

pytestmark = pytest.mark.vm

VLAN_LAB: dict[str, Any] = {
    "labfile": 2,
    "name": "vlans",
    "networks": {
        "lan": {
            "driver": "bridge",
            "subnet": "10.238.0.0/24",
            "gateway": "none",
            "vlan_filtering": True,
        },
        "v100": {"driver": "vlan", "parent": "lan", "id": 100, "subnet": "10.238.100.0/24"},
    },
    "nodes": {
        "a1": {"networks": {"lan": {"ipv4": "10.238.0.11", "vlan": 10}}},
        "a2": {"networks": {"lan": {"ipv4": "10.238.0.12", "vlan": 10}}},
        "b1": {"networks": {"lan": {"ipv4": "10.238.0.13", "vlan": 20}}},
        # Makes its own sub-interfaces: a privileged node.
        "sw": {"privileged": True, "networks": {"lan": {"ipv4": "10.238.0.2", "vlans": [10, 100]}}},
        "h1": {"networks": {"v100": {"ipv4": "10.238.100.1"}}},
    },
}


@pytest.fixture
def lab(build: Any, facts: Facts) -> Lab:
    if "vlan" not in facts.link_kinds:
        pytest.skip("kernel lacks 8021q")
    if not facts.bridge_vlan_filtering:
        pytest.skip("kernel lacks bridge vlan filtering")
    built: Lab = build(VLAN_LAB)
    return built


def sub_interface(lab: Lab, vid: int, address: str, *route: str) -> str:
    """eth0.VID inside the trunk node, with `address`; its `ip -d link` line."""
    name = f"eth0.{vid}"
    for command in (
        ("ip", "link", "add", "link", "eth0", "name", name, "type", "vlan", "id", str(vid)),
        ("ip", "addr", "add", address, "dev", name),
        ("ip", "link", "set", name, "up"),
        *((("ip", "route", "add", *route, "dev", name),) if route else ()),
    ):
        done = lab.run("sw", *command)
        assert done.returncode == 0, done.stderr
    return lab.run("sw", "ip", "-d", "-o", "link", "show", "dev", name).stdout


def test_access_ports_of_one_vlan_reach_each_other_and_not_another_vlan(lab: Lab) -> None:
    assert lab.ping("a1", "10.238.0.12")
    assert lab.ping("a2", "10.238.0.11")
    assert not lab.ping("a1", "10.238.0.13")  # b1 is in VLAN 20
    assert not lab.ping("b1", "10.238.0.12")
    # The trunk's own untagged address is in VLAN 1, which no access port is in.
    assert not lab.ping("a1", "10.238.0.2")


def test_a_trunk_sees_vlan_10_tagged_and_reaches_its_access_ports(lab: Lab) -> None:
    assert not lab.ping("sw", "10.238.0.11")  # untagged, in VLAN 1: not a1's VLAN
    details = sub_interface(lab, 10, "10.238.0.20/32", "10.238.0.11/32")
    assert "vlan protocol 802.1Q id 10 " in details
    assert lab.ping("sw", "10.238.0.11")  # tagged 10 on the trunk, untagged on a1's port


def test_a_vlan_child_of_the_bridge_reaches_a_trunks_sub_interface(lab: Lab) -> None:
    details = lab.run("h1", "ip", "-d", "-o", "link", "show", "dev", "eth0").stdout
    assert "vlan protocol 802.1Q id 100 " in details
    assert not lab.ping("h1", "10.238.100.2")  # nothing in VLAN 100 holds it yet
    sub_interface(lab, 100, "10.238.100.2/24")
    assert lab.ping("h1", "10.238.100.2")
    assert lab.ping("sw", "10.238.100.1")
