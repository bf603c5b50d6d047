"""IPv6 on networks (labfile 2 `subnet6`), checked from inside the nodes: a dual-stack
bridge, an IPv6 route, the node's addresses exactly the planned ones, and the host's side
of the lab taking no IPv6."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from labplan import naming

from .conftest import Lab

DUAL: dict[str, Any] = {
    "labfile": 2,
    "name": "dual",
    "networks": {
        "lan": {"subnet": "10.242.1.0/24", "subnet6": "fd00:242:1::/64"},
        "dmz": {"subnet": "10.242.2.0/24", "subnet6": "fd00:242:2::/64", "gateway": "none"},
    },
    "nodes": {
        "a": {
            "command": ["sleep", "infinity"],
            "networks": {"lan": {}},
            "routes": [{"dst": "fd00:242:2::/64", "via": "fd00:242:1::10"}],
        },
        "r": {
            "command": ["sleep", "infinity"],
            "networks": {"lan": {"ipv6": "fd00:242:1::10"}, "dmz": {}},
        },
        "b": {"command": ["sleep", "infinity"], "networks": {"dmz": {}}},
    },
}


def v6(lab: Lab, node: str, address: str) -> bool:
    return lab.run(node, "ping", "-6", "-c2", "-i0.2", "-W1", address).returncode == 0


def test_nodes_on_a_dual_stack_bridge_reach_each_other_over_ipv6(build: Any) -> None:
    lab: Lab = build(DUAL)

    assert v6(lab, "a", "fd00:242:1::10")
    assert lab.ping("a", "10.242.1.3")  # and IPv4 as before
    shown = json.loads(lab.run("a", "ip", "-j", "addr", "show", "dev", "eth0").stdout)[0]
    families = sorted((x["family"], x["local"]) for x in shown["addr_info"])
    assert families == [("inet", "10.242.1.2"), ("inet6", "fd00:242:1::2")]


def test_an_ipv6_route_is_installed_and_nothing_crosses_without_a_router(build: Any) -> None:
    lab: Lab = build(DUAL)

    routes = lab.run("a", "ip", "-6", "route", "show", "fd00:242:2::/64").stdout
    assert "via fd00:242:1::10 dev eth0" in routes
    # r does not forward (its netns leaves forwarding off): b stays out of a's reach.
    assert not v6(lab, "a", "fd00:242:2::2")


def test_the_host_side_bridge_takes_no_ipv6(build: Any) -> None:
    lab: Lab = build(DUAL)

    deployment = naming.deployment_from_token(lab.token)
    assert deployment is not None
    for index in range(2):  # dmz and lan
        bridge = naming.bridge_name(deployment, index)
        setting = Path(f"/proc/sys/net/ipv6/conf/{bridge}/disable_ipv6")
        assert setting.read_text().strip() == "1"
        shown = subprocess.run(
            ["ip", "-j", "-6", "addr", "show", "dev", bridge], capture_output=True, text=True
        )
        assert all(not entry.get("addr_info") for entry in json.loads(shown.stdout))
