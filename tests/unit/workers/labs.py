"""Labs the agent's unit tests build on the in-memory kernel."""

from __future__ import annotations

from typing import Any

from labplan import codec, labfile
from labplan.compiler import compile_plan

# Two bridges (one internal) and a macvlan: every kind of object the fake models.
CAMPUS = {
    "labfile": 1,
    "name": "campus",
    "networks": {
        "lan": {"driver": "bridge", "subnet": "10.10.0.0/24"},
        "lab": {"driver": "bridge", "subnet": "10.20.0.0/24", "internal": True},
        "wan": {"driver": "macvlan", "parent": "lan", "subnet": "10.30.0.0/24"},
    },
    "nodes": {
        "web": {"networks": {"lan": {}, "wan": {}}, "limits": {"memory": "64M", "pids": 50}},
        "db": {"networks": {"lab": {}}},
        "probe": {"networks": {"lan": {}}, "command": ["sleep", "100"]},
    },
}


def plan_dict(data: dict[str, Any] = CAMPUS, deployment: int = 7) -> dict[str, Any]:
    return codec.plan_to_dict(compile_plan(labfile.validate(data), deployment=deployment))


def campus_on(second_octet: int) -> dict[str, Any]:
    """CAMPUS with subnets of its own, to run beside another campus on one host."""
    networks = {
        name: {**net, "subnet": net["subnet"].replace("10.", f"10.{second_octet}", 1)}
        for name, net in CAMPUS["networks"].items()
    }
    return {**CAMPUS, "networks": networks}
