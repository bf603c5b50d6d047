"""The bridge driver: one Linux bridge per network on one host, a veth per attached node,
the gateway address on the bridge, NAT out of the lab unless `internal`, and the guard
that keeps the host out of its nodes' reach. The overlay driver builds its local half
with the same bridge and veths.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar

from labplan import naming
from labplan.drivers.base import Build, Driver, Link, OpTraits, Phase, Placement, Placing
from labplan.errors import FieldError
from labplan.ops import (
    AddAddress,
    AddBridgeVlan,
    AttachToBridge,
    CreateBridge,
    CreateVethPair,
    GuardBridge,
    IsolateBridge,
    Op,
    SetLinkUp,
    SetNat,
    SetPortVlans,
)

if TYPE_CHECKING:
    from labplan.model import Network


class Bridged(Driver):
    """A driver whose nodes are on a bridge of the lab, each by a veth: the bridge's and
    the overlay's."""

    required = ("subnet",)
    attachment_options = frozenset({"ipv4", "ifname", "mac"})
    attachment_op = CreateVethPair

    def members_reach_each_other(self, network: Network) -> bool:
        return True

    def network_ops(self, lab: Build, network: Network, host: str) -> Iterator[Op]:
        return bridge_ops(lab, network, host)

    def link_ops(self, lab: Build, network: Network, link: Link) -> Iterator[Op]:
        return veth_ops(lab, network, link)


LINK_LOCAL = "169.254.0.0/16"
# What a host needs for a bridge's 802.1Q-aware ports, by the name a refusal gives.
VLAN_FILTERING = "bridge vlan filtering"


class Bridge(Bridged):
    name = "bridge"
    options = frozenset(
        {"subnet", "gateway", "gateway6", "internal", "mtu", "shaping", "vlan_filtering"}
    )
    attachment_options = frozenset({"ipv4", "ifname", "mac", "vlan", "vlans"})
    carries_children = True
    ops: ClassVar[Mapping[type[Op], OpTraits]] = {
        CreateBridge: OpTraits(Phase.BRIDGES, link_kind="bridge", objects="links"),
        AddBridgeVlan: OpTraits(Phase.BRIDGES, feature=VLAN_FILTERING),
        SetPortVlans: OpTraits(Phase.LINKS, feature=VLAN_FILTERING),
        GuardBridge: OpTraits(Phase.BRIDGES, firewall=True),
        SetNat: OpTraits(Phase.BRIDGES, firewall=True, objects="firewall_rules"),
        IsolateBridge: OpTraits(Phase.BRIDGES, firewall=True, objects="firewall_rules"),
        CreateVethPair: OpTraits(Phase.LINKS, link_kind="veth", objects="links", count=2),
        AttachToBridge: OpTraits(Phase.LINKS),
    }

    def place(self, network: Network, placing: Placing) -> Placement:
        """The host of its first node, else of the first node of a network it is the
        parent of, else the default host: a bridge cannot span hosts."""
        bridge = network.name
        direct = placing.members[bridge]
        via_child = placing.via_children.get(bridge, [])
        first = direct[0] if direct else via_child[0][0] if via_child else None
        host = placing.node_host[first.name] if first else placing.default_host
        errors = tuple(
            FieldError(
                f"nodes.{node.name}.networks.{bridge}",
                f"bridge network {bridge} is on host {host} (with node {direct[0].name}"
                f" placed there) but this node is placed on {placing.node_host[node.name]};"
                " a bridge cannot span hosts, use an overlay network",
            )
            for node in direct
            if placing.node_host[node.name] != host
        )
        return Placement((host,), host, errors)

    def objects(self, network: Network, attached: bool) -> Mapping[str, int]:
        return {"links": 1, **bridge_objects(network)}

    def render(self, op: Op) -> list[str]:
        match op:
            case CreateBridge(name=name, mtu=mtu, group=group, alias=alias):
                filtering = " vlan_filtering 1" if op.vlan_filtering else ""
                return [
                    f"ip link add {name} type bridge{filtering}",
                    f"ip link set {name} group {group} alias {alias} mtu {mtu}",
                ]
            case AddBridgeVlan(bridge=bridge, vid=vid):
                return [f"bridge vlan add dev {bridge} vid {vid} self"]
            case SetPortVlans(link=link, pvid=pvid, tagged=tagged):
                lines = [] if pvid == 1 else [f"bridge vlan del dev {link} vid 1"]
                lines.append(f"bridge vlan add dev {link} vid {pvid} pvid untagged")
                return lines + [f"bridge vlan add dev {link} vid {vid}" for vid in tagged]
            case CreateVethPair():
                peer = f"peer name {shlex.quote(op.peer_ifname)} netns {op.peer_netns} mtu {op.mtu}"
                if op.peer_mac:
                    peer += f" address {op.peer_mac}"
                return [
                    f"ip link add {op.name} mtu {op.mtu} type veth {peer}",
                    f"ip link set {op.name} group {op.group} alias {op.alias}",
                ]
            case AttachToBridge(link=link, bridge=bridge):
                return [f"ip link set {link} master {bridge}"]
            case SetNat():
                # The agent turns forwarding on only where it is off, and then forwards
                # nothing but the labs' traffic (docs/labfile.md).
                v6 = ipaddress.ip_network(op.subnet).version == 6
                forwarding = "net.ipv6.conf.all.forwarding" if v6 else "net.ipv4.ip_forward"
                return [
                    f"sysctl -qw {forwarding}=1",
                    *_firewall(op, add=True),
                    f"# and: {'ip6tables' if v6 else 'iptables'} -I FORWARD -i {op.bridge}"
                    " -d NETWORK -j DROP, for each network the host is on",
                ]
            case IsolateBridge() | GuardBridge():
                return _firewall(op, add=True)
        return super().render(op)

    def teardown(self, op: Op) -> list[str]:
        if isinstance(op, SetNat | IsolateBridge | GuardBridge):
            return _firewall(op, add=False)
        return []


