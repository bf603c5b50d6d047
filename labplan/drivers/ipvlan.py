"""The ipvlan driver: each node gets an ipvlan child of the parent link, sharing the
parent's MAC with an address of its own. The mode (`l2`, `l3`, `l3s`) belongs to the
parent link, so the ipvlan networks on one parent share it.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar

from labplan.drivers.base import Build, Link, OpTraits, Phase
from labplan.drivers.children import ChildDriver, parent_link
from labplan.ops import CreateIpvlan, Op

if TYPE_CHECKING:
    from labplan.model import Network

MODES = ("l2", "l3", "l3s")


class Ipvlan(ChildDriver):
    name = "ipvlan"
    modes = MODES
    defaults: ClassVar[Mapping[str, object]] = {"mode": "l2"}
    attachment_options = frozenset({"ipv4", "ifname"})  # the MAC is the parent's
    children_share_mode = True
    attachment_op = CreateIpvlan
    ops: ClassVar[Mapping[type[Op], OpTraits]] = {
        CreateIpvlan: OpTraits(
            Phase.LINKS, link_kind="ipvlan", objects="links", choices={"mode": MODES}
        ),
    }

    def members_reach_each_other(self, network: Network) -> bool:
        return True

    def link_ops(self, lab: Build, network: Network, link: Link) -> Iterator[Op]:
        yield CreateIpvlan(
            parent_link(lab, network), link.netns, link.ifname, self.mode(network), network.mtu
        )

    def render(self, op: Op) -> list[str]:
        if isinstance(op, CreateIpvlan):
            return [
                f"ip link add link {shlex.quote(op.parent)} name {shlex.quote(op.ifname)}"
                f" netns {op.netns} mtu {op.mtu} type ipvlan mode {op.mode}"
            ]
        return super().render(op)


DRIVER = Ipvlan()
