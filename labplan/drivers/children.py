"""What the drivers of child links share: a child link per attached node, made on the
network's `parent` link in the host's namespace (a bridge of the lab, or a host interface
for an admin) and moved into the node, in one of the driver's modes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from labplan.drivers.base import Build, Driver
from labplan.model import HOST_PARENT_PREFIX

if TYPE_CHECKING:
    from labplan.model import Network


class ChildDriver(Driver):
    options = frozenset({"subnet", "mtu", "shaping", "parent", "mode"})
    required = ("subnet", "parent")

    def mode(self, network: Network) -> str:
        return network.mode or str(self.defaults["mode"])


def parent_link(lab: Build, network: Network) -> str:
    """The root-namespace link the network's children hang off."""
    parent = network.parent or ""
    if parent.startswith(HOST_PARENT_PREFIX):
        return parent[len(HOST_PARENT_PREFIX) :]
    return lab.bridge(parent)
