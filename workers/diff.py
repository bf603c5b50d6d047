"""Redeploy: what changes between the plan a host runs and the next one, and removing
what the next one no longer has, so that re-applying it touches only the difference.

Each node owns the ops about its netns, cgroup and host-side veths, its point-to-point links
(as the node at the other end does), its spawn and its exec commands (a node that joins
another's netns owns no netns, and is made again with that node); each
network owns its bridge (with the bridge's address, shaping, firewall rules) and its
VXLAN with the FDB entries. A node is kept (same process, same links) when its own ops
are equal in both plans, apart from its /etc/hosts lines, which are rewritten in place,
and every network it is joined to is kept. Everything else of the old plan is removed
first; the idempotent apply of the new plan then creates what is missing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from labplan import ops
from workers.driver import Driver
from workers.kernel.processes import hosts_text


@dataclass(frozen=True)
class NodeObjects:
    """The kernel objects a node of a plan owns."""

    name: str
    netns: str | None
    cgroup: str
    veths: tuple[str, ...]
    # Its point-to-point links, as (its end's name, the other end's netns and name). The
    # kernel frees a removed namespace's links later, on its own time: deleting an end
    # first takes the pair away at once, before the next plan makes the kept end again.
    peer_links: tuple[tuple[str, str, str], ...] = ()


@dataclass
class _Parts:
    """A host plan cut into what each node and each network owns."""

    nodes: dict[str, list[ops.Op]] = field(default_factory=dict)
    objects: dict[str, NodeObjects] = field(default_factory=dict)
    networks: dict[str, list[ops.Op]] = field(default_factory=dict)  # by bridge name
    links: dict[str, tuple[str, ...]] = field(default_factory=dict)  # bridge -> its links
    joins: dict[str, set[str]] = field(default_factory=dict)  # node -> links it hangs on
    shares: dict[str, str] = field(default_factory=dict)  # node -> node whose netns it joins
    firewall: set[ops.Op] = field(default_factory=set)
    hosts: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class HostDiff:
    """How the next plan of a host differs from the one it runs."""

    kept: tuple[str, ...]  # nodes left running, with their links
    replaced: tuple[str, ...]  # nodes removed, then created again
    added: tuple[str, ...]
    removed: tuple[str, ...]
    stale_nodes: tuple[NodeObjects, ...]  # of the old plan: removed and replaced nodes
    stale_links: tuple[str, ...]  # bridges and VXLANs of changed or removed networks
    firewall_changed: bool
    hosts_changed: tuple[NodeObjects, ...]  # kept nodes whose /etc/hosts lines changed
    new_hosts: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    @property
    def unchanged(self) -> bool:
        return not (self.replaced or self.added or self.removed or self.stale_links) and not (
            self.firewall_changed or self.hosts_changed
        )


def _split(plan: ops.HostPlan) -> _Parts:
    parts = _Parts()
    spawns = [op for op in plan.ops if isinstance(op, ops.SpawnNode)]
    veths: dict[str, list[str]] = {op.node: [] for op in spawns}
    # A netns is its owner's: a node that joins another's owns none.
    by_netns = {op.netns: op.node for op in spawns if op.netns is not None and op.joins is None}
    by_cgroup = {op.cgroup: op.node for op in spawns}
    for op in plan.ops:
        if isinstance(op, ops.CreateVethPair) and op.peer_netns in by_netns:
            veths[by_netns[op.peer_netns]].append(op.name)
    by_veth = {name: node for node, names in veths.items() for name in names}
    peer_links: dict[str, list[tuple[str, str, str]]] = {op.node: [] for op in spawns}
    for op in plan.ops:
        if isinstance(op, ops.CreatePeerLink) and op.netns in by_netns:
            peer_links[by_netns[op.netns]].append((op.ifname, op.peer_netns, op.peer_ifname))
        if isinstance(op, ops.CreatePeerLink) and op.peer_netns in by_netns:
            peer_links[by_netns[op.peer_netns]].append((op.peer_ifname, op.netns, op.ifname))
    vxlan_bridge = {op.name: op.bridge for op in plan.ops if isinstance(op, ops.CreateVxlan)}
    for op in spawns:
        parts.nodes[op.node] = []
        parts.joins[op.node] = set()
        netns = op.netns if op.joins is None else None
        parts.objects[op.node] = NodeObjects(
            op.node, netns, op.cgroup, tuple(veths[op.node]), tuple(peer_links[op.node])
        )
        if op.joins is not None:
            parts.shares[op.node] = op.joins
        parts.hosts[op.node] = op.hosts
    for op in plan.ops:
        if isinstance(op, ops.CreatePeerLink):
            # A changed link is made again with both its ends. A node replaced takes the
            # pair with its namespace; the apply makes it again, into the kept other end.
            for end in dict.fromkeys((by_netns.get(op.netns), by_netns.get(op.peer_netns))):
                if end is not None:
                    parts.nodes[end].append(op)
            continue
        node = _node_of(op, by_netns, by_cgroup, by_veth)
        if node is not None:
            if isinstance(op, ops.SpawnNode):
                op = dataclasses.replace(op, hosts=())
            parts.nodes[node].append(op)
            parent = _hangs_on(op)
            if parent is not None:
                parts.joins[node].add(parent)
            continue
        if isinstance(op, ops.SetNat | ops.IsolateBridge | ops.GuardBridge):
            parts.firewall.add(op)
        bridge = _network_of(op, vxlan_bridge)
        if bridge is not None:
            parts.networks.setdefault(bridge, []).append(op)
    for bridge in parts.networks:
        parts.links[bridge] = (bridge, *(x for x, b in vxlan_bridge.items() if b == bridge))
    return parts


def _node_of(
    op: ops.Op, by_netns: dict[str, str], by_cgroup: dict[str, str], by_veth: dict[str, str]
) -> str | None:
    match op:
        case ops.SpawnNode(node=node) | ops.ExecInNode(node=node):
            return node
        case ops.CreateCgroup(cgroup=cgroup) | ops.SetCgroupLimit(cgroup=cgroup):
            return by_cgroup.get(cgroup)
        case ops.CreateVethPair(peer_netns=netns):
            return by_netns.get(netns)
        case ops.AttachToBridge(link=link):
            return by_veth.get(link)
        case ops.CreateNetns(netns=netns) | ops.AddRoute(netns=netns):
            return by_netns.get(netns)
        case ops.SetSysctl(netns=netns):
            return by_netns.get(netns)
        case ops.CreateMacvlan(netns=netns) | ops.CreateIpvlan(netns=netns):
            return by_netns.get(netns)
        case ops.CreateVlan(netns=netns):
            return by_netns.get(netns)
        case ops.SetPortVlans(link=link):
            return by_veth.get(link)
        case ops.SetLinkUp() | ops.AddAddress() | ops.SetShaping():
            if op.netns is None:
                return by_veth.get(op.ifname)
            return by_netns.get(op.netns)
        case _:
            return None


def _hangs_on(op: ops.Op) -> str | None:
    """The shared link a node's op depends on: deleting that link breaks the node."""
    match op:
        case ops.AttachToBridge(bridge=bridge):
            return bridge
        case ops.CreateMacvlan(parent=parent) | ops.CreateIpvlan(parent=parent):
            return parent
        case ops.CreateVlan(parent=parent):
            return parent
        case _:
            return None


