"""IPv6 containment of a bridge with a `gateway6`, tried for real from inside nodes on a
simulated host that has IPv6 of its own (an uplink with a default route, a LAN with a
neighbour): the host answers only the gateway6's pings and the neighbour discovery that
finds it, NAT66 reaches the internet but never the host's networks, IPv6 forwarding goes
on for the labs only (the host's own links keep their switch, so they still take router
advertisements) and off again with them, and a lab whose subnet6 would shadow a route of
the host is refused before anything is made.

Every control step (the attack succeeding once the rule is removed) shows the test
could fail.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from labplan import naming
from workers.errors import ConflictRefusedError
from workers.hostguard import network_facts
from workers.kernel.netns import Namespaces

from .conftest import compile_dict, new_deployment
from .test_containment import World, deployed, ip, node_connects, run_in, world

__all__ = ["world"]  # the simulated host, given IPv6 below

UPLINK_HOST6, UPLINK_ROUTER6 = "2001:db8:1::2", "2001:db8:1::1"
LAN_HOST6, LAN_NEIGHBOUR6 = "fd00:51::1", "fd00:51::2"
SERVER6 = "2001:db8:ff::1"  # on the internet, behind the router


def pings6(netns: str, address: str) -> bool:
    return run_in(netns, "ping", "-c1", "-i0.2", "-w3", address).returncode == 0


@pytest.fixture
def world6(world: World) -> World:
    """The simulated host of test_containment, with IPv6 on its uplink and its LAN."""
    host, net, lan = world.host, world.net, world.lan
    for netns, address, dev in (
        (host, f"{UPLINK_HOST6}/64", "uplink"),
        (net, f"{UPLINK_ROUTER6}/64", "uplink"),
        (net, f"{SERVER6}/128", "lo"),
        (host, f"{LAN_HOST6}/64", "lan0"),
        (lan, f"{LAN_NEIGHBOUR6}/64", "eth0"),
    ):
        ip("-n", netns, "addr", "add", address, "dev", dev, "nodad")
    ip("-n", host, "-6", "route", "add", "default", "via", UPLINK_ROUTER6)
    ip("-n", lan, "-6", "route", "add", "default", "via", LAN_HOST6)
    ip("-n", net, "-6", "route", "add", "fd00:51::/64", "via", UPLINK_HOST6)
    run_in(host, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=0")
    return world


def lab6(
    subnet6: str,
    subnet: str = "10.213.70.0/24",
    name: str = "contained6",
    nodes: int = 1,
    **lan: Any,
) -> dict[str, Any]:
    """A dual-stack bridge lab whose gateway6 is its subnet6's first address."""
    gateway6 = subnet6.split("/")[0] + "1"
    return {
        "labfile": 2,
        "name": name,
        "networks": {"lan": {"subnet": subnet, "subnet6": subnet6, "gateway6": gateway6, **lan}},
        "nodes": {f"n{i}": {"networks": {"lan": {}}} for i in range(nodes)},
    }


def forwarding(world: World, link: str = "all") -> str:
    path = f"/proc/sys/net/ipv6/conf/{link}/forwarding"
    return run_in(world.host, "cat", path).stdout.strip()


@contextmanager
def listening6(netns: str) -> Iterator[int]:
    """A TCP service of the simulated host on [::]; its port."""
    with Namespaces(f"/run/netns/{netns}"):
        server = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        server.bind(("::", 0))
        server.listen(64)
        yield server.getsockname()[1]
    finally:
        server.close()


def test_a_node_reaches_no_ipv6_service_of_its_host_only_the_gateway6s_ping(
    world6: World,
) -> None:
    with listening6(world6.host) as port, deployed(world6, lab6("fd00:70::/64")) as [lab]:
        assert lab.ping("n0", "fd00:70::1")  # neighbour discovery and the echo it needs
        for address in ("fd00:70::1", UPLINK_HOST6, LAN_HOST6):
            assert not node_connects(lab, "n0", address, port), address
        assert not lab.ping("n0", UPLINK_HOST6)

        # Control: the same connection goes through once the bridge's IPv6 guard is gone.
        chain = f"in_{lab.token}_b0"
        run_in(world6.host, "nft", "delete", "chain", "ip6", lab.token, chain)
        assert node_connects(lab, "n0", "fd00:70::1", port)


