"""The plan compiler: a normalised labfile plus a placement becomes, per host, the ordered
kernel operations that build the lab.

Pure and deterministic: the same lab and the same arguments give an equal Plan, within
the bounds of `labplan.bounds`. Per host
the order is the dependency order: namespaces, cgroups, bridges, tunnels, links,
addresses/shaping/routes, processes. What each network and attachment compiles to, and
where a network's own objects are placed, is its driver's (`labplan.drivers`); the order,
the names and the addresses are this module's. Checks that need the placement (which
host each node is on) live here and raise LabfileError with field paths; everything else
is the validator's job.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from labplan import bounds, naming
from labplan.drivers import DRIVERS, Link, Placement, Placing, article, listed, taking
from labplan.errors import FieldError, LabfileError
from labplan.messages import CPU_PERIOD
from labplan.model import NAMESPACE_KINDS, Labfile, Limits, Network, Node, Port, Shaping
from labplan.model import Link as LinkSpec
from labplan.ops import (
    AddAddress,
    AddRoute,
    AttachToBridge,
    CreateCgroup,
    CreateDummy,
    CreateNetns,
    CreatePeerLink,
    CreateTunnel,
    CreateVethPair,
    CreateVolume,
    ExecInNode,
    HostPlan,
    Op,
    Plan,
    PullImage,
    SetAltname,
    SetCgroupLimit,
    SetLinkUp,
    SetShaping,
    SetSysctl,
    SpawnNode,
)

EXEC_TIMEOUT = 60  # seconds a node's exec command may run
CPU_MIN_QUOTA = 1_000  # the kernel refuses a smaller cpu.max quota
HOSTNAME_FALLBACK_ADDRESS = "127.0.1.1"  # Debian's convention for a host without an address


@dataclass(frozen=True)
class _Lab:
    """The lab with everything the phases look up: indexes, hosts, placements. Drivers
    read it as a `labplan.drivers.Build`."""

    lab: Labfile
    deployment: int
    nodes: tuple[Node, ...]  # sorted by name
    networks: tuple[Network, ...]  # sorted by name
    node_index: Mapping[str, int]
    network_index: Mapping[str, int]
    network_position: Mapping[str, int]  # in name order
    node_host: Mapping[str, str]
    placements: Mapping[str, Placement]  # network -> the hosts holding its own objects
    underlay: Mapping[str, str]
    vnis: Mapping[str, int]  # allocated at deploy time
    lab_hosts: tuple[tuple[str, str], ...]  # every addressed node's /etc/hosts line, sorted
    lab_hosts_keys: tuple[tuple[int, str], ...]  # their sort keys, for bisect

    network_by_name: Mapping[str, Network]
    link_ipv4: Mapping[str, str]  # node -> the address of its first link end that has one
    node_by_name: Mapping[str, Node]
    # Each distinct /etc/hosts of the lab's nodes, by the lines a node adds to lab_hosts.
    hosts_files: dict[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]] = field(
        default_factory=dict
    )

    def network(self, name: str) -> Network:
        return self.network_by_name[name]

    def netns(self, node: Node) -> str | None:
        """The node's netns (the one it joins, for `network_mode: container:NODE`), or None
        for a node sharing the host's."""
        if node.joins is not None:
            return self.netns(self.node_by_name[node.joins])
        if any(DRIVERS[self.network(a.network).driver].shares_host_netns for a in node.networks):
            return None
        return naming.netns_name(self.deployment, self.node_index[node.name])

    def bridge(self, network: str) -> str:
        return naming.bridge_name(self.deployment, self.network_index[network])

    def index(self, network: str) -> int:
        return self.network_index[network]

    def position(self, network: str) -> int:
        return self.network_position[network]

    def placement(self, network: str) -> Placement:
        return self.placements[network]

    def nodes_on(self, host: str) -> Iterator[Node]:
        return (n for n in self.nodes if self.node_host[n.name] == host)


