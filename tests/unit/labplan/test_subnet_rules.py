"""Where lab subnets may lie: the admin's pool, the ranges no lab uses, and what a host
routes: its own routes and addresses and the other labs' subnets."""

from __future__ import annotations

from ipaddress import IPv4Network
from typing import Any

import pytest

from labplan import subnets
from labplan.codec import plan_to_dict
from labplan.compiler import compile_plan
from labplan.labfile import validate
from labplan.subnets import HostAddress, HostRoute

POOL = subnets.parse_pool(subnets.DEFAULT_POOL)
HOST_ROUTES = [
    HostRoute("0.0.0.0/0", "eth0", "192.0.2.1"),
    HostRoute("192.0.2.0/24", "eth0"),
    HostRoute("10.99.0.0/16", "eth1", "192.0.2.254"),
]
HOST_ADDRESSES = [HostAddress("192.0.2.2/24", "eth0"), HostAddress("172.31.5.5/32", "eth2")]


def lab(**networks: dict[str, Any]) -> Any:
    nodes = {f"n{i}": {"networks": {name: {}}} for i, name in enumerate(networks)}
    return validate({"labfile": 1, "name": "nets", "networks": networks, "nodes": nodes})


def test_the_default_pool_is_the_private_ranges() -> None:
    assert [str(block) for block in POOL] == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"]


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "the pool is empty"), ("10.0.0.0/8, nope", "'nope' is not an IPv4 network")],
)
def test_a_bad_pool_setting_says_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        subnets.parse_pool(text)


def test_every_subnet_inside_the_pool_passes() -> None:
    assert subnets.pool_errors(lab(lan={"subnet": "10.10.0.0/24"}), POOL) == []
    assert subnets.pool_errors(lab(lan={"subnet": "192.168.7.0/24"}), POOL) == []


def test_a_subnet_outside_the_pool_is_refused_naming_its_field() -> None:
    [error] = subnets.pool_errors(lab(lan={"subnet": "192.0.2.0/24"}), POOL)

    assert error.path == "networks.lan.subnet"
    assert error.message == (
        "192.0.2.0/24 is outside the lab subnet pool (10.0.0.0/8, 172.16.0.0/12, "
        "192.168.0.0/16); choose a subnet inside it"
    )


def test_a_subnet_only_partly_inside_the_pool_is_refused() -> None:
    [error] = subnets.pool_errors(lab(lan={"subnet": "172.0.0.0/8"}), POOL)
    assert "outside the lab subnet pool" in error.message


@pytest.mark.parametrize(
    ("subnet", "what"),
    [
        ("0.0.0.0/24", "'this network' 0.0.0.0/8"),
        ("127.0.0.0/24", "loopback 127.0.0.0/8"),
        ("169.254.169.0/24", "link-local 169.254.0.0/16 (cloud metadata lives there)"),
        ("224.0.0.0/24", "multicast 224.0.0.0/4"),
        ("250.0.0.0/24", "reserved 240.0.0.0/4"),
    ],
)
def test_reserved_ranges_are_refused_even_inside_a_wide_pool(subnet: str, what: str) -> None:
    everything = subnets.parse_pool("0.0.0.0/0")
    [error] = subnets.pool_errors(lab(lan={"subnet": subnet}), everything)
    assert (error.path, error.message) == (
        "networks.lan.subnet",
        f"{subnet} overlaps {what}, which no lab subnet may use",
    )


def test_a_macvlan_on_a_host_interface_takes_its_lans_subnet() -> None:
    tree = lab(mv={"driver": "macvlan", "parent": "host:eth0", "subnet": "192.0.2.0/24"})
    assert subnets.pool_errors(tree, POOL) == []


def test_only_subnets_with_a_gateway_on_the_host_are_routed() -> None:
    routed = lab(
        lan={"subnet": "10.1.0.0/24"},
        quiet={"subnet": "10.2.0.0/24", "gateway": "none"},
        mv={"driver": "macvlan", "parent": "lan", "subnet": "10.3.0.0/24"},
        inner={"subnet": "10.4.0.0/24", "internal": True},
    )
    [host] = compile_plan(routed, deployment=1).hosts  # networks in name order

    assert subnets.routed_subnets(host) == (IPv4Network("10.4.0.0/24"), IPv4Network("10.1.0.0/24"))
    assert subnets.routed_subnets_of_dict(
        plan_to_dict(compile_plan(routed, deployment=1)), "local"
    ) == (
        IPv4Network("10.4.0.0/24"),
        IPv4Network("10.1.0.0/24"),
    )


def test_an_overlay_is_routed_on_its_gateway_host_only() -> None:
    tree = validate(
        {
            "labfile": 1,
            "name": "ov",
            "networks": {"ov": {"driver": "overlay", "subnet": "10.40.0.0/24"}},
            "nodes": {
                "a": {"host": "ha", "networks": {"ov": {}}},
                "b": {"host": "hb", "networks": {"ov": {}}},
            },
        }
    )
    plan = compile_plan(tree, deployment=1, underlay={"ha": "10.0.0.1", "hb": "10.0.0.2"})
    routed = {host.host: subnets.routed_subnets(host) for host in plan.hosts}
    assert routed == {"ha": (IPv4Network("10.40.0.0/24"),), "hb": ()}


@pytest.mark.parametrize(
    ("subnet", "conflict"),
    [
        ("192.0.2.128/25", "192.0.2.128/25 overlaps the host's route 192.0.2.0/24 (dev eth0)"),
        ("10.99.3.0/24", "10.99.3.0/24 overlaps the host's route 10.99.0.0/16 (dev eth1)"),
        ("10.0.0.0/8", "10.0.0.0/8 overlaps the host's route 10.99.0.0/16 (dev eth1)"),
        ("172.31.5.0/24", "172.31.5.0/24 overlaps the host's address 172.31.5.5/32 (dev eth2)"),
        ("10.10.0.0/24", ""),
    ],
)
def test_a_routed_subnet_must_not_shadow_the_hosts_own(subnet: str, conflict: str) -> None:
    found = subnets.host_conflict(IPv4Network(subnet), HOST_ROUTES, HOST_ADDRESSES)
    assert found == conflict


def test_reported_routes_and_addresses_that_do_not_parse_are_left_out() -> None:
    reported = [{"dst": "10.0.0.0/8", "dev": "eth1"}, {"dst": "nope"}, "x", {"dev": "eth0"}]
    assert subnets.routes_from(reported) == [HostRoute("10.0.0.0/8", "eth1")]
    assert subnets.addresses_from([{"address": "192.0.2.2/24", "dev": "eth0"}, {}]) == [
        HostAddress("192.0.2.2/24", "eth0")
    ]
    assert subnets.routes_from(None) == []