def test_nat66_reaches_the_internet_but_not_the_hosts_networks(world6: World) -> None:
    with deployed(world6, lab6("fd00:70::/64")) as [lab]:
        route = lab.run("n0", "ip", "-6", "route", "show", "default").stdout
        assert "via fd00:70::1" in route
        assert lab.ping("n0", SERVER6)
        for address in (LAN_NEIGHBOUR6, UPLINK_ROUTER6):
            assert not lab.ping("n0", address), address
            assert pings6(world6.host, address)  # the host itself reaches them


def test_ipv6_forwarding_goes_on_for_the_labs_only_and_off_again_with_them(
    world6: World,
) -> None:
    assert forwarding(world6) == "0"
    assert not pings6(world6.lan, SERVER6)  # the host routes nothing

    with deployed(world6, lab6("fd00:70::/64")) as [lab]:
        assert forwarding(world6) == "1"
        # The host's own links are still hosts: they take router advertisements.
        assert forwarding(world6, "uplink") == "0" and forwarding(world6, "lan0") == "0"
        assert lab.ping("n0", SERVER6)
        assert not pings6(world6.lan, SERVER6)  # the neighbour is not routed through

        # Control: with the guard gone the host would forward the neighbour's packets.
        run_in(world6.host, "nft", "delete", "chain", "inet", "labmgr", "forward_guard6")
        assert pings6(world6.lan, SERVER6)

    assert forwarding(world6) == "0" and forwarding(world6, "uplink") == "0"
    assert not pings6(world6.lan, SERVER6)


def test_two_labs_reach_neither_each_others_ipv6_nor_gateway6(world6: World) -> None:
    first, second = lab6("fd00:70::/64"), lab6("fd00:71::/64", "10.213.71.0/24", "second")
    with deployed(world6, first, second) as [lab, other]:
        assert lab.ping("n0", "fd00:70::1") and other.ping("n0", "fd00:71::1")
        assert lab.ping("n0", SERVER6) and other.ping("n0", SERVER6)
        assert not lab.ping("n0", "fd00:71::2")
        assert not lab.ping("n0", "fd00:71::1")


def test_an_internal_bridge_with_a_gateway6_routes_no_ipv6(world6: World) -> None:
    with deployed(world6, lab6("fd00:70::/64", nodes=2, internal=True)) as [lab]:
        assert lab.ping("n0", "fd00:70::1") and lab.ping("n0", "fd00:70::3")
        assert not lab.ping("n0", SERVER6)
        assert forwarding(world6) == "0"


def test_a_lab_routing_an_ipv6_network_the_host_is_on_is_refused_leaving_nothing(
    world6: World,
) -> None:
    executor = world6.executor()
    deployment = new_deployment()
    token = naming.deployment_token(deployment)

    with pytest.raises(ConflictRefusedError) as refused:
        executor.apply(compile_dict(lab6("fd00:51::/64"), deployment), "local")

    assert str(refused.value) == (
        "this host cannot route fd00:51::/64 overlaps the host's route fd00:51::/64 (dev lan0)"
    )
    assert world6.leftovers(token) == [] and executor.journal.tokens() == []
    assert pings6(world6.host, LAN_NEIGHBOUR6)


def test_the_agent_reports_the_hosts_ipv6_routes_and_addresses_but_not_its_labs(
    world6: World,
) -> None:
    with deployed(world6, lab6("fd00:70::/64")) as [lab]:
        driver = lab.executor.driver()
        try:
            reported = network_facts(driver)
        finally:
            driver.close()

    routes = {(r["dst"], r["dev"], r["via"]) for r in reported["routes"]}
    assert {("::/0", "uplink", UPLINK_ROUTER6), ("fd00:51::/64", "lan0", "")} <= routes
    addresses = {(a["address"], a["dev"]) for a in reported["addresses"]}
    assert {(f"{UPLINK_HOST6}/64", "uplink"), (f"{LAN_HOST6}/64", "lan0")} <= addresses
    assert "fd00:70::" not in str(reported)