def _network_of(op: ops.Op, vxlan_bridge: dict[str, str]) -> str | None:
    match op:
        case ops.CreateBridge(name=name):
            return name
        case ops.CreateVxlan(bridge=bridge):
            return bridge
        case ops.AddFdbEntry(vxlan=vxlan):
            return vxlan_bridge.get(vxlan, vxlan)
        case ops.SetNat(bridge=bridge) | ops.IsolateBridge(bridge=bridge):
            return bridge
        case ops.GuardBridge(bridge=bridge) | ops.AddBridgeVlan(bridge=bridge):
            return bridge
        case ops.SetLinkUp() | ops.AddAddress() | ops.SetShaping():
            return vxlan_bridge.get(op.ifname, op.ifname) if op.netns is None else None
        case _:
            return None


def diff(previous: ops.HostPlan, current: ops.HostPlan) -> HostDiff:
    """What must go from `previous`, and what stays, for `current` to be applied."""
    old, new = _split(previous), _split(current)
    changed_networks = {b for b, o in old.networks.items() if new.networks.get(b) != o}
    broken = {link for b in changed_networks for link in old.links[b]}
    kept: list[str] = []
    replaced: list[str] = []
    for node in sorted(new.nodes):
        if node not in old.nodes:
            continue
        same = old.nodes[node] == new.nodes[node] and not (old.joins[node] & broken)
        (kept if same else replaced).append(node)
    # A node in the netns of a node made again would keep the old one: made again too.
    for node in list(kept):
        if (owner := new.shares.get(node)) is not None and owner in replaced:
            kept.remove(node)
            replaced.append(node)
    replaced.sort()
    removed = sorted(set(old.nodes) - set(new.nodes))
    hosts_changed = tuple(new.objects[n] for n in kept if old.hosts[n] != new.hosts[n])
    return HostDiff(
        kept=tuple(kept),
        replaced=tuple(replaced),
        added=tuple(sorted(set(new.nodes) - set(old.nodes))),
        removed=tuple(removed),
        stale_nodes=tuple(old.objects[n] for n in sorted([*replaced, *removed])),
        stale_links=tuple(sorted(broken)),
        firewall_changed=old.firewall != new.firewall,
        hosts_changed=hosts_changed,
        new_hosts={o.name: new.hosts[o.name] for o in hosts_changed},
    )


def prune(
    driver: Driver,
    change: HostDiff,
    token: str,
    node_dir: Callable[[str], Path],
    report: Callable[[str], None],
) -> None:
    """Remove what `change` says the next plan no longer has, and rewrite the /etc/hosts
    of kept nodes in place (the file is bind-mounted, so the node sees it at once)."""
    for node in change.stale_nodes:
        driver.kill_cgroup(node.cgroup)
    for node in change.stale_nodes:
        for ifname, peer_netns, peer_ifname in node.peer_links if node.netns else ():
            if driver.remove_link(ifname, node.netns, peer=(peer_netns, peer_ifname)):
                report(f"link {ifname} of {node.name}")
        # Deleting the namespace deletes the node's end of each veth, and so the other.
        if node.netns is not None and driver.remove_netns(node.netns):
            report(f"netns {node.netns}")
        for veth in node.veths:
            if driver.remove_link(veth):
                report(f"link {veth}")
        if driver.remove_cgroup(node.cgroup):
            report(f"cgroup {node.cgroup}")
    for link in change.stale_links:
        if driver.remove_link(link):
            report(f"link {link}")
    if change.firewall_changed and driver.remove_firewall(token):
        report(f"nftables table {token}")
    for node in change.hosts_changed:
        hosts = node_dir(node.cgroup) / "hosts"
        if hosts.exists():
            hosts.write_text(hosts_text(change.new_hosts[node.name]))  # same inode
