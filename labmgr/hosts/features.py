"""What a plan needs from a host's kernel, compared with the facts its agent reported.

The agent checks the same again before it touches anything (workers.facts.check_plan);
this copy lets the control plane refuse a deployment at once, naming the missing feature.
The names are the agent's: "bridge", "ipvlan", "netem", "cgroup controller io", ...
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

LINK_KINDS = {
    "create_bridge": "bridge",
    "create_veth_pair": "veth",
    "create_macvlan": "macvlan",
    "create_ipvlan": "ipvlan",
    "create_vxlan": "vxlan",
}
CGROUP_KEY_CONTROLLER = {
    "cpu.max": "cpu",
    "cpu.weight": "cpu",
    "memory.max": "memory",
    "memory.swap.max": "memory",
    "pids.max": "pids",
    "io.weight": "io",
    "io.max": "io",
}
V1_CONTROLLER_NAME = {"io": "blkio"}


def plan_requirements(ops: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every feature the ops of one host's plan (labplan.codec form) use, in first use order."""
    needed: dict[str, None] = {}
    for op in ops:
        for feature in _op_requirements(op):
            needed[feature] = None
    return list(needed)


def _op_requirements(op: Mapping[str, Any]) -> list[str]:
    kind = op.get("op")
    if kind in LINK_KINDS:
        return [LINK_KINDS[kind]]
    if kind == "set_shaping":
        wanted = ["tbf"] if op.get("rate") is not None else []
        if any(op.get(key) is not None for key in ("delay", "jitter", "loss")):
            wanted.append("netem")
        return wanted
    if kind == "set_cgroup_limit":
        key = str(op.get("key"))
        return [f"cgroup controller {CGROUP_KEY_CONTROLLER.get(key, key)}"]
    if kind in ("set_nat", "isolate_bridge"):
        return ["nftables"]
    if kind == "spawn_node" and "user" in (op.get("namespaces") or ()):
        return ["user namespaces"]
    return []


def host_has(facts: Mapping[str, Any], feature: str) -> bool:
    if feature in LINK_KINDS.values():
        return feature in (facts.get("link_kinds") or ())
    if feature in ("tbf", "htb", "netem"):
        return feature in (facts.get("qdiscs") or ())
    if feature.startswith("cgroup controller "):
        controller = feature.removeprefix("cgroup controller ")
        if facts.get("cgroup_mode") != "v2":
            controller = V1_CONTROLLER_NAME.get(controller, controller)
        return controller in (facts.get("cgroup_controllers") or ())
    if feature == "user namespaces":
        return bool(facts.get("user_namespaces"))
    if feature == "nftables":
        return bool(facts.get("nftables"))
    return False


def missing_features(facts: Mapping[str, Any], ops: Iterable[Mapping[str, Any]]) -> list[str]:
    """The features the ops need that the host lacks; empty when it can run them."""
    return [f for f in plan_requirements(ops) if not host_has(facts, f)]