def bridge_objects(network: Network) -> dict[str, int]:
    """A bridge's gateway addresses and firewall rules, besides the bridge link itself."""
    gateway = network.gateway is not None and network.subnet is not None
    gateway6 = network.gateway6 is not None and network.subnet6 is not None
    firewall = network.subnet is not None and (network.internal or gateway)
    return {
        "addresses": int(gateway) + int(gateway6),
        "firewall_rules": int(firewall) + int(gateway6),
    }


def bridge_ops(lab: Build, network: Network, host: str) -> Iterator[Op]:
    """The network's bridge on `host`, with the gateway address where it belongs."""
    bridge = lab.bridge(network.name)
    yield CreateBridge(
        bridge,
        network.mtu,
        naming.link_group(lab.deployment),
        naming.link_alias(lab.deployment),
        network.vlan_filtering,
    )
    if network.vlan_filtering:
        # The 802.1Q children of the bridge send and receive through the bridge itself.
        children = {n.vlan_id for n in lab.networks if n.parent == network.name and n.vlan_id}
        for vid in sorted(children):
            yield AddBridgeVlan(bridge, vid)
    with_gateway = lab.placement(network.name).gateway == host
    gateways = [
        (gateway, subnet)
        for gateway, subnet in (
            (network.gateway, network.subnet),
            (network.gateway6, network.subnet6),
        )
        if with_gateway and gateway is not None and subnet is not None
    ]
    held = {ipaddress.ip_address(gateway).version: gateway for gateway, _ in gateways}
    # Guarded before it comes up: no node ever reaches the host through it unfiltered.
    yield GuardBridge(bridge, held.get(4), held.get(6))
    yield SetLinkUp(None, bridge)
    for gateway, subnet in gateways:
        yield AddAddress(None, bridge, f"{gateway}/{ipaddress.ip_network(subnet).prefixlen}")
    if network.internal:
        # Routed into nothing, in each family the bridge carries on this host.
        for isolated in (network.subnet, network.subnet6 if 6 in held else None):
            if isolated is not None:
                yield IsolateBridge(bridge, isolated)
    else:
        for _, subnet in gateways:
            yield SetNat(bridge, subnet)


