"""The overlay driver: one layer 2 segment over several hosts. On each host with a node
on it, a bridge (the bridge driver's, with the gateway on the host of the first node) and
a VXLAN device on it, VNI per network, with a flood entry to every peer host.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar

from labplan import naming
from labplan.drivers.base import Build, OpTraits, Phase, Placement, Placing
from labplan.drivers.bridge import Bridged, bridge_objects
from labplan.errors import FieldError
from labplan.ops import AddFdbEntry, CreateVxlan, Op, SetLinkUp

if TYPE_CHECKING:
    from labplan.model import Network

VXLAN_PORT = 4789
MAX_VNI = 2**24 - 1


class Overlay(Bridged):
    name = "overlay"
    options = frozenset({"subnet", "gateway", "gateway6", "mtu", "shaping", "vni"})
    defaults: ClassVar[Mapping[str, object]] = {"mtu": 1450}
    default_reasons: ClassVar[Mapping[str, str]] = {"mtu": "room for the VXLAN header"}
    ops: ClassVar[Mapping[type[Op], OpTraits]] = {
        CreateVxlan: OpTraits(Phase.TUNNELS, link_kind="vxlan", objects="links"),
        AddFdbEntry: OpTraits(Phase.TUNNELS, objects="fdb_entries"),
    }

    def place(self, network: Network, placing: Placing) -> Placement:
        """Every host with a node on it; the gateway on the first node's. Past one host,
        each needs an underlay address for its peers' flood entries."""
        members = placing.members[network.name]
        hosts = tuple(sorted({placing.node_host[n.name] for n in members}))
        missing = [h for h in hosts if h not in placing.underlay]
        errors: tuple[FieldError, ...] = ()
        if len(hosts) > 1 and missing:
            errors = (
                FieldError(
                    f"networks.{network.name}",
                    f"overlay network {network.name} spans hosts {', '.join(hosts)}, but no"
                    f" underlay address is known for {', '.join(missing)}",
                ),
            )
        gateway = placing.node_host[members[0].name] if members else None
        return Placement(hosts, gateway, errors)

    def objects(self, network: Network, attached: bool) -> Mapping[str, int]:
        # Made only on hosts with a node on it: a bridge and a VXLAN device.
        return {"links": 2, **bridge_objects(network)} if attached else {}

    def tunnel_ops(self, lab: Build, network: Network, host: str) -> Iterator[Op]:
        vxlan = naming.vxlan_name(lab.deployment, lab.index(network.name))
        yield CreateVxlan(
            name=vxlan,
            vni=vni(lab, network),
            port=VXLAN_PORT,
            local=lab.underlay.get(host),
            bridge=lab.bridge(network.name),
            mtu=network.mtu,
            group=naming.link_group(lab.deployment),
            alias=naming.link_alias(lab.deployment),
        )
        yield SetLinkUp(None, vxlan)
        for peer in lab.placement(network.name).hosts:
            if peer != host:
                yield AddFdbEntry(vxlan, lab.underlay[peer])

    def render(self, op: Op) -> list[str]:
        match op:
            case CreateVxlan():
                local = f" local {op.local}" if op.local else ""
                return [
                    f"ip link add {op.name} mtu {op.mtu} type vxlan"
                    f" id {op.vni} dstport {op.port}{local}",
                    f"ip link set {op.name} group {op.group} alias {op.alias} master {op.bridge}",
                ]
            case AddFdbEntry(vxlan=vxlan, dst=dst):
                return [f"bridge fdb append 00:00:00:00:00:00 dev {vxlan} dst {dst}"]
        return super().render(op)


def vni(lab: Build, network: Network) -> int:
    """The deploy-time allocation wins, then the labfile's vni, then a fallback that is
    stable for a deployment and distinct between its networks."""
    if network.name in lab.vnis:
        return lab.vnis[network.name]
    if network.vni is not None:
        return network.vni
    return (lab.deployment * (naming.MAX_INDEX + 1) + lab.position(network.name)) % MAX_VNI + 1


DRIVER = Overlay()
