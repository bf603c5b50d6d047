"""Which fields of a lab need a kernel feature (`labplan.features` names them), so that a
host that lacks it is refused naming what in the labfile asks for it:
`links.0.impairments: host node-a lacks netem, which this field needs`."""

from __future__ import annotations

from collections.abc import Iterator

from labplan.drivers import DRIVERS
from labplan.features import IMAGE_TOOLS, KEY_CONTROLLER
from labplan.model import Labfile, Shaping

_LIMIT_KEYS = {  # cgroup v2 key -> the labfile's limits key
    "cpu.max": "cpus",
    "cpu.weight": "cpu_weight",
    "memory.max": "memory",
    "memory.swap.max": "memory_swap",
    "pids.max": "pids",
    "io.weight": "io_weight",
    "io.max": "io",
}


def fields_needing(lab: Labfile, feature: str) -> list[str]:
    """The dotted paths of the fields of `lab` that need `feature`, in document order;
    the lab's name when no single field does."""
    return list(dict.fromkeys(_fields(lab, feature))) or ["name"]


def _needs_shaping(shaping: Shaping | None, feature: str) -> bool:
    if shaping is None:
        return False
    if feature == "netem":
        return shaping.needs_netem
    return feature in ("tbf", "htb") and shaping.rate is not None


def _fields(lab: Labfile, feature: str) -> Iterator[str]:
    version = lab.version
    for net in lab.networks:
        path = f"networks.{net.name}"
        driver = DRIVERS[net.driver]
        if any(t.link_kind == feature for t in driver.ops.values()):
            yield f"{path}.driver"
        if feature == "nftables" and any(t.firewall for t in driver.ops.values()):
            yield f"{path}.driver"
        if feature == "bridge vlan filtering" and getattr(net, "vlan_filtering", False):
            yield f"{path}.vlan_filtering"
        if _needs_shaping(net.shaping, feature):
            yield f"{path}.{'impairments' if version >= 2 else 'shaping'}"
    for node in lab.nodes:
        path = f"nodes.{node.name}"
        if feature == IMAGE_TOOLS and node.image is not None:
            yield f"{path}.image"
        if feature == "user namespaces" and node.namespaces.user:
            yield f"{path}.namespaces.user"
        if feature.startswith("cgroup controller "):
            controller = feature.removeprefix("cgroup controller ")
            for key, name in _LIMIT_KEYS.items():
                value = getattr(node.limits, name)
                if KEY_CONTROLLER[key] == controller and value not in (None, ()):
                    yield f"{path}.limits.{name}"
        for attachment in node.networks:
            if _needs_shaping(attachment.impairments, feature):
                yield f"{path}.networks.{attachment.network}.impairments"
    for index, link in zip(lab.link_numbers(), lab.links, strict=True):
        if feature == "veth":
            yield f"links.{index}"
        if any(_needs_shaping(end.impairments, feature) for end in link.ends):
            yield f"links.{index}.impairments"
    for port in lab.ports:
        made = {"dummy": "dummy", "vxlan": "vxlan"}.get(port.type, "veth")
        if feature == made:
            yield f"links.{port.index}.type"
        if feature == "bridge" and port.type == "network":
            yield f"links.{port.index}.network"
