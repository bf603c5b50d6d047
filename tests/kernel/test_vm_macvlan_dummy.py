"""macvlan on a host interface (an admin's `host:IFNAME` parent), here a dummy link the
test makes, on a kernel that has dummy links (the VM tier's): siblings in bridge mode
reach each other, in private mode they do not, and destroying the lab leaves the host's
interface as it was, with no child on it."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from .conftest import Lab

pytestmark = pytest.mark.vm


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@pytest.fixture
def dummy() -> Iterator[str]:
    """A dummy link of the host's, up, removed after the test."""
    name = f"lmtd{os.getpid() % 100_000}"
    made = ip("link", "add", name, "type", "dummy")
    if made.returncode != 0:
        pytest.skip("kernel lacks dummy links")
    try:
        assert ip("link", "set", name, "up").returncode == 0
        yield name
    finally:
        ip("link", "del", name)
    assert ip("link", "show", "dev", name).returncode != 0


def on_host_link(parent: str, mode: str) -> dict[str, Any]:
    return {
        "labfile": 1,
        "name": "hostmacvlan",
        "networks": {
            "mv": {
                "driver": "macvlan",
                "parent": f"host:{parent}",
                "mode": mode,
                "subnet": "10.239.0.0/24",
            }
        },
        "nodes": {
            "m1": {"networks": {"mv": {"ipv4": "10.239.0.10"}}},
            "m2": {"networks": {"mv": {"ipv4": "10.239.0.11"}}},
        },
    }


def children(parent: str) -> list[str]:
    """Links of the host whose lower link is `parent` ("name@parent" in `ip link`)."""
    lines = ip("-o", "link", "show").stdout.splitlines()
    return [line.split(":")[1].strip() for line in lines if f"@{parent}:" in line]


@pytest.mark.parametrize(("mode", "reach"), [("bridge", True), ("private", False)])
def test_macvlan_siblings_on_a_host_dummy_link(
    build: Any, dummy: str, mode: str, reach: bool
) -> None:
    before = ip("-o", "link", "show", "dev", dummy).stdout.split("link/ether ")[1].split()[0]
    lab: Lab = build(on_host_link(dummy, mode))

    assert lab.ping("m1", "10.239.0.11") is reach
    details = lab.run("m1", "ip", "-d", "-o", "link", "show", "dev", "eth0").stdout
    assert f"macvlan mode {mode} " in details
    assert before not in details  # a macvlan child has a MAC of its own

    lab.executor.destroy(lab.token)
    after = ip("-o", "link", "show", "dev", dummy).stdout
    assert f"{dummy}:" in after and "state UNKNOWN" in after and before in after
    assert children(dummy) == []
