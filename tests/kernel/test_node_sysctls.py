"""A node's own net.* sysctls (labfile 2 `sysctls`), on the real kernel: a router node with
`net.ipv4.ip_forward: 1` forwards between two bridges where the same node without it does
not, the host's own switch is untouched, and a sysctl the kernel does not have fails the
deployment naming the field, leaving nothing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from labplan import naming
from workers.errors import ApplyError
from workers.wiring import kernel_executor

from .conftest import compile_dict, leftovers, new_deployment

ROUTED: dict[str, Any] = {
    "labfile": 2,
    "name": "routed",
    "networks": {
        "left": {"subnet": "10.213.95.0/24", "gateway": "none"},
        "right": {"subnet": "10.213.96.0/24", "gateway": "none"},
    },
    "nodes": {
        "a": {
            "networks": {"left": {"ipv4": "10.213.95.20"}},
            "routes": [{"dst": "10.213.96.0/24", "via": "10.213.95.10"}],
        },
        "r": {
            "networks": {"left": {"ipv4": "10.213.95.10"}, "right": {"ipv4": "10.213.96.10"}},
            "sysctls": {"net.ipv4.ip_forward": 1},
        },
        "b": {
            "networks": {"right": {"ipv4": "10.213.96.20"}},
            "routes": [{"dst": "10.213.95.0/24", "via": "10.213.96.10"}],
        },
    },
}
HOST_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def test_a_router_node_forwards_with_its_own_sysctl_and_the_host_is_untouched(
    build: Any,
) -> None:
    before = HOST_FORWARD.read_text()
    lab = build(ROUTED)

    assert lab.run("r", "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    assert lab.ping("a", "10.213.96.20")  # b, through r
    assert HOST_FORWARD.read_text() == before

    # Control: the same lab without the sysctl routes nothing through r.
    plain = copy.deepcopy(ROUTED)
    del plain["nodes"]["r"]["sysctls"]
    plain["name"] = "unrouted"
    for net, third in (("left", "97"), ("right", "98")):
        plain["networks"][net]["subnet"] = f"10.213.{third}.0/24"
    plain["nodes"]["r"]["networks"] = {
        "left": {"ipv4": "10.213.97.10"},
        "right": {"ipv4": "10.213.98.10"},
    }
    plain["nodes"]["a"]["networks"] = {"left": {"ipv4": "10.213.97.20"}}
    plain["nodes"]["b"]["networks"] = {"right": {"ipv4": "10.213.98.20"}}
    plain["nodes"]["a"]["routes"] = [{"dst": "10.213.98.0/24", "via": "10.213.97.10"}]
    plain["nodes"]["b"]["routes"] = [{"dst": "10.213.97.0/24", "via": "10.213.98.10"}]
    other = build(plain)
    assert other.run("r", "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"
    assert other.ping("r", "10.213.98.20")  # r itself reaches b
    assert not other.ping("a", "10.213.98.20")


def test_a_sysctl_the_kernel_lacks_fails_naming_the_field_and_leaves_nothing(
    data_dir: Path,
) -> None:
    broken = copy.deepcopy(ROUTED)
    broken["nodes"]["r"]["sysctls"] = {"net.ipv4.no_such_switch": 1}
    deployment = new_deployment()
    token = naming.deployment_token(deployment)
    executor = kernel_executor(data_dir)

    with pytest.raises(ApplyError) as failed:
        executor.apply(compile_dict(broken, deployment), "local")

    assert (
        "nodes.r.sysctls.net.ipv4.no_such_switch: '1' not set: the kernel has no such"
        " sysctl here" in str(failed.value)
    )
    executor.destroy(token)
    assert leftovers(token) == []
