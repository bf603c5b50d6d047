"""Every network driver, checked from inside the nodes."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from workers.facts import Facts

from .conftest import Lab


def two_bridges(internal: bool = False) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "bridges",
        "networks": {
            "lan": {"driver": "bridge", "subnet": "10.231.0.0/24", "internal": internal},
            "other": {"driver": "bridge", "subnet": "10.231.1.0/24"},
        },
        "nodes": {
            "a": {"networks": {"lan": {"ipv4": "10.231.0.10"}}},
            "b": {"networks": {"lan": {"ipv4": "10.231.0.11"}}},
            "c": {"networks": {"other": {"ipv4": "10.231.1.10"}}},
        },
    }


def test_nodes_on_one_bridge_reach_each_other_and_not_another_bridge(build: Any) -> None:
    lab: Lab = build(two_bridges())

    assert lab.ping("a", "10.231.0.11")
    assert lab.ping("a", "10.231.0.1")  # the gateway the lab's bridge holds
    assert not lab.ping("a", "10.231.1.10")


def test_node_interfaces_carry_no_ipv6_like_dockers_ipv4_only_networks(build: Any) -> None:
    lab: Lab = build(two_bridges())

    addresses = lab.run("a", "ip", "-o", "addr", "show", "dev", "eth0").stdout
    assert "inet 10.231.0.10/24" in addresses
    assert "inet6" not in addresses  # no link-local, so no DAD or MLD flooding the bridge
    assert lab.run("a", "cat", "/proc/sys/net/ipv6/conf/eth0/disable_ipv6").stdout == "1\n"
    loopback = lab.run("a", "ip", "-o", "addr", "show", "dev", "lo").stdout
    assert "inet6 ::1/128" in loopback  # only the interfaces of networks lose IPv6
    host_side = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True)
    mine = [line for line in host_side.stdout.splitlines() if f" {lab.token}-" in line]
    assert any(" inet 10.231.0.1/24" in line for line in mine)  # the bridge's gateway
    assert not [line for line in mine if " inet6 " in line]


def test_an_internal_bridge_has_no_way_out(build: Any) -> None:
    lab: Lab = build(two_bridges(internal=True))

    assert lab.ping("a", "10.231.0.11")
    assert not lab.ping("a", "10.231.1.10")
    assert not lab.ping("c", "10.231.0.10")


def test_a_node_on_none_has_only_loopback(build: Any) -> None:
    lab: Lab = build(
        {
            "labfile": 1,
            "name": "alone",
            "networks": {"isolated": {"driver": "none"}},
            "nodes": {"hermit": {"networks": {"isolated": {}}}},
        }
    )

    links = lab.run("hermit", "ip", "-o", "link", "show").stdout.splitlines()
    assert [line.split(":")[1].strip() for line in links] == ["lo"]


def test_a_node_on_host_sees_the_hosts_interfaces(build: Any) -> None:
    lab: Lab = build(
        {
            "labfile": 1,
            "name": "hostnet",
            "networks": {"hostnet": {"driver": "host"}},
            "nodes": {"h": {"networks": {"hostnet": {}}}},
        }
    )
    host = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout

    inside = lab.run("h", "ip", "-o", "link", "show").stdout

    names = {line.split(":")[1].strip() for line in host.splitlines()}
    assert {line.split(":")[1].strip() for line in inside.splitlines()} & names >= {"lo", "eth0"}


def macvlan_lab(mode: str) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "macvlan",
        "networks": {
            "lan": {"driver": "bridge", "subnet": "10.232.0.0/24"},
            "mv": {"driver": "macvlan", "parent": "lan", "mode": mode, "subnet": "10.232.1.0/24"},
        },
        "nodes": {
            # A port on the parent bridge gives it a carrier, which macvlan children follow.
            "anchor": {"networks": {"lan": {}}},
            "m1": {"networks": {"mv": {"ipv4": "10.232.1.10"}}},
            "m2": {"networks": {"mv": {"ipv4": "10.232.1.11"}}},
        },
    }


def test_macvlan_bridge_mode_siblings_reach_each_other(build: Any) -> None:
    lab: Lab = build(macvlan_lab("bridge"))

    assert lab.ping("m1", "10.232.1.11")


def test_macvlan_private_mode_siblings_do_not(build: Any) -> None:
    lab: Lab = build(macvlan_lab("private"))

    assert not lab.ping("m1", "10.232.1.11")


@pytest.mark.vm
def test_ipvlan_siblings_reach_each_other(build: Any, facts: Facts) -> None:
    if "ipvlan" not in facts.link_kinds:
        pytest.skip("kernel lacks ipvlan")
    lab: Lab = build(
        {
            "labfile": 1,
            "name": "ipvlan",
            "networks": {
                "lan": {"driver": "bridge", "subnet": "10.233.0.0/24"},
                "iv": {"driver": "ipvlan", "parent": "lan", "subnet": "10.233.1.0/24"},
            },
            "nodes": {
                "anchor": {"networks": {"lan": {}}},
                "i1": {"networks": {"iv": {"ipv4": "10.233.1.10"}}},
                "i2": {"networks": {"iv": {"ipv4": "10.233.1.11"}}},
            },
        }
    )

    assert lab.ping("i1", "10.233.1.11")


def shaped(shaping: dict[str, str]) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "shaped",
        "networks": {"lan": {"driver": "bridge", "subnet": "10.234.0.0/24", "shaping": shaping}},
        "nodes": {"s": {"networks": {"lan": {}}}},
    }


def test_a_rate_puts_tbf_on_the_nodes_link(build: Any) -> None:
    lab: Lab = build(shaped({"rate": "10mbit"}))

    qdiscs = lab.run("s", "tc", "qdisc", "show", "dev", "eth0").stdout
    assert "qdisc tbf 1: root" in qdiscs and "rate 10Mbit" in qdiscs


@pytest.mark.vm
def test_a_delay_puts_netem_on_the_nodes_link(build: Any, facts: Facts) -> None:
    if "netem" not in facts.qdiscs:
        pytest.skip("kernel lacks netem")
    lab: Lab = build(shaped({"delay": "20ms"}))

    assert "qdisc netem" in lab.run("s", "tc", "qdisc", "show", "dev", "eth0").stdout
