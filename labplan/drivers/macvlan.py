"""The macvlan driver: each node gets a macvlan child of the parent link, with a MAC of
its own. In `bridge` mode the children of one parent talk to each other; `private`
isolates them, `vepa` sends their traffic out to a switch, `passthru` takes one node.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar

from labplan.drivers.base import Build, Link, OpTraits, Phase
from labplan.drivers.children import ChildDriver, parent_link
from labplan.errors import FieldError
from labplan.ops import CreateMacvlan, Op

if TYPE_CHECKING:
    from labplan.model import Network

MODES = ("bridge", "private", "vepa", "passthru")


class Macvlan(ChildDriver):
    name = "macvlan"
    modes = MODES
    defaults: ClassVar[Mapping[str, object]] = {"mode": "bridge"}
    attachment_options = frozenset({"ipv4", "ifname", "mac"})
    attachment_op = CreateMacvlan
    ops: ClassVar[Mapping[type[Op], OpTraits]] = {
        CreateMacvlan: OpTraits(
            Phase.LINKS, link_kind="macvlan", objects="links", choices={"mode": MODES}
        ),
    }

    def member_errors(self, network: Network, nodes: list[str]) -> Iterator[FieldError]:
        if network.mode == "passthru" and len(nodes) > 1:
            yield FieldError(
                f"networks.{network.name}.mode",
                "a passthru macvlan network takes "
                f"at most one node; {len(nodes)} attach to it "
                f"({', '.join(sorted(nodes))})",
            )

    def members_reach_each_other(self, network: Network) -> bool:
        # private isolates the children, vepa hairpins through an outside switch that
        # may refuse, passthru takes one node: only bridge mode talks by itself.
        return network.mode == "bridge"

    def link_ops(self, lab: Build, network: Network, link: Link) -> Iterator[Op]:
        parent = parent_link(lab, network)
        yield CreateMacvlan(
            parent, link.netns, link.ifname, self.mode(network), link.mac, network.mtu
        )

    def render(self, op: Op) -> list[str]:
        if isinstance(op, CreateMacvlan):
            address = f" address {op.mac}" if op.mac else ""
            return [
                f"ip link add link {shlex.quote(op.parent)} name {shlex.quote(op.ifname)}"
                f" netns {op.netns}{address} mtu {op.mtu} type macvlan mode {op.mode}"
            ]
        return super().render(op)


DRIVER = Macvlan()
