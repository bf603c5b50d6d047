"""ipvlan in each of its modes, on a kernel that has it (the VM tier's): siblings reach
each other, all share the parent's MAC, and the mode the labfile names is the kernel's."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from workers.facts import Facts

from .conftest import Lab

pytestmark = pytest.mark.vm


def ipvlan_lab(mode: str) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "ipvlan",
        "networks": {
            "lan": {"driver": "bridge", "subnet": "10.237.0.0/24"},
            "iv": {"driver": "ipvlan", "parent": "lan", "mode": mode, "subnet": "10.237.1.0/24"},
        },
        "nodes": {
            # A port on the parent bridge gives it a carrier, which ipvlan children follow.
            "anchor": {"networks": {"lan": {}}},
            "i1": {"networks": {"iv": {"ipv4": "10.237.1.10"}}},
            "i2": {"networks": {"iv": {"ipv4": "10.237.1.11"}}},
        },
    }


def link(lab: Lab, node: str) -> str:
    """`ip -d link show eth0` inside the node."""
    return lab.run(node, "ip", "-d", "-o", "link", "show", "dev", "eth0").stdout


def mac(details: str) -> str:
    return details.split("link/ether ")[1].split()[0]


@pytest.mark.parametrize("mode", ["l2", "l3", "l3s"])
def test_ipvlan_siblings_reach_each_other_in_each_mode(build: Any, facts: Facts, mode: str) -> None:
    if "ipvlan" not in facts.link_kinds:
        pytest.skip("kernel lacks ipvlan")
    lab: Lab = build(ipvlan_lab(mode))

    assert lab.ping("i1", "10.237.1.11")
    assert lab.ping("i2", "10.237.1.10")
    one, two = link(lab, "i1"), link(lab, "i2")
    assert f"ipvlan  mode {mode} " in one and f"ipvlan  mode {mode} " in two
    bridges = subprocess.run(
        ["ip", "-o", "link", "show", "type", "bridge"], capture_output=True, text=True
    ).stdout
    bridge = next(line for line in bridges.splitlines() if f" {lab.token}-" in line)
    # ipvlan children answer with their parent's MAC: the bridge's, for both.
    assert mac(one) == mac(two) == mac(bridge)
    # l3 and l3s route between siblings without ARP; l2 resolves neighbours as usual.
    assert ("NOARP" in one.split(">")[0]) == (mode != "l2")
