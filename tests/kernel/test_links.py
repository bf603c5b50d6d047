"""Point-to-point links (labfile 2), checked from inside the nodes: a chain of three
nodes on two veth pairs, dual-stack, with impairments on one direction only."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workers.facts import Facts

from .conftest import Lab

CHAIN: dict[str, Any] = {
    "labfile": 2,
    "name": "chain",
    "nodes": {
        "r1": {"command": ["sleep", "infinity"]},
        "r2": {"command": ["sleep", "infinity"]},
        "r3": {"command": ["sleep", "infinity"]},
    },
    "links": [
        {
            "endpoints": ["r1:eth1", "r2:eth1"],
            "ipv4": ["10.241.12.1/30", "10.241.12.2/30"],
            "ipv6": ["fd00:241:12::1/64", "fd00:241:12::2/64"],
            "mtu": 9000,
        },
        {
            "endpoints": ["r2:eth2", "r3:eth1"],
            "ipv4": ["10.241.23.0/31", "10.241.23.1/31"],
            "impairments": {"r2:eth2": {"rate": "5mbit"}},
        },
    ],
}


def addresses(lab: Lab, node: str, ifname: str) -> dict[str, Any]:
    shown = lab.run(node, "ip", "-j", "addr", "show", "dev", ifname)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)[0]  # type: ignore[no-any-return]


@pytest.mark.vm
def test_a_link_joins_two_nodes_on_both_address_families(build: Any) -> None:
    lab: Lab = build(CHAIN)

    assert lab.ping("r1", "10.241.12.2")
    assert lab.run("r1", "ping", "-6", "-c2", "-i0.2", "-W1", "fd00:241:12::2").returncode == 0
    link = addresses(lab, "r1", "eth1")
    assert link["mtu"] == 9000 and link["operstate"] in ("UP", "UNKNOWN")
    families = sorted((a["family"], a["local"], a["prefixlen"]) for a in link["addr_info"])
    # The planned addresses and nothing else: no link-local address, no tentative one.
    assert families == [("inet", "10.241.12.1", 30), ("inet6", "fd00:241:12::1", 64)]
    assert not any(a.get("tentative") for a in link["addr_info"])


def test_a_link_is_point_to_point_only(build: Any) -> None:
    lab: Lab = build(CHAIN)

    # r1 and r3 share no link: nothing routes between them (r2 does not forward).
    assert lab.ping("r2", "10.241.23.1")
    assert not lab.ping("r1", "10.241.23.1")
    # Each node has exactly its own ends, named as the labfile says.
    names = json.loads(lab.run("r2", "ip", "-j", "link", "show").stdout)
    assert sorted(n["ifname"] for n in names) == ["eth1", "eth2", "lo"]


def test_impairments_of_one_direction_are_on_the_sending_end_only(build: Any) -> None:
    lab: Lab = build(CHAIN)

    sending = lab.run("r2", "tc", "qdisc", "show", "dev", "eth2").stdout
    receiving = lab.run("r3", "tc", "qdisc", "show", "dev", "eth1").stdout
    assert "tbf" in sending and "rate 5Mbit" in sending
    assert "tbf" not in receiving


@pytest.mark.vm
def test_a_delay_on_a_link_is_netem_on_both_ends(build: Any, facts: Facts) -> None:
    if "netem" not in facts.qdiscs:
        pytest.skip("kernel lacks netem")
    lab: Lab = build(
        {
            **CHAIN,
            "links": [
                {
                    "endpoints": ["r1:eth1", "r2:eth1"],
                    "ipv4": ["10.241.12.1/30", "10.241.12.2/30"],
                    "impairments": {"delay": "30ms", "duplicate": "1%"},
                }
            ],
        }
    )

    for node in ("r1", "r2"):
        qdisc = lab.run(node, "tc", "qdisc", "show", "dev", "eth1").stdout
        assert "netem" in qdisc and "delay 30ms" in qdisc and "duplicate 1%" in qdisc