def compile_plan(
    lab: Labfile,
    *,
    deployment: int,
    placement: Mapping[str, str] | None = None,
    default_host: str = "local",
    underlay: Mapping[str, str] | None = None,
    vnis: Mapping[str, int] | None = None,
    indexes: Indexes | None = None,
    images: Mapping[str, str] | None = None,
) -> Plan:
    """The plan building `lab` as deployment `deployment`.

    A node runs on placement[node], else its labfile `host`, else `default_host`.
    `underlay` gives each host's VXLAN underlay address; `vnis` the VNI allocated to each
    overlay network (else its labfile `vni`, else one derived from the deployment id).
    `indexes` fixes the index (and so the kernel names) of each node and network; a
    redeploy passes `assign_indexes(lab, previous)` so that what stays keeps its names.
    `images` pins image references to the digests a deployment ran before, so that a
    redeploy runs them again whatever their tags name now.
    """
    ctx = _resolve(
        lab,
        deployment,
        placement or {},
        default_host,
        underlay or {},
        vnis or {},
        indexes or assign_indexes(lab),
    )
    hosts = sorted(
        set(ctx.node_host.values()) | {h for p in ctx.placements.values() for h in p.hosts}
    )
    token = naming.deployment_token(deployment)
    group = naming.link_group(deployment)
    plan = Plan(
        lab=lab.name,
        deployment=token,
        hosts=tuple(
            HostPlan(h, token, group, (*_image_ops(ctx, h, images or {}), *_host_ops(ctx, h)))
            for h in hosts
        ),
    )
    # The validator bounded the lab on one host; spread over hosts, an overlay makes its
    # bridge and tunnel on each. Refused here, the agents never see a plan they refuse.
    if errors := bounds.plan_errors(plan):
        raise LabfileError(errors)
    return plan


# --- indexes: what kernel names are made of ---------------------------------------------


