"""Links of one endpoint (labfile 2 `type: host | vxlan | dummy`), built for real: a veth
into the host's own namespace that answers to the admin's name for it, a VXLAN tunnel to
a far endpoint in a namespace the test makes (standing in for a host elsewhere, over a
veth of the test's own, never a host interface), and a dummy interface, on a kernel that
has dummy links. Destroying the lab leaves none of them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from workers.errors import ApplyError
from workers.facts import Facts

from .conftest import Lab

HOST_LINK: dict[str, Any] = {
    "labfile": 2,
    "name": "hostlink",
    "nodes": {"r1": {"command": ["sleep", "infinity"]}},
    "links": [
        {
            "type": "host",
            "endpoints": ["r1:eth9"],
            "ipv4": ["10.251.9.2/30", "10.251.9.1/30"],
            "ipv6": ["fd00:251:9::2/64", "fd00:251:9::1/64"],
            "host_ifname": "ctest-r1-eth9",
        }
    ],
}


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


def host_link(name: str) -> dict[str, Any] | None:
    shown = ip("-j", "addr", "show", "dev", name)
    return json.loads(shown.stdout)[0] if shown.returncode == 0 else None  # type: ignore[no-any-return]


def test_a_host_link_reaches_the_host_by_the_name_it_was_given(build: Any) -> None:
    lab: Lab = build(HOST_LINK)

    # The host side answers to the admin's name, and is the deployment's own link.
    side = host_link("ctest-r1-eth9")
    assert side is not None
    assert side["ifname"].startswith(f"{lab.token}-v")
    assert "ctest-r1-eth9" in side["altnames"]
    assert [(a["local"], a["prefixlen"]) for a in side["addr_info"] if a["family"] == "inet"] == [
        ("10.251.9.1", 30)
    ]
    # The node reaches the host's namespace over it, on both families.
    assert lab.ping("r1", "10.251.9.1")
    assert lab.run("r1", "ping", "-6", "-c1", "-w3", "fd00:251:9::1").returncode == 0

    lab.executor.destroy(lab.token)
    assert host_link("ctest-r1-eth9") is None
    assert not [line for line in ip("-o", "link").stdout.splitlines() if "ctest-r1-eth9" in line]


def test_a_host_link_whose_name_a_host_interface_holds_is_refused_and_nothing_stays(
    build: Any,
) -> None:
    taken = {**HOST_LINK, "links": [{**HOST_LINK["links"][0], "host_ifname": "ctest-taken"}]}
    made = ip("link", "add", "ctest-taken", "type", "veth", "peer", "name", "ctest-taken1")
    assert made.returncode == 0, made.stderr
    try:
        before = ip("-o", "link", "show", "dev", "ctest-taken").stdout
        with pytest.raises(
            ApplyError, match="ctest-taken is already the name of another host interface"
        ):
            build(taken)  # the fixture proves the deployment left nothing
        assert ip("-o", "link", "show", "dev", "ctest-taken").stdout == before
    finally:
        ip("link", "del", "ctest-taken")


def run_in(netns: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", "netns", "exec", netns, *command], capture_output=True, text=True)


@pytest.fixture
def far_end() -> Iterator[tuple[str, str]]:
    """A namespace of the test's own as the far tunnel endpoint, 198.18.0.2 over a veth
    of the test's from the host (198.18.0.1): (the host side's name, the far address)."""
    netns, near, far = f"ctest-far{os.getpid() % 1000}", "ctest-vx0", "ctest-vx1"
    assert ip("netns", "add", netns).returncode == 0
    try:
        assert (
            ip("link", "add", near, "type", "veth", "peer", "name", far, "netns", netns).returncode
            == 0
        )
        assert ip("addr", "add", "198.18.0.1/30", "dev", near).returncode == 0
        assert ip("link", "set", near, "up").returncode == 0
        for command in (
            ("ip", "addr", "add", "198.18.0.2/30", "dev", far),
            ("ip", "link", "set", far, "up"),
            ("ip", "link", "set", "lo", "up"),
            (
                "ip",
                "link",
                "add",
                "vx0",
                "type",
                "vxlan",
                "id",
                "4242",
                "remote",
                "198.18.0.1",
                "local",
                "198.18.0.2",
                "dstport",
                "4790",
                "dev",
                far,
            ),
            ("ip", "addr", "add", "10.251.77.2/24", "dev", "vx0"),
            ("ip", "link", "set", "vx0", "up"),
        ):
            done = run_in(netns, *command)
            assert done.returncode == 0, done.stderr
        yield near, "198.18.0.2"
    finally:
        ip("link", "del", near)
        ip("netns", "del", netns)


def test_a_vxlan_link_tunnels_to_its_remote_over_the_parent_it_names(
    build: Any, far_end: tuple[str, str]
) -> None:
    near, remote = far_end
    lab: Lab = build(
        {
            "labfile": 2,
            "name": "tunnel",
            "nodes": {"r1": {"command": ["sleep", "infinity"]}},
            "links": [
                {
                    "type": "vxlan",
                    "endpoints": ["r1:vx0"],
                    "remote": remote,
                    "vni": 4242,
                    "port": 4790,
                    "parent": near,
                    "ipv4": ["10.251.77.1/24"],
                }
            ],
        }
    )

    assert lab.ping("r1", "10.251.77.2")
    details = lab.run("r1", "ip", "-d", "-j", "link", "show", "dev", "vx0").stdout
    data = json.loads(details)[0]["linkinfo"]["info_data"]
    assert (data["id"], data["remote"], data["port"]) == (4242, remote, 4790)
    # The node holds the tunnel's device, and nothing of the host's way to the remote.
    assert lab.run("r1", "ip", "route", "get", remote).returncode != 0

    lab.executor.destroy(lab.token)
    assert not [line for line in ip("-o", "-d", "link").stdout.splitlines() if "id 4242" in line]


@pytest.mark.vm
def test_a_dummy_link_is_an_interface_of_the_node_alone(build: Any, facts: Facts) -> None:
    if "dummy" not in facts.link_kinds:
        pytest.skip("kernel lacks dummy links")
    lab: Lab = build(
        {
            "labfile": 2,
            "name": "loopback",
            "nodes": {"r1": {"command": ["sleep", "infinity"]}},
            "links": [{"type": "dummy", "endpoints": ["r1:lo1"], "ipv4": ["10.251.255.1/32"]}],
        }
    )

    shown = json.loads(lab.run("r1", "ip", "-d", "-j", "addr", "show", "dev", "lo1").stdout)[0]
    assert shown["linkinfo"]["info_kind"] == "dummy"
    assert [(a["local"], a["prefixlen"]) for a in shown["addr_info"]] == [("10.251.255.1", 32)]
    assert lab.ping("r1", "10.251.255.1")


def test_a_network_link_is_one_more_port_of_its_node_on_the_bridge(build: Any) -> None:
    lab: Lab = build(
        {
            "labfile": 2,
            "name": "mgmtnet",
            "networks": {"mgmt": {"subnet": "10.252.20.0/24", "gateway": "none"}},
            "nodes": {
                "r1": {"command": ["sleep", "infinity"], "networks": {"mgmt": {}}},
                "r2": {"command": ["sleep", "infinity"], "networks": {"mgmt": {}}},
            },
            "links": [
                {
                    "type": "network",
                    "endpoints": ["r1:eth1"],
                    "network": "mgmt",
                    "ipv4": ["10.252.20.50/24"],
                }
            ],
        }
    )

    # r1 is on the bridge twice: its eth0 and its eth1, each a port of the lab's bridge.
    ports = json.loads(ip("-j", "link", "show", "master", f"{lab.token}-b0").stdout)
    assert len(ports) == 3, [p["ifname"] for p in ports]
    shown = json.loads(lab.run("r1", "ip", "-j", "addr", "show", "dev", "eth1").stdout)[0]
    assert [a["local"] for a in shown["addr_info"] if a["family"] == "inet"] == ["10.252.20.50"]
    # r2 reaches r1 at the second port's address, and at its first one's.
    assert lab.ping("r2", "10.252.20.50")
    assert lab.ping("r2", "10.252.20.1")

    lab.executor.destroy(lab.token)
    assert ip("link", "show", f"{lab.token}-b0").returncode != 0