def veth_ops(lab: Build, network: Network, link: Link) -> Iterator[Op]:
    """A veth pair from the host into the node, its host end on the network's bridge."""
    veth = naming.veth_name(lab.deployment, link.node_index, link.position)
    yield CreateVethPair(
        name=veth,
        peer_netns=link.netns,
        peer_ifname=link.ifname,
        peer_mac=link.mac,
        mtu=network.mtu,
        group=naming.link_group(lab.deployment),
        alias=naming.link_alias(lab.deployment),
    )
    yield AttachToBridge(veth, lab.bridge(network.name))
    if link.vlan is not None or link.vlans:
        # Before the port comes up: it never forwards in VLAN 1 when it is not in it.
        pvid = link.vlan or 1
        yield SetPortVlans(veth, pvid, tuple(sorted(set(link.vlans) - {pvid})))
    yield SetLinkUp(None, veth)


def _firewall(op: SetNat | IsolateBridge | GuardBridge, add: bool) -> list[str]:
    """The iptables (ip6tables for an IPv6 subnet or gateway6) rules of a NAT, isolation
    or guard op, to add or to delete.

    A NATed bridge may send out of the host but not into another labmgr link ("lm+"), nor
    to link-local addresses or the networks the host is on (the agent adds one rule per
    network it finds), and nothing new comes in: two labs, or two bridges of one lab,
    never reach each other through the host. Its own ports stay reachable (br_netfilter
    may show bridged frames to FORWARD). A guarded bridge delivers nothing to the host but
    echo requests to its gateway (and, in IPv6, neighbour discovery) and replies to the
    host.
    """
    append, insert = ("-A", "-I") if add else ("-D", "-D")
    b = op.bridge
    v6 = not isinstance(op, GuardBridge) and ipaddress.ip_network(op.subnet).version == 6
    tables = "ip6tables" if v6 else "iptables"
    if isinstance(op, SetNat):
        return [
            f"{tables} -t nat {append} POSTROUTING -s {op.subnet} ! -o {b} -j MASQUERADE",
            f"{tables} {insert} FORWARD -i {b} -o lm+ -j DROP",
            f"{tables} {insert} FORWARD -i {b} ! -o {b} -d {'fe80::/10' if v6 else LINK_LOCAL}"
            " -j DROP",
            f"{tables} {insert} FORWARD -o {b} ! -i {b} -m conntrack"
            " ! --ctstate ESTABLISHED,RELATED -j DROP",
            f"{tables} {insert} FORWARD -i {b} -o {b} -j ACCEPT",
        ]
    if isinstance(op, GuardBridge):
        lines = [f"iptables {insert} INPUT -i {b} -j DROP"]
        if op.gateway:
            lines.append(
                f"iptables {insert} INPUT -i {b} -d {op.gateway} -p icmp --icmp-type echo-request"
                " -j ACCEPT"
            )
        lines.append(
            f"iptables {insert} INPUT -i {b} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT"
        )
        if op.gateway is None:
            lines += [
                f"iptables {insert} FORWARD -i {b} ! -o {b} -j DROP",
                f"iptables {insert} FORWARD -o {b} ! -i {b} -j DROP",
            ]
        if op.gateway6 is not None:
            lines += [
                f"ip6tables {insert} INPUT -i {b} -j DROP",
                f"ip6tables {insert} INPUT -i {b} -d {op.gateway6} -p icmpv6"
                " --icmpv6-type echo-request -j ACCEPT",
                *(
                    f"ip6tables {insert} INPUT -i {b} -p icmpv6 --icmpv6-type {kind} -j ACCEPT"
                    for kind in ("neighbour-solicitation", "neighbour-advertisement")
                ),
                f"ip6tables {insert} INPUT -i {b} -m conntrack --ctstate ESTABLISHED,RELATED"
                " -j ACCEPT",
            ]
        return lines
    return [
        f"{tables} {insert} FORWARD -i {b} ! -o {b} -j DROP",
        f"{tables} {insert} FORWARD -o {b} ! -i {b} -j DROP",
    ]


DRIVER = Bridge()
