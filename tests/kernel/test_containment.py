"""Network containment, tried for real from inside nodes, on simulated hosts: a host's
services are out of a lab's reach (but the pings its gateway answers), NAT reaches the
internet but never the networks the host is on nor link-local metadata, forwarding is
turned on for the labs only, VXLAN is taken only from the peers, and a lab routing a
subnet the host already routes is refused before anything is made.

Each test builds its own little world of namespaces: a simulated host ("host", the
agent's root namespace), an upstream router with a server behind it ("net"), a
neighbour on the host's local network ("lan"). Every control step (the attack succeeding
once the rule is removed) shows the test could fail.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from labplan import naming
from workers.errors import ConflictRefusedError
from workers.executor import Executor
from workers.hostguard import network_facts
from workers.kernel.netns import Namespaces
from workers.wiring import kernel_executor

from .conftest import PYTHON, Lab, compile_dict, leftovers, new_deployment

UPLINK_HOST, UPLINK_ROUTER = "203.0.113.2", "203.0.113.1"
LAN_HOST, LAN_NEIGHBOUR = "198.51.100.1", "198.51.100.2"
SERVER = "198.18.0.1"  # on the internet, behind the router
METADATA = "169.254.169.254"
CONNECT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2)"


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=True).stdout


def run_in(netns: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv], capture_output=True, text=True, timeout=30
    )


def pings(netns: str, address: str) -> bool:
    return run_in(netns, "ping", "-c2", "-i0.2", "-W1", address).returncode == 0


def node_connects(lab: Lab, node: str, address: str, port: int) -> bool:
    return lab.run(node, PYTHON, "-c", CONNECT, address, str(port)).returncode == 0


def veth(a: str, a_name: str, b: str, b_name: str) -> None:
    ip("-n", a, "link", "add", a_name, "type", "veth", "peer", b_name, "netns", b)
    ip("-n", a, "link", "set", a_name, "up")
    ip("-n", b, "link", "set", b_name, "up")


@dataclass
class World:
    host: str
    net: str
    lan: str
    data_dir: Path

    def executor(self) -> Executor:
        return kernel_executor(self.data_dir, root_netns=f"/run/netns/{self.host}")

    def ip_forward(self) -> str:
        return run_in(self.host, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip()

    def tables(self) -> list[str]:
        return run_in(self.host, "nft", "list", "tables").stdout.splitlines()

    def leftovers(self, token: str) -> list[str]:
        """The deployment's objects, in the simulated host and in the machine's kernel."""
        links = ip("-n", self.host, "-o", "link", "show").splitlines()
        found = [f"link {line}" for line in links if f" {token}-" in line]
        found += [f"nft {t}" for t in self.tables() if t.endswith(f" {token}")]
        return found + leftovers(token)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    tag = naming.base36(os.getpid() % 1_000_000)
    names = {role: f"lmt{tag}-{role}" for role in ("host", "net", "lan")}
    try:
        for name in names.values():
            ip("netns", "add", name)
            ip("-n", name, "link", "set", "lo", "up")
        host, net, lan = names["host"], names["net"], names["lan"]
        veth(host, "uplink", net, "uplink")
        ip("-n", host, "addr", "add", f"{UPLINK_HOST}/24", "dev", "uplink")
        ip("-n", net, "addr", "add", f"{UPLINK_ROUTER}/24", "dev", "uplink")
        ip("-n", host, "route", "add", "default", "via", UPLINK_ROUTER)
        for address in (SERVER, METADATA):
            ip("-n", net, "addr", "add", f"{address}/32", "dev", "lo")
        veth(host, "lan0", lan, "eth0")
        ip("-n", host, "addr", "add", f"{LAN_HOST}/24", "dev", "lan0")
        ip("-n", lan, "addr", "add", f"{LAN_NEIGHBOUR}/24", "dev", "eth0")
        ip("-n", lan, "route", "add", "default", "via", LAN_HOST)
        ip("-n", net, "route", "add", "198.51.100.0/24", "via", UPLINK_HOST)
        # A host that routes nothing until labmgr needs it to (new namespaces inherit
        # the machine's setting).
        run_in(host, "sysctl", "-qw", "net.ipv4.ip_forward=0")
        yield World(host, net, lan, tmp_path / "agent")
    finally:
        for name in names.values():
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


def bridge_lab(subnet: str, name: str = "contained", nodes: int = 1, **lan: Any) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": name,
        "networks": {"lan": {"driver": "bridge", "subnet": subnet, **lan}},
        "nodes": {f"n{i}": {"networks": {"lan": {}}} for i in range(nodes)},
    }


@contextmanager
def deployed(world: World, *labs: dict[str, Any]) -> Iterator[list[Lab]]:
    """The labs applied on the simulated host; destroyed after, and proved gone."""
    executor = world.executor()
    built: list[Lab] = []
    try:
        for data in labs:
            deployment = new_deployment()
            token = naming.deployment_token(deployment)
            result = executor.apply(compile_dict(data, deployment), "local")
            built.append(Lab(executor, token, result))
        yield built
    finally:
        for lab in built:
            executor.destroy(lab.token)
        for lab in built:
            assert world.leftovers(lab.token) == []
        assert "table inet labmgr" not in world.tables()  # went with the last lab


@contextmanager
def listening(netns: str) -> Iterator[int]:
    """A TCP service of the simulated host on 0.0.0.0; its port. The kernel completes a
    connection into the backlog, so nothing needs to accept."""
    with Namespaces(f"/run/netns/{netns}"):  # the socket stays in the namespace it was made in
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        server.bind(("0.0.0.0", 0))
        server.listen(64)
        yield server.getsockname()[1]
    finally:
        server.close()


def test_a_node_reaches_no_service_of_its_host_only_the_gateways_ping(world: World) -> None:
    with listening(world.host) as port, deployed(world, bridge_lab("10.252.0.0/24")) as [lab]:
        assert lab.ping("n0", "10.252.0.1")  # what the lab's own gateway needs
        for address in ("10.252.0.1", UPLINK_HOST, LAN_HOST):
            assert not node_connects(lab, "n0", address, port), address
        assert not lab.ping("n0", UPLINK_HOST)

        # Control: the same connection goes through once the bridge's guard is gone.
        bridge = f"{lab.token}-b0"
        run_in(
            world.host, "nft", "delete", "chain", "ip", lab.token, f"in_{bridge.replace('-', '_')}"
        )
        assert node_connects(lab, "n0", "10.252.0.1", port)


def test_nat_reaches_the_internet_but_not_the_hosts_networks_nor_metadata(world: World) -> None:
    with deployed(world, bridge_lab("10.252.0.0/24")) as [lab]:
        assert lab.ping("n0", SERVER)
        for address in (LAN_NEIGHBOUR, UPLINK_ROUTER, METADATA):
            assert not lab.ping("n0", address), address
            assert pings(world.host, address)  # the host itself reaches them


def test_two_labs_on_one_host_reach_neither_each_other_nor_each_others_gateway(
    world: World,
) -> None:
    first, second = bridge_lab("10.252.0.0/24", "first"), bridge_lab("10.253.0.0/24", "second")
    with deployed(world, first, second) as [lab, other]:
        assert lab.ping("n0", "10.252.0.1") and other.ping("n0", "10.253.0.1")
        assert not lab.ping("n0", "10.253.0.2")
        assert not lab.ping("n0", "10.253.0.1")


def test_forwarding_goes_on_for_the_labs_only_and_off_again_with_them(world: World) -> None:
    assert world.ip_forward() == "0"
    assert not pings(world.lan, SERVER)  # the host routes nothing

    with deployed(world, bridge_lab("10.252.0.0/24")) as [lab]:
        assert world.ip_forward() == "1"
        assert lab.ping("n0", SERVER)  # the lab's NAT works
        assert not pings(world.lan, SERVER)  # the neighbour is not routed through the host

        # Control: with the guard gone the host would forward the neighbour's packets.
        run_in(world.host, "nft", "delete", "chain", "inet", "labmgr", "forward_guard")
        assert pings(world.lan, SERVER)

    assert world.ip_forward() == "0"
    assert not pings(world.lan, SERVER)


def test_a_lab_routing_a_network_the_host_is_on_is_refused_leaving_nothing(
    world: World,
) -> None:
    executor = world.executor()
    deployment = new_deployment()
    token = naming.deployment_token(deployment)

    with pytest.raises(ConflictRefusedError) as refused:
        executor.apply(compile_dict(bridge_lab("198.51.100.128/25"), deployment), "local")

    assert str(refused.value) == (
        "this host cannot route 198.51.100.128/25 overlaps the host's route 198.51.100.0/24"
        " (dev lan0)"
    )
    assert world.leftovers(token) == [] and executor.journal.tokens() == []
    assert pings(world.host, LAN_NEIGHBOUR)  # the host's own network still works


def test_a_lab_routing_another_labs_subnet_is_refused_and_the_other_keeps_working(
    world: World,
) -> None:
    with deployed(world, bridge_lab("10.252.0.0/24", "first")) as [first]:
        executor = first.executor
        deployment = new_deployment()
        token = naming.deployment_token(deployment)
        with pytest.raises(ConflictRefusedError, match=f"routed here by deployment {first.token}"):
            executor.apply(compile_dict(bridge_lab("10.252.0.0/25", "second"), deployment), "local")

        assert world.leftovers(token) == []
        assert first.ping("n0", "10.252.0.1")


def test_the_agent_reports_the_hosts_routes_and_addresses_but_not_its_labs(world: World) -> None:
    with deployed(world, bridge_lab("10.252.0.0/24")) as [lab]:
        driver = lab.executor.driver()
        try:
            reported = network_facts(driver)
        finally:
            driver.close()

    routes = {(r["dst"], r["dev"], r["via"]) for r in reported["routes"]}
    assert {
        ("0.0.0.0/0", "uplink", UPLINK_ROUTER),
        ("203.0.113.0/24", "uplink", ""),
        ("198.51.100.0/24", "lan0", ""),
    } <= routes
    addresses = {(a["address"], a["dev"]) for a in reported["addresses"]}
    assert {(f"{UPLINK_HOST}/24", "uplink"), (f"{LAN_HOST}/24", "lan0")} <= addresses
    assert not [r for r in reported["routes"] if r["dev"].startswith("lm")]
    assert "10.252.0.1/24" not in str(reported)


def test_labs_whose_host_routes_nothing_may_share_a_subnet(world: World) -> None:
    quiet = bridge_lab("10.252.0.0/24", "quiet", nodes=2, gateway="none")
    also = bridge_lab("10.252.0.0/24", "also", nodes=2, gateway="none")
    with deployed(world, quiet, also) as [lab, other]:
        assert lab.ping("n0", "10.252.0.2") and other.ping("n0", "10.252.0.2")


# --- VXLAN from the peers only -------------------------------------------------------------

UNDERLAY = {"ha": "10.254.0.1", "hb": "10.254.0.2", "evil": "10.254.0.66"}


@dataclass
class Underlay:
    netns: dict[str, str]  # role -> namespace name
    data_dir: Path


@pytest.fixture
def underlay(tmp_path: Path) -> Iterator[Underlay]:
    """Two simulated hosts and a stranger on one switched underlay."""
    tag = naming.base36(os.getpid() % 1_000_000)
    names = {role: f"lmt{tag}-{role}" for role in ("ha", "hb", "evil", "sw")}
    try:
        for name in names.values():
            ip("netns", "add", name)
        ip("-n", names["sw"], "link", "add", "sw0", "type", "bridge")
        ip("-n", names["sw"], "link", "set", "sw0", "up")
        for role, address in UNDERLAY.items():
            veth(names["sw"], f"p{role}", names[role], "underlay")
            ip("-n", names["sw"], "link", "set", f"p{role}", "master", "sw0")
            ip("-n", names[role], "addr", "add", f"{address}/24", "dev", "underlay")
        yield Underlay(names, tmp_path)
    finally:
        for name in names.values():
            subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)


def vxlan_frame(vni: int, target: str) -> bytes:
    """A VXLAN packet carrying a broadcast ARP request for `target` from a stranger."""
    stranger_mac, stranger_ip = bytes.fromhex("020000000099"), socket.inet_aton("10.255.0.99")
    arp = struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + stranger_mac + stranger_ip
    arp += b"\0" * 6 + socket.inet_aton(target)
    ethernet = b"\xff" * 6 + stranger_mac + struct.pack("!H", 0x0806) + arp
    return struct.pack("!B3xI", 0x08, vni << 8) + ethernet


def inject(world: Underlay, frame: bytes, to: str) -> None:
    send = (
        "import socket, sys;"
        " socket.socket(2, 2).sendto(bytes.fromhex(sys.argv[1]), (sys.argv[2], 4789))"
    )
    assert run_in(world.netns["evil"], PYTHON, "-c", send, frame.hex(), to).returncode == 0


def heard_stranger(lab: Lab) -> bool:
    """Whether the node took the stranger's ARP request (it learns the sender)."""
    return "10.255.0.99" in lab.run("left", "ip", "neigh", "show").stdout


