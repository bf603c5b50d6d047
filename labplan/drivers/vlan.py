"""The vlan driver: a node gets an 802.1Q sub-interface of the parent link (VLAN `id`),
sharing the parent's MAC. On a vlan_filtering parent bridge the bridge itself carries the
VLAN tagged, so the node meets the bridge's ports in that VLAN: access ports given
`vlan: ID` and trunks listing it in `vlans`.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar

from labplan.drivers.base import Build, Driver, Link, OpTraits, Phase
from labplan.drivers.children import parent_link
from labplan.errors import FieldError
from labplan.ops import CreateVlan, Op

if TYPE_CHECKING:
    from labplan.model import Network


class Vlan(Driver):
    """A child link like macvlan's (`labplan.drivers.children`), without a mode."""

    name = "vlan"
    options: ClassVar[frozenset[str]] = frozenset({"subnet", "mtu", "shaping", "parent", "id"})
    required: ClassVar[tuple[str, ...]] = ("subnet", "parent", "id")
    attachment_options = frozenset({"ipv4", "ifname"})  # the MAC is the parent's
    attachment_op = CreateVlan
    ops: ClassVar[Mapping[type[Op], OpTraits]] = {
        CreateVlan: OpTraits(Phase.LINKS, link_kind="vlan", objects="links"),
    }

    def member_errors(self, network: Network, nodes: list[str]) -> Iterator[FieldError]:
        # The kernel gives a link one sub-interface per VLAN id.
        if len(nodes) > 1:
            yield FieldError(
                f"networks.{network.name}.parent",
                f"a vlan network takes at most one node: {network.parent} has one 802.1Q "
                f"sub-interface per VLAN id, and {len(nodes)} nodes attach to "
                f"{network.name} ({', '.join(sorted(nodes))}); attach the others to "
                f"{network.parent} with vlan: {network.vlan_id} (or vlans: [{network.vlan_id}])",
            )

    def members_reach_each_other(self, network: Network) -> bool:
        return False  # it has one member

    def link_ops(self, lab: Build, network: Network, link: Link) -> Iterator[Op]:
        assert network.vlan_id is not None  # required
        yield CreateVlan(
            parent_link(lab, network), link.netns, link.ifname, network.vlan_id, None, network.mtu
        )

    def render(self, op: Op) -> list[str]:
        if isinstance(op, CreateVlan):
            address = f" address {op.mac}" if op.mac else ""
            return [
                f"ip link add link {shlex.quote(op.parent)} name {shlex.quote(op.ifname)}"
                f" netns {op.netns}{address} mtu {op.mtu} type vlan id {op.vid}"
            ]
        return super().render(op)


DRIVER = Vlan()