@dataclass(frozen=True)
class Indexes:
    """The index of each node and network, from which their kernel names are made."""

    nodes: Mapping[str, int]
    networks: Mapping[str, int]

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {
            "nodes": dict(sorted(self.nodes.items())),
            "networks": dict(sorted(self.networks.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Mapping[str, int]]) -> Indexes:
        return cls(dict(data.get("nodes", {})), dict(data.get("networks", {})))


def assign_indexes(lab: Labfile, previous: Indexes | None = None) -> Indexes:
    """Positions in name order; with `previous`, every node and network that is still there
    keeps its index and new ones take the lowest free indexes, so a redeploy renames
    nothing that stays."""
    return Indexes(
        _stable([n.name for n in lab.nodes], previous.nodes if previous else {}),
        _stable([n.name for n in lab.networks], previous.networks if previous else {}),
    )


def _stable(names: list[str], previous: Mapping[str, int]) -> dict[str, int]:
    kept = {name: previous[name] for name in names if name in previous}
    taken = set(kept.values())
    free = (i for i in range(naming.MAX_INDEX + 1) if i not in taken)
    return kept | {name: next(free) for name in sorted(names) if name not in kept}


def _index_errors(kind: str, names: list[str], given: Mapping[str, int]) -> list[FieldError]:
    values = [given.get(name) for name in names]
    matches = set(given) == set(names) and len(set(values)) == len(values)
    if matches and all(v is not None and 0 <= v <= naming.MAX_INDEX for v in values):
        return []
    return [FieldError(f"indexes.{kind}", f"the {kind} indexes do not match the lab's {kind}")]


# --- resolution: placement and the checks that need it -----------------------------------


def _resolve(
    lab: Labfile,
    deployment: int,
    placement: Mapping[str, str],
    default_host: str,
    underlay: Mapping[str, str],
    vnis: Mapping[str, int],
    indexes: Indexes,
) -> _Lab:
    nodes = tuple(sorted(lab.nodes, key=lambda n: n.name))
    networks = tuple(sorted(lab.networks, key=lambda n: n.name))
    errors = [
        FieldError(f"placement.{name}", f"there is no node {name} in lab {lab.name}")
        for name in sorted(set(placement) - {n.name for n in nodes})
    ]
    errors += _index_errors("nodes", [n.name for n in nodes], indexes.nodes)
    errors += _index_errors("networks", [n.name for n in networks], indexes.networks)
    node_host = {n.name: placement.get(n.name) or n.host or default_host for n in nodes}
    for node in nodes:
        if node.joins is not None:  # where the namespace it joins is
            if node.name in placement and placement[node.name] != node_host[node.joins]:
                errors.append(
                    FieldError(
                        f"placement.{node.name}",
                        f"{node.name} joins the network namespace of {node.joins}, which is "
                        f"placed on {node_host[node.joins]}: place both on one host",
                    )
                )
            node_host[node.name] = node_host[node.joins]
    members: dict[str, list[Node]] = {net.name: [] for net in networks}
    for node in nodes:
        for att in node.networks:
            members.setdefault(att.network, []).append(node)
    placing = Placing(
        members=members,
        via_children=_via_children(members, networks),
        node_host=node_host,
        default_host=default_host,
        underlay=underlay,
    )
    placements = _place(networks, placing, errors)
    errors += _links_off_host(lab, node_host)
    errors += _ports_off_host(lab, node_host, placements)
    errors += _volumes_off_host(lab, node_host)
    if errors:
        raise LabfileError(errors)
    link_ipv4: dict[str, str] = {}
    for link in lab.links:
        for end in link.ends:
            if end.ipv4 is not None:
                link_ipv4.setdefault(end.node, end.ipv4.partition("/")[0])
    lab_hosts = sorted((_hosts_order(line), line) for line in _lab_hosts(nodes, link_ipv4))
    return _Lab(
        lab=lab,
        deployment=deployment,
        nodes=nodes,
        networks=networks,
        node_index=indexes.nodes,
        network_index=indexes.networks,
        network_position={net.name: i for i, net in enumerate(networks)},
        node_host=node_host,
        placements=placements,
        underlay=underlay,
        vnis=vnis,
        lab_hosts=tuple(line for _, line in lab_hosts),
        lab_hosts_keys=tuple(key for key, _ in lab_hosts),
        network_by_name={net.name: net for net in networks},
        link_ipv4=link_ipv4,
        node_by_name={node.name: node for node in nodes},
    )


def _via_children(
    members: Mapping[str, list[Node]], networks: tuple[Network, ...]
) -> dict[str, list[tuple[Node, str]]]:
    """Each network that is a parent -> (node, child network) for every node of its
    children, by node name."""
    children: dict[str, list[str]] = {}
    for net in networks:
        if net.parent:
            children.setdefault(net.parent, []).append(net.name)
    return {
        parent: sorted(
            ((n, child) for child in names for n in members[child]),
            key=lambda pair: (pair[0].name, pair[1]),
        )
        for parent, names in children.items()
    }


def _place(
    networks: tuple[Network, ...], placing: Placing, errors: list[FieldError]
) -> dict[str, Placement]:
    """Each network's placement by its driver. Driver by driver, in the registry's order,
    so that the errors come in a stable order; a child link goes on its parent's host."""
    placements: dict[str, Placement] = {}
    for driver in DRIVERS.values():
        for net in networks:
            if net.driver != driver.name:
                continue
            placement = placements[net.name] = driver.place(net, placing)
            errors += placement.errors
            if driver.carries_children and placement.hosts:
                errors += _children_off_host(net, placement.hosts[0], placing)
    return placements


def _links_off_host(lab: Labfile, node_host: Mapping[str, str]) -> list[FieldError]:
    """A link is a veth pair: both its ends are on one host."""
    errors = []
    for index, link in zip(lab.link_numbers(), lab.links, strict=True):
        first, second = (end.node for end in link.ends)
        if node_host[first] != node_host[second]:
            errors.append(
                FieldError(
                    f"links.{index}.endpoints",
                    f"{first} is placed on host {node_host[first]} and {second} on "
                    f"{node_host[second]}; a link belongs to one host (nodes on different "
                    "hosts meet on an overlay network)",
                )
            )
    return errors


def _ports_off_host(
    lab: Labfile, node_host: Mapping[str, str], placements: Mapping[str, Placement]
) -> list[FieldError]:
    """A network link is a veth pair to the bridge: its node is on the bridge's host."""
    errors = []
    for port in lab.ports:
        if port.network is None or not placements[port.network].hosts:
            continue
        there, node = placements[port.network].hosts[0], port.end.node
        if node_host[node] != there:
            errors.append(
                FieldError(
                    f"links.{port.index}.network",
                    f"bridge network {port.network} is on host {there} but {node} is placed "
                    f"on {node_host[node]}; a bridge cannot span hosts",
                )
            )
    return errors


def _volumes_off_host(lab: Labfile, node_host: Mapping[str, str]) -> list[FieldError]:
    """A volume is a tmpfs of one host: the nodes that mount it are placed together."""
    errors: list[FieldError] = []
    first: dict[str, str] = {}  # volume -> the first node mounting it
    for node in lab.nodes:
        for index, mount in enumerate(node.mounts):
            if mount.volume is None:
                continue
            other = first.setdefault(mount.volume, node.name)
            if node_host[other] != node_host[node.name]:
                errors.append(
                    FieldError(
                        f"nodes.{node.name}.mounts.{index}.volume",
                        f"volume {mount.volume} is on host {node_host[other]} with {other}, "
                        f"but {node.name} is placed on {node_host[node.name]}: a volume "
                        "belongs to one host (give both nodes the same host)",
                    )
                )
    return errors


def _children_off_host(parent: Network, host: str, placing: Placing) -> list[FieldError]:
    children = f"{article(listed(taking('parent'), 'or'))} link"
    return [
        FieldError(
            f"nodes.{node.name}.networks.{child}",
            f"the parent of network {child} is {parent.driver} {parent.name}, which is on"
            f" host {host}, but this node is placed on {placing.node_host[node.name]};"
            f" {children} must be on its parent's host",
        )
        for node, child in placing.via_children.get(parent.name, ())
        if placing.node_host[node.name] != host
    ]


# --- per host phases -----------------------------------------------------------------------


def _host_ops(ctx: _Lab, host: str) -> Iterator[Op]:
    yield from _netns_ops(ctx, host)
    yield from _cgroup_ops(ctx, host)
    for net in _held_on(ctx, host):
        yield from DRIVERS[net.driver].network_ops(ctx, net, host)
    for net in _held_on(ctx, host):
        yield from DRIVERS[net.driver].tunnel_ops(ctx, net, host)
    for node in ctx.nodes_on(host):
        yield from _link_ops(ctx, node)
    links = [link for link in ctx.lab.links if ctx.node_host[link.ends[0].node] == host]
    for link in links:
        yield from _peer_link_ops(ctx, link)
    ports = _host_sides(ctx, [p for p in ctx.lab.ports if ctx.node_host[p.end.node] == host])
    for port, veth in ports:
        yield from _port_link_ops(ctx, port, veth)
    for node in ctx.nodes_on(host):
        yield from _address_ops(ctx, node)
    for link in links:
        yield from _peer_address_ops(ctx, link)
    for port, veth in ports:
        yield from _port_address_ops(ctx, port, veth)
    # Routes once every address is there: a route's via may be a link's other end.
    for node in ctx.nodes_on(host):
        yield from _route_ops(ctx, node)
    # Sysctls once every interface is there: a key may name one (net.ipv4.conf.eth1...).
    for node in ctx.nodes_on(host):
        netns = ctx.netns(node)
        if netns is not None:
            for key, value in node.sysctls.items():
                yield SetSysctl(node.name, netns, key, value)
    mounted = {m.volume for node in ctx.nodes_on(host) for m in node.mounts if m.volume}
    for volume in ctx.lab.volumes:
        if volume.name in mounted:
            yield CreateVolume(volume.name, volume.size)
    for node in ctx.nodes_on(host):
        yield _spawn_op(ctx, node)
    for node in ctx.nodes_on(host):
        for index, command in enumerate(node.exec):
            cgroup = naming.node_cgroup(ctx.deployment, ctx.node_index[node.name])
            yield ExecInNode(node.name, cgroup, index, command, EXEC_TIMEOUT)


def _image_ops(ctx: _Lab, host: str, pins: Mapping[str, str]) -> Iterator[Op]:
    """Each image the host's nodes run, once, first of all: a pull that fails leaves
    nothing to undo. Pinned to the digest the reference names, else the one `pins`
    gives (what the deployment ran before)."""
    seen: set[str] = set()
    for node in ctx.nodes_on(host):
        if node.image is None or node.image in seen:
            continue
        seen.add(node.image)
        _, at, digest = node.image.partition("@")
        yield PullImage(node.image, digest if at else pins.get(node.image))


def _held_on(ctx: _Lab, host: str) -> Iterator[Network]:
    """The networks whose own kernel objects (a bridge, a tunnel) are on `host`."""
    return (net for net in ctx.networks if host in ctx.placements[net.name].hosts)


def _netns_ops(ctx: _Lab, host: str) -> Iterator[Op]:
    for node in ctx.nodes_on(host):
        netns = ctx.netns(node)
        if netns is not None and node.joins is None:
            yield CreateNetns(netns)


def _cgroup_ops(ctx: _Lab, host: str) -> Iterator[Op]:
    nodes = list(ctx.nodes_on(host))
    if not nodes:
        return
    yield CreateCgroup(naming.deployment_cgroup(ctx.deployment))
    for node in nodes:
        cgroup = naming.node_cgroup(ctx.deployment, ctx.node_index[node.name])
        yield CreateCgroup(cgroup)
        for key, value in cgroup_limits(node.limits):
            yield SetCgroupLimit(cgroup, key, value)


def cgroup_limits(limits: Limits) -> list[tuple[str, str]]:
    """The cgroup v2 files and values that enforce `limits`, in a fixed order."""
    values: list[tuple[str, str]] = []
    if limits.cpus is not None:
        quota = max(round(limits.cpus * CPU_PERIOD), CPU_MIN_QUOTA)
        values.append(("cpu.max", f"{quota} {CPU_PERIOD}"))
    if limits.cpu_weight is not None:
        values.append(("cpu.weight", str(limits.cpu_weight)))
    if limits.memory is not None:
        values.append(("memory.max", str(limits.memory)))
    if limits.memory_swap is not None:
        values.append(("memory.swap.max", str(limits.memory_swap)))
    if limits.pids is not None:
        values.append(("pids.max", str(limits.pids)))
    if limits.io_weight is not None:
        values.append(("io.weight", f"default {limits.io_weight}"))
    for throttle in limits.io:
        given = [
            f"{key}={value}"
            for key, value in (
                ("rbps", throttle.rbps),
                ("wbps", throttle.wbps),
                ("riops", throttle.riops),
                ("wiops", throttle.wiops),
            )
            if value is not None
        ]
        if given:
            values.append(("io.max", " ".join([throttle.device, *given])))
    return values


def _link_ops(ctx: _Lab, node: Node) -> Iterator[Op]:
    netns = ctx.netns(node)
    if netns is None:
        return
    for index, att in enumerate(node.networks):
        net = ctx.network(att.network)
        driver = DRIVERS[net.driver]
        if driver.attachment_op is None:
            continue
        if att.ifname is None:
            raise LabfileError(
                [FieldError(f"nodes.{node.name}.networks.{net.name}", "has no interface name")]
            )
        link = Link(
            netns, att.ifname, att.mac, ctx.node_index[node.name], index, att.vlan, att.vlans
        )
        yield from driver.link_ops(ctx, net, link)
        yield SetLinkUp(netns, att.ifname)


def _address_ops(ctx: _Lab, node: Node) -> Iterator[Op]:
    netns = ctx.netns(node)
    if netns is None or node.joins is not None:
        return  # the host's own addresses, or the joined node's, are not this node's
    yield SetLinkUp(netns, "lo")
    for att in node.networks:
        net = ctx.network(att.network)
        if att.ipv4 is None or att.ifname is None or net.subnet is None:
            continue
        prefix = ipaddress.ip_network(net.subnet).prefixlen
        yield AddAddress(netns, att.ifname, f"{att.ipv4}/{prefix}")
        if att.ipv6 is not None and net.subnet6 is not None:
            prefix6 = ipaddress.ip_network(net.subnet6).prefixlen
            yield AddAddress(netns, att.ifname, f"{att.ipv6}/{prefix6}")
        shaping = att.impairments or net.shaping
        if shaping is not None:
            yield _shaping(netns, att.ifname, shaping)


def _route_ops(ctx: _Lab, node: Node) -> Iterator[Op]:
    netns = ctx.netns(node)
    if netns is None:
        return
    for route in node.routes:
        yield AddRoute(netns, route.dst, route.via)


def _shaping(netns: str | None, ifname: str, s: Shaping) -> SetShaping:
    return SetShaping(
        netns, ifname, s.rate, s.delay, s.jitter, s.loss, s.duplicate, s.corrupt, s.reorder
    )


def _peer_link_ops(ctx: _Lab, link: LinkSpec) -> Iterator[Op]:
    """A link's veth pair, made in the first end's namespace with its peer in the
    second's, then both ends up."""
    first, second = link.ends
    netns = [ctx.netns(ctx.node_by_name[end.node]) for end in link.ends]
    assert netns[0] is not None and netns[1] is not None  # the validator's rule
    yield CreatePeerLink(netns[0], first.ifname, netns[1], second.ifname, link.mtu)
    yield SetLinkUp(netns[0], first.ifname)
    yield SetLinkUp(netns[1], second.ifname)


def _peer_address_ops(ctx: _Lab, link: LinkSpec) -> Iterator[Op]:
    for end in link.ends:
        netns = ctx.netns(ctx.node_by_name[end.node])
        assert netns is not None
        for address in (end.ipv4, end.ipv6):
            if address is not None:
                yield AddAddress(netns, end.ifname, address)
        if end.impairments is not None:
            yield _shaping(netns, end.ifname, end.impairments)


def _host_sides(ctx: _Lab, ports: list[Port]) -> list[tuple[Port, str | None]]:
    """Each link of one endpoint with the name of its host side: the veth's end in the
    host's namespace for a host link, None for the others."""
    numbers: dict[str, int] = {}  # node -> its links into the host's namespace so far
    sides: list[tuple[Port, str | None]] = []
    for port in ports:
        veth = None
        if port.type in ("host", "network"):
            number = numbers[port.end.node] = numbers.get(port.end.node, -1) + 1
            veth = naming.host_link_name(ctx.deployment, ctx.node_index[port.end.node], number)
        sides.append((port, veth))
    return sides


def _port_link_ops(ctx: _Lab, port: Port, veth: str | None) -> Iterator[Op]:
    """The node's interface of a link of one endpoint, and what is at its far side."""
    end = port.end
    netns = ctx.netns(ctx.node_by_name[end.node])
    assert netns is not None  # the validator's rule
    if port.type == "dummy":
        yield CreateDummy(netns, end.ifname, port.mtu)
    elif port.type == "vxlan":
        assert port.remote is not None and port.vni is not None
        yield CreateTunnel(
            netns, end.ifname, port.vni, port.remote, port.port, port.parent, port.mtu
        )
    else:
        assert veth is not None
        yield CreateVethPair(
            name=veth,
            peer_netns=netns,
            peer_ifname=end.ifname,
            peer_mac=None,
            mtu=port.mtu,
            group=naming.link_group(ctx.deployment),
            alias=naming.link_alias(ctx.deployment),
        )
        if port.host_ifname is not None:
            yield SetAltname(veth, port.host_ifname)
        if port.network is not None:
            yield AttachToBridge(veth, ctx.bridge(port.network))
        yield SetLinkUp(None, veth)
    yield SetLinkUp(netns, end.ifname)


def _port_address_ops(ctx: _Lab, port: Port, veth: str | None) -> Iterator[Op]:
    netns = ctx.netns(ctx.node_by_name[port.end.node])
    assert netns is not None
    for address in (port.end.ipv4, port.end.ipv6):
        if address is not None:
            yield AddAddress(netns, port.end.ifname, address)
    for address in (port.host_ipv4, port.host_ipv6):
        if address is not None and veth is not None:
            yield AddAddress(None, veth, address)


def _spawn_op(ctx: _Lab, node: Node) -> SpawnNode:
    return SpawnNode(
        node=node.name,
        netns=ctx.netns(node),
        cgroup=naming.node_cgroup(ctx.deployment, ctx.node_index[node.name]),
        hostname=node.hostname,
        namespaces=tuple(k for k in NAMESPACE_KINDS if getattr(node.namespaces, k)),
        privileged=node.privileged,
        rootfs=node.rootfs,
        command=node.command,
        environment=tuple(sorted(node.environment.items())),
        workdir=node.workdir,
        hosts=_hosts_file(ctx, node),
        image=node.image,
        entrypoint=node.entrypoint,
        user=node.user,
        joins=node.joins,
        mounts=tuple(
            (
                "volume" if m.volume is not None else "host",
                m.volume if m.volume is not None else str(m.host),
                m.path,
                "ro" if m.readonly else "rw",
            )
            for m in node.mounts
        ),
    )


def _first_address(node: Node, link_ipv4: Mapping[str, str]) -> str | None:
    """The address a node's name stands for: that of its first network, else of its first
    link that has one."""
    return next((a.ipv4 for a in node.networks if a.ipv4), None) or link_ipv4.get(node.name)


def _lab_hosts(nodes: tuple[Node, ...], link_ipv4: Mapping[str, str]) -> Iterator[tuple[str, str]]:
    by_name = {node.name: node for node in nodes}
    for node in nodes:
        address = _first_address(_addressed(node, by_name), link_ipv4)
        if address:
            yield address, node.name


def _addressed(node: Node, by_name: Mapping[str, Node]) -> Node:
    """The node whose addresses `node` has: the one it joins, or itself."""
    return by_name[node.joins] if node.joins is not None else node


def _hosts_order(line: tuple[str, str]) -> tuple[int, str]:
    return int(ipaddress.IPv4Address(line[0])), line[1]


def _hosts_file(ctx: _Lab, node: Node) -> tuple[tuple[str, str], ...]:
    """/etc/hosts: localhost, the node's hostname, and every addressed node of the lab.

    The lab's lines are sorted once. A node only adds the two of its own that are not
    there already (usually only localhost), and nodes adding the same lines share one
    tuple: a lab of N nodes costs N lookups, not N copies of N lines."""
    missing = []
    for line in (
        ("127.0.0.1", "localhost"),
        (
            _first_address(_addressed(node, ctx.node_by_name), ctx.link_ipv4)
            or HOSTNAME_FALLBACK_ADDRESS,
            node.hostname,
        ),
    ):
        index = bisect.bisect_left(ctx.lab_hosts_keys, _hosts_order(line))
        if index == len(ctx.lab_hosts) or ctx.lab_hosts[index] != line:
            missing.append(line)
    key = tuple(missing)
    lines = ctx.hosts_files.get(key)
    if lines is None:
        merged = list(ctx.lab_hosts)
        for line in missing:
            merged.insert(bisect.bisect_left(merged, _hosts_order(line), key=_hosts_order), line)
        lines = ctx.hosts_files[key] = tuple(merged)
    return lines