def test_vxlan_reaches_a_lab_only_from_its_peer_hosts(underlay: Underlay) -> None:
    deployment = new_deployment()
    token = naming.deployment_token(deployment)
    lab_tree = {
        "labfile": 1,
        "name": "overlay",
        "networks": {"ov": {"driver": "overlay", "subnet": "10.255.0.0/24"}},
        "nodes": {
            "left": {"host": "ha", "networks": {"ov": {"ipv4": "10.255.0.10"}}},
            "right": {"host": "hb", "networks": {"ov": {"ipv4": "10.255.0.11"}}},
        },
    }
    plan = compile_dict(lab_tree, deployment, underlay={h: UNDERLAY[h] for h in ("ha", "hb")})
    vni = next(op["vni"] for op in plan["hosts"][0]["ops"] if op["op"] == "create_vxlan")
    executors = {
        host: kernel_executor(
            underlay.data_dir / host, root_netns=f"/run/netns/{underlay.netns[host]}"
        )
        for host in ("ha", "hb")
    }
    try:
        results = {host: ex.apply(plan, host) for host, ex in executors.items()}
        left = Lab(executors["ha"], token, results["ha"])
        assert left.ping("left", "10.255.0.11")  # the real peers still talk

        inject(underlay, vxlan_frame(vni, "10.255.0.10"), UNDERLAY["ha"])
        assert not heard_stranger(left)

        # Control: without the host-wide table, the stranger's frame lands in the lab.
        run_in(underlay.netns["ha"], "nft", "delete", "table", "inet", "labmgr")
        inject(underlay, vxlan_frame(vni, "10.255.0.10"), UNDERLAY["ha"])
        assert heard_stranger(left)
    finally:
        for executor in executors.values():
            executor.destroy(token)
    for host in ("ha", "hb"):
        tables = run_in(underlay.netns[host], "nft", "list", "tables").stdout
        links = ip("-n", underlay.netns[host], "-o", "link", "show")
        assert "labmgr" not in tables and token not in tables and f" {token}-" not in links
    assert leftovers(token) == []
