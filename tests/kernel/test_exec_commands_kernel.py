"""A node's `exec` commands on the real kernel: they run inside the node (its netns, its
own tree, its hostname) once every node is up, and one that fails rolls the whole lab
back, with the command's own words in the error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from workers.errors import ApplyError

from .conftest import Lab

LAB: dict[str, Any] = {
    "labfile": 2,
    "name": "exec",
    "networks": {"lan": {"driver": "bridge", "subnet": "10.213.0.0/24", "internal": True}},
    "nodes": {
        "a": {
            "networks": {"lan": {"ipv4": "10.213.0.10"}},
            # b started before any command ran: a reaches it at once.
            "exec": [["sh", "-c", "ping -c1 -W2 10.213.0.11 && hostname > /tmp/exec-proof"]],
        },
        "b": {"networks": {"lan": {"ipv4": "10.213.0.11"}}, "exec": [["true"]]},
        # A privileged node (an admin's router) may change its own network.
        "r": {
            "privileged": True,
            "networks": {"lan": {"ipv4": "10.213.0.12"}},
            "exec": [["ip", "address", "add", "192.0.2.1/32", "dev", "lo"]],
        },
    },
}


def test_commands_configure_the_node_once_the_lab_is_up(build: Callable[..., Lab]) -> None:
    lab = build(LAB)

    assert lab.run("a", "cat", "/tmp/exec-proof").stdout == "a\n"
    assert "192.0.2.1/32" in lab.run("r", "ip", "-br", "address", "show", "lo").stdout
    # Only inside r: a has no such address.
    assert "192.0.2.1" not in lab.run("a", "ip", "-br", "address").stdout


def test_an_unprivileged_node_cannot_change_its_network(build: Callable[..., Lab]) -> None:
    """Its network namespace belongs to the host: the refusal is the kernel's, named."""
    refused = {
        **LAB,
        "nodes": {"a": {**LAB["nodes"]["a"], "exec": LAB["nodes"]["r"]["exec"]}},
    }
    with pytest.raises(
        ApplyError,
        match=r"nodes\.a\.exec\.0: ip address add 192\.0\.2\.1/32 dev lo exited 2: "
        "RTNETLINK answers: Operation not permitted",
    ):
        build(refused)


def test_a_failing_command_rolls_the_lab_back(build: Callable[..., Lab]) -> None:
    failing = {
        **LAB,
        "nodes": {
            **LAB["nodes"],
            "b": {
                "networks": {"lan": {"ipv4": "10.213.0.11"}},
                "exec": [["sh", "-c", "echo no route to the moon >&2; exit 3"]],
            },
        },
    }
    with pytest.raises(ApplyError) as failed:
        build(failing)

    message = str(failed.value)
    assert "nodes.b.exec.0: sh -c 'echo no route to the moon >&2; exit 3' exited 3" in message
    assert "no route to the moon" in message
    assert message.endswith("the deployment was rolled back")
    # The rollback left nothing: the `build` fixture lists the kernel for the token.
