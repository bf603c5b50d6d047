"""Validation rules about point-to-point links (labfile 2 `links`): their endpoints, the
interfaces they take in each node, their addresses and subnets, and their impairments.
Used by `labplan.rules`, before the nodes are checked, so that a node's own interface
names and routes are checked against the links it has.

Input is the converted tree of `labplan.structure`, where a value that already failed is
INVALID; rules that depend on such a value are skipped rather than reported twice.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from labplan.drivers import DRIVERS
from labplan.model import Link, LinkEnd, Network, Port, Shaping
from labplan.naming import LABMGR_NAME_RE
from labplan.network_rules import impairments
from labplan.structure import INVALID, Checker, check_ifname
from labplan.units import UnitError

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Subnet = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class Links:
    """The lab's valid links, and what each node's own checks need of them."""

    valid: list[Link] = field(default_factory=list)
    ports: list[Port] = field(default_factory=list)  # the links of one endpoint
    # node -> ifname -> the path of the link that takes it ("links.0")
    ifnames: dict[str, dict[str, str]] = field(default_factory=dict)
    # node -> the subnets its link ends are on, for the `via` of its routes
    subnets: dict[str, list[tuple[str, Subnet]]] = field(default_factory=dict)


def check_links(
    checker: Checker,
    raw: Any,
    nodes: Mapping[str, Any],
    networks: Mapping[str, Network],
    declared: Collection[str] = (),
) -> Links:
    """Every link of the lab checked; `nodes` are the raw nodes, `networks` the valid
    networks (for the subnets a link's must not overlap), `declared` the names of all
    of them (a network whose own error was reported is not unknown)."""
    links = Links()
    if raw is INVALID or not raw:
        return links
    ends: dict[str, str] = {}  # endpoint -> the path of the link it is an end of
    subnets: list[tuple[Subnet, str]] = []  # each link's, with its path
    found: list[tuple[int, Link | Port]] = []
    for index, entry in enumerate(raw):
        path = f"links.{index}"
        if entry is INVALID:
            continue
        if entry.get("type", "veth") != "veth":
            port = _port(checker, path, index, entry, nodes, networks, ends, subnets, declared)
            if port is not None:
                found.append((index, port))
            continue
        link = _link(checker, path, entry, nodes, networks, ends, subnets)
        if link is not None:
            found.append((index, link))
    overlapping = _check_overlaps(checker, networks, subnets)
    for index, made in found:
        path = f"links.{index}"
        if path in overlapping:
            continue
        if isinstance(made, Port):
            links.ports.append(made)
            link_ends: tuple[LinkEnd, ...] = (made.end,)
        else:
            links.valid.append(made)
            link_ends = made.ends
        for end in link_ends:
            links.ifnames.setdefault(end.node, {})[end.ifname] = path
            for address in (end.ipv4, end.ipv6):
                if address is not None:
                    network = ipaddress.ip_interface(address).network
                    links.subnets.setdefault(end.node, []).append((path, network))
    return links


def _link(
    checker: Checker,
    path: str,
    raw: Any,
    nodes: Mapping[str, Any],
    networks: Mapping[str, Network],
    ends: dict[str, str],
    subnets: list[tuple[Subnet, str]],
) -> Link | None:
    before = checker.count
    endpoints = raw.get("endpoints")
    if endpoints is None or endpoints is INVALID or INVALID in endpoints:
        return None
    if len(endpoints) != 2:
        checker.error(
            f"{path}.endpoints",
            "a veth link has two endpoints, like [r1:eth1, r2:eth1]; give a type (dummy, "
            "host or vxlan) for an interface whose far side is not a node",
        )
        return None
    for key, owners in PORT_KEYS.items():
        if key in raw:
            checker.error(f"{path}.{key}", f"{key} is a key of a link of type {_types(owners)}")
    parsed = [
        _endpoint(checker, f"{path}.endpoints.{i}", e, nodes, networks)
        for i, e in enumerate(endpoints)
    ]
    if endpoints[0] == endpoints[1]:
        checker.error(
            f"{path}.endpoints.1", f"{endpoints[1]} is already the other end of this link"
        )
    for i, endpoint in enumerate(endpoints):
        taken = ends.setdefault(endpoint, path)
        if taken != path:
            checker.error(f"{path}.endpoints.{i}", f"{endpoint} is already an end of {taken}")
    addresses = {
        family: _addresses(checker, f"{path}.{family}", raw.get(family), subnets, path)
        for family in ("ipv4", "ipv6")
    }
    by_end = _impairments(checker, f"{path}.impairments", raw.get("impairments"), endpoints)
    if checker.count > before or None in parsed or INVALID in raw.values():
        return None
    v4, v6 = addresses["ipv4"], addresses["ipv6"]
    made = tuple(
        LinkEnd(
            node=node,
            ifname=ifname,
            ipv4=v4[i] if v4 else None,
            ipv6=v6[i] if v6 else None,
            impairments=by_end.get(endpoints[i], by_end.get("")),
        )
        for i, (node, ifname) in enumerate(p for p in parsed if p is not None)
    )
    return Link(ends=(made[0], made[1]), mtu=raw.get("mtu", 1500))


def _endpoint(
    checker: Checker,
    path: str,
    endpoint: str,
    nodes: Mapping[str, Any],
    networks: Mapping[str, Network],
) -> tuple[str, str] | None:
    node, _, ifname = endpoint.partition(":")
    if node not in nodes:
        known = ", ".join(sorted(nodes)) or "none yet"
        checker.error(path, f"{node} is not a node of this lab (nodes: {known})")
        return None
    try:
        check_ifname(ifname)
    except UnitError as error:
        checker.error(path, str(error))
        return None
    raw = nodes[node]
    attached = raw.get("networks", {}) if isinstance(raw, Mapping) else {}
    for name in attached if isinstance(attached, Mapping) else ():
        network = networks.get(name)
        if network is not None and DRIVERS[network.driver].shares_host_netns:
            checker.error(
                path,
                f"{node} is on the {network.driver} network {name}, in the host's network "
                "namespace: a link needs a node with a namespace of its own",
            )
            return None
    return node, ifname


def _addresses(
    checker: Checker,
    path: str,
    raw: Any,
    subnets: list[tuple[Subnet, str]],
    link: str,
) -> list[str] | None:
    """The two ends' addresses, in one subnet that no network or other link of the lab
    overlaps; None when not given or after an error."""
    if raw is None or raw is INVALID or INVALID in raw:
        return None
    if len(raw) != 2:
        checker.error(path, "a veth link has one address for each of its two ends")
        return None
    first, second = (ipaddress.ip_interface(a) for a in raw)
    before = checker.count
    for i, interface in enumerate((first, second)):
        if problem := _host_problem(interface):
            checker.error(f"{path}.{i}", problem)
    if checker.count == before:
        if second.network != first.network:
            checker.error(
                f"{path}.1",
                f"{second} is not in the subnet of the other end, {first.network}: both "
                "ends of a link are in one subnet",
            )
        elif second.ip == first.ip:
            checker.error(f"{path}.1", f"{second.ip} is already the other end's address")
    if checker.count > before:
        return None
    subnets.append((first.network, link))
    return [str(first), str(second)]


def _check_overlaps(
    checker: Checker, networks: Mapping[str, Network], subnets: list[tuple[Subnet, str]]
) -> set[str]:
    """Each link subnet that overlaps a network's or an earlier link's, said once, in one
    sorted sweep (a chain of 1,000 links is not a million comparisons); the paths of the
    links refused."""
    order = {path: i for i, (_, path) in enumerate(subnets)}  # networks: -1
    held = [
        (ipaddress.ip_network(subnet), f"network {n.name}")
        for n in networks.values()
        for subnet in (n.subnet, n.subnet6)
        if subnet is not None
    ]
    refused: set[str] = set()
    for version in (4, 6):
        spans = sorted(
            (int(net.network_address), int(net.broadcast_address), order.get(path, -1), path, net)
            for net, path in [*held, *subnets]
            if net.version == version
        )
        widest: tuple[int, int, int, str, Subnet] | None = None
        for span in spans:
            if widest is not None and span[0] <= widest[1]:
                later, earlier = (span, widest) if span[2] > widest[2] else (widest, span)
                if later[2] >= 0 and later[3] not in refused:
                    checker.error(
                        f"{later[3]}.ipv{version}",
                        f"{later[4]} overlaps the subnet of {earlier[3]} ({earlier[4]})",
                    )
                    refused.add(later[3])
            if widest is None or span[1] > widest[1]:
                widest = span
    return refused


def _host_problem(interface: Interface) -> str:
    network = interface.network
    host_bits = network.max_prefixlen - network.prefixlen
    if host_bits == 0:
        wider = f"/{network.prefixlen - 2} or a /{network.prefixlen - 1}"
        return f"{interface} leaves no room for the other end (use a {wider})"
    if host_bits == 1:
        return ""  # a point-to-point subnet: both addresses are hosts (RFC 3021, RFC 6164)
    if interface.ip == network.network_address:
        return f"{interface.ip} is the network address of {network}"
    if interface.version == 4 and interface.ip == network.broadcast_address:
        return f"{interface.ip} is the broadcast address of {network}"
    return ""


def _impairments(checker: Checker, path: str, raw: Any, endpoints: list[str]) -> dict[str, Shaping]:
    """Endpoint -> the impairments of what it sends ("": both ends)."""
    if raw is None or raw is INVALID:
        return {}
    result: dict[str, Shaping] = {}
    for key, spec in raw.items():
        item_path = path if key == "" else f"{path}.{key}"
        if key and key not in endpoints:
            checker.error(
                item_path,
                f"{key} is not an end of this link (its ends: {', '.join(endpoints)})",
            )
            continue
        shaping = impairments(checker, item_path, spec)
        if shaping is not None and shaping is not INVALID:
            result[key] = shaping
    return result


# The keys only a link of one endpoint has, and the type they belong to.
# The keys of links of one endpoint, with the types that have each.
PORT_KEYS = {
    "host_ifname": ("host", "network"),
    "remote": ("vxlan",),
    "vni": ("vxlan",),
    "port": ("vxlan",),
    "parent": ("vxlan",),
    "network": ("network",),
}
_PORT_WHAT = {
    "dummy": "a dummy interface",
    "host": "a veth into the host's namespace",
    "vxlan": "a VXLAN tunnel",
    "network": "one more port on a bridge network",
}


def _port(
    checker: Checker,
    path: str,
    index: int,
    raw: Any,
    nodes: Mapping[str, Any],
    networks: Mapping[str, Network],
    ends: dict[str, str],
    subnets: list[tuple[Subnet, str]],
    declared: Collection[str],
) -> Port | None:
    """A link of one endpoint: the node's interface, and what is at its far side."""
    kind = raw["type"]
    before = checker.count
    endpoints = raw.get("endpoints")
    if endpoints is None or endpoints is INVALID or INVALID in endpoints:
        return None
    if len(endpoints) != 1:
        checker.error(
            f"{path}.endpoints",
            f"a {kind} link has one endpoint, the node's interface ({_PORT_WHAT[kind]}), "
            "like [r1:eth1]",
        )
        return None
    parsed = _endpoint(checker, f"{path}.endpoints.0", endpoints[0], nodes, networks)
    taken = ends.setdefault(endpoints[0], path)
    if taken != path:
        checker.error(f"{path}.endpoints.0", f"{endpoints[0]} is already an end of {taken}")
    for key, owners in PORT_KEYS.items():
        if key in raw and kind not in owners:
            checker.error(f"{path}.{key}", f"{key} is a key of a link of type {_types(owners)}")
    if "impairments" in raw:
        checker.error(f"{path}.impairments", "impairments are of veth links between two nodes")
    for key in ("host_ifname", "parent"):
        if isinstance(name := raw.get(key), str) and LABMGR_NAME_RE.fullmatch(name):
            checker.error(f"{path}.{key}", f"{name} is a name labmgr keeps for its own links")
    if kind == "vxlan":
        for key in ("remote", "vni"):
            if key not in raw:
                checker.error(f"{path}.{key}", f"a vxlan link needs its {key}")
        remote = raw.get("remote")
        if isinstance(remote, str) and (problem := _remote_problem(remote)):
            checker.error(f"{path}.remote", problem)
    bridge = _bridge(checker, path, raw, networks, declared) if kind == "network" else None
    if kind == "network":
        addresses = {
            family: _network_address(checker, f"{path}.{family}", raw.get(family), bridge)
            for family in ("ipv4", "ipv6")
        }
    else:
        addresses = {
            family: _port_addresses(
                checker, f"{path}.{family}", raw.get(family), kind, subnets, path
            )
            for family in ("ipv4", "ipv6")
        }
    if checker.count > before or parsed is None or INVALID in raw.values():
        return None
    v4, v6 = addresses["ipv4"] or [None, None], addresses["ipv6"] or [None, None]
    node, ifname = parsed
    return Port(
        index=index,
        type=kind,
        end=LinkEnd(node=node, ifname=ifname, ipv4=v4[0], ipv6=v6[0]),
        mtu=raw.get("mtu", bridge.mtu if bridge is not None else 1500),
        host_ifname=raw.get("host_ifname"),
        host_ipv4=v4[1],
        host_ipv6=v6[1],
        remote=raw.get("remote"),
        vni=raw.get("vni"),
        port=raw.get("port", 4789),
        parent=raw.get("parent"),
        network=raw.get("network"),
    )


def _types(owners: tuple[str, ...]) -> str:
    return " or ".join(owners)


def _bridge(
    checker: Checker,
    path: str,
    raw: Mapping[str, Any],
    networks: Mapping[str, Network],
    declared: Collection[str],
) -> Network | None:
    """The bridge network a network link is a port of, or None after an error."""
    name = raw.get("network")
    if name is None:
        checker.error(f"{path}.network", "a network link names the bridge network it joins")
        return None
    if name is INVALID or (name in declared and name not in networks):
        return None
    network = networks.get(name)
    if network is None:
        known = ", ".join(sorted(networks)) or "none yet"
        checker.error(f"{path}.network", f"{name} is not a network of this lab (networks: {known})")
        return None
    if network.driver != "bridge":
        checker.error(
            f"{path}.network",
            f"{name} is a {network.driver} network: a network link is a port of a bridge",
        )
        return None
    return network


def _network_address(
    checker: Checker, path: str, raw: Any, network: Network | None
) -> list[str | None] | None:
    """The node's address on the bridge, with the network's prefix: in its subnet and
    neither its gateway nor its network or broadcast address. Another node's address is
    the addressing rules' to refuse."""
    if raw is None or raw is INVALID or INVALID in raw or network is None:
        return None
    family = "ipv6" if path.endswith("ipv6") else "ipv4"
    if len(raw) == 2:
        checker.error(f"{path}.1", "a network link has one address, the node's interface's")
        return None
    subnet = network.subnet6 if family == "ipv6" else network.subnet
    gateway = network.gateway6 if family == "ipv6" else network.gateway
    given = ipaddress.ip_interface(raw[0])
    if subnet is None:
        checker.error(f"{path}.0", f"{network.name} has no {family} subnet to be in")
        return None
    if given.ip not in ipaddress.ip_network(subnet):
        checker.error(f"{path}.0", f"{given.ip} is not in the subnet of {network.name}, {subnet}")
        return None
    if given.network != ipaddress.ip_network(subnet):
        prefix = ipaddress.ip_network(subnet).prefixlen
        checker.error(
            f"{path}.0",
            f"{given} has another prefix than {network.name}'s {subnet}: {given.ip}/{prefix}",
        )
        return None
    if gateway is not None and given.ip == ipaddress.ip_address(gateway):
        checker.error(f"{path}.0", f"{given.ip} is the gateway of {network.name}")
        return None
    if problem := _host_problem(given):
        checker.error(f"{path}.0", problem)
        return None
    return [str(given), None]


def _remote_problem(remote: str) -> str:
    address = ipaddress.ip_address(remote)
    if address.is_unspecified or address.is_loopback or address.is_multicast:
        return f"{remote} is not the unicast address of a remote tunnel endpoint"
    return ""


def _port_addresses(
    checker: Checker,
    path: str,
    raw: Any,
    kind: str,
    subnets: list[tuple[Subnet, str]],
    link: str,
) -> list[str | None] | None:
    """The node's address and, for a host link, the host side's: one subnet."""
    if raw is None or raw is INVALID or INVALID in raw:
        return None
    if len(raw) == 2 and kind != "host":
        checker.error(f"{path}.1", f"a {kind} link has one address, the node's interface's")
        return None
    given = [ipaddress.ip_interface(a) for a in raw]
    before = checker.count
    if kind != "dummy":  # a dummy's address may be a host route: a loopback address
        for i, interface in enumerate(given):
            if problem := _host_problem(interface):
                checker.error(f"{path}.{i}", problem)
    if len(given) == 2 and checker.count == before:
        first, second = given
        if second.network != first.network:
            checker.error(
                f"{path}.1",
                f"{second} is not in the subnet of the node's end, {first.network}: both "
                "ends of a link are in one subnet",
            )
        elif second.ip == first.ip:
            checker.error(f"{path}.1", f"{second.ip} is already the node's address")
    if checker.count > before:
        return None
    subnets.append((given[0].network, link))
    return [str(given[0]), str(given[1]) if len(given) == 2 else None]
