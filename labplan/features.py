"""What a host's plan needs from the kernel, and which of it a host's facts lack.

Both sides ask the same question: the control plane to refuse a deployment at once, the
agent again before it touches anything. Facts are the dict an agent reports in its
heartbeat (`workers.facts.Facts.to_dict()`); feature names are those users read in the
refusal: "bridge", "ipvlan", "netem", "cgroup controller io", "user namespaces",
"images (skopeo and umoci)", ...
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from labplan import ops
from labplan.drivers import OP_TRAITS
from labplan.drivers.bridge import VLAN_FILTERING  # facts' `bridge_vlan_filtering`

# The link kinds the drivers' ops make ("bridge", "veth", "vxlan", ...) and the links
# of the labfile's own (a peer link's veth, a dummy, a tunnel).
LINK_KINDS = frozenset(t.link_kind for t in OP_TRAITS.values() if t.link_kind) | {
    "veth",
    "dummy",
    "vxlan",
}
QDISCS = ("tbf", "htb", "netem")
# The controller each cgroup v2 key belongs to, and the v1 names that differ.
KEY_CONTROLLER = {
    "cpu.max": "cpu",
    "cpu.weight": "cpu",
    "memory.max": "memory",
    "memory.swap.max": "memory",
    "pids.max": "pids",
    "io.weight": "io",
    "io.max": "io",
}
V1_CONTROLLER_NAME = {"io": "blkio"}
IMAGE_TOOLS = "images (skopeo and umoci)"
VOLUMES = "volumes (an idmapped tmpfs, Linux 6.3)"


def requirements(plan: ops.HostPlan) -> list[str]:
    """Every feature the plan uses, in order of first use."""
    needed: dict[str, None] = {}
    for op in plan.ops:
        for feature in _needs(op):
            needed[feature] = None
    return list(needed)


def _needs(op: ops.Op) -> list[str]:
    if (owned := OP_TRAITS.get(type(op))) is not None:
        wanted = [owned.link_kind] if owned.link_kind else []
        if isinstance(op, ops.CreateBridge) and op.vlan_filtering:
            wanted.append(VLAN_FILTERING)
        if owned.feature:
            wanted.append(owned.feature)
        if wanted:
            return wanted
        return ["nftables"] if owned.firewall else []
    match op:
        case ops.SetShaping():
            wanted = ["tbf"] if op.rate is not None else []
            netem = (op.delay, op.jitter, op.loss, op.duplicate, op.corrupt, op.reorder)
            if any(value is not None for value in netem):
                wanted.append("netem")
            return wanted
        case ops.CreatePeerLink():
            return ["veth"]
        case ops.CreateDummy():
            return ["dummy"]
        case ops.CreateTunnel():
            return ["vxlan"]
        case ops.SetCgroupLimit():
            return [f"cgroup controller {KEY_CONTROLLER.get(op.key, op.key)}"]
        case ops.SpawnNode() if "user" in op.namespaces:
            return ["user namespaces"]
        case ops.PullImage():
            return [IMAGE_TOOLS]
        case ops.CreateVolume():
            return [VOLUMES]
    return []


def has(facts: Mapping[str, Any], feature: str) -> bool:
    """Whether a host with these facts has the feature."""
    if feature in LINK_KINDS:
        return feature in (facts.get("link_kinds") or ())
    if feature in QDISCS:
        return feature in (facts.get("qdiscs") or ())
    if feature.startswith("cgroup controller "):
        controller = feature.removeprefix("cgroup controller ")
        if facts.get("cgroup_mode") != "v2":
            controller = V1_CONTROLLER_NAME.get(controller, controller)
        return controller in (facts.get("cgroup_controllers") or ())
    if feature == "user namespaces":
        return bool(facts.get("user_namespaces"))
    if feature == VLAN_FILTERING:
        return bool(facts.get("bridge_vlan_filtering"))
    if feature == "nftables":
        return bool(facts.get("nftables"))
    if feature == IMAGE_TOOLS:
        return bool(facts.get("image_tools"))
    if feature == VOLUMES:
        return bool(facts.get("idmapped_tmpfs"))
    return False


def missing(facts: Mapping[str, Any], plan: ops.HostPlan) -> list[str]:
    """The features the plan needs that the host lacks; empty when it can run it."""
    return [feature for feature in requirements(plan) if not has(facts, feature)]
