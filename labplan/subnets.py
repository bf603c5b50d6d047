"""Where lab subnets may lie: inside the admin's pool, outside the ranges no lab may use,
and, for the subnets a host routes, clear of that host's own routes and addresses and of
the other labs it routes. Pure: the pool, the host's routes and the other labs' subnets
are arguments; the control plane checks at save and deploy, the agent again before it
builds anything.

A network is *routed* on a host when the host holds an address on one of the lab's links
(the gateway its driver puts on a bridge of the lab): the host then has a route into the
lab, which must not shadow one of its own. It is read from the compiled plan, so it is
true of every driver. Networks without one (`gateway: none`, children of a parent link,
`none`) may reuse any subnet of the pool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network, ip_interface, ip_network

from labplan.errors import FieldError
from labplan.model import HOST_PARENT_PREFIX, Labfile
from labplan.ops import AddAddress, HostPlan

DEFAULT_POOL = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"  # RFC 1918
# The widest subnet the host may route into a lab: no wider than the widest private block.
MIN_ROUTED_PREFIX = 8
# Ranges no lab subnet may overlap, whatever the pool: packets to them mean something else.
RESERVED: tuple[tuple[IPv4Network, str], ...] = (
    (IPv4Network("0.0.0.0/8"), "'this network' 0.0.0.0/8"),
    (IPv4Network("127.0.0.0/8"), "loopback 127.0.0.0/8"),
    (IPv4Network("169.254.0.0/16"), "link-local 169.254.0.0/16 (cloud metadata lives there)"),
    (IPv4Network("224.0.0.0/4"), "multicast 224.0.0.0/4"),
    (IPv4Network("240.0.0.0/4"), "reserved 240.0.0.0/4"),
)
# A host routes into a lab only IPv6 of its own kind: unique local addresses, NATed out,
# no wider than a site's /48.
UNIQUE_LOCAL = IPv6Network("fc00::/7")
MIN_ROUTED_PREFIX6 = 48

IPNetwork = IPv4Network | IPv6Network


@dataclass(frozen=True)
class HostRoute:
    """A route of a host: its destination, the link it leaves by ("" for none or several)
    and its gateway ("" for a network the host is on)."""

    dst: str  # CIDR
    dev: str
    via: str = ""


@dataclass(frozen=True)
class HostAddress:
    """An address a host holds, with its prefix, on a link."""

    address: str  # "192.0.2.2/24"
    dev: str


def parse_pool(text: str) -> tuple[IPv4Network, ...]:
    """The pool an admin wrote as comma-separated IPv4 CIDRs; ValueError says what is wrong."""
    blocks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            blocks.append(IPv4Network(item))
        except ValueError:
            raise ValueError(f"{item!r} is not an IPv4 network like 10.0.0.0/8") from None
    if not blocks:
        raise ValueError("the pool is empty: give at least one IPv4 network")
    return tuple(blocks)


def reserved_problem(subnet: IPv4Network) -> str:
    """Why no lab may use `subnet`, or "" when it may."""
    for block, what in RESERVED:
        if subnet.overlaps(block):
            return f"{subnet} overlaps {what}, which no lab subnet may use"
    return ""


def routed_problem(subnet: IPNetwork) -> str:
    """Why a host must not route `subnet` into a lab, or "" when it may."""
    if isinstance(subnet, IPv6Network):
        if not subnet.subnet_of(UNIQUE_LOCAL):
            return f"{subnet} is not a unique local IPv6 subnet (inside {UNIQUE_LOCAL})"
        if subnet.prefixlen < MIN_ROUTED_PREFIX6:
            return f"{subnet} is wider than a /{MIN_ROUTED_PREFIX6}"
        return ""
    if subnet.prefixlen < MIN_ROUTED_PREFIX:
        return f"{subnet} is wider than a /{MIN_ROUTED_PREFIX}"
    return reserved_problem(subnet)


def pool_errors(lab: Labfile, pool: Sequence[IPv4Network]) -> list[FieldError]:
    """Each subnet of `lab` that lies outside the pool or overlaps a reserved range.

    A network whose parent is a host interface (an admin's) takes the subnet of the LAN
    that interface is on, which is not labmgr's to allocate: only reserved ranges apply.
    """
    errors = []
    for network in lab.networks:
        if network.subnet is None:
            continue
        subnet = IPv4Network(network.subnet)
        path = f"networks.{network.name}.subnet"
        if problem := reserved_problem(subnet):
            errors.append(FieldError(path, problem))
            continue
        on_host_link = (network.parent or "").startswith(HOST_PARENT_PREFIX)
        if not on_host_link and not any(subnet.subnet_of(block) for block in pool):
            allowed = ", ".join(str(block) for block in pool)
            errors.append(
                FieldError(
                    path,
                    f"{subnet} is outside the lab subnet pool ({allowed}); choose a subnet "
                    "inside it",
                )
            )
    return errors


def routed_subnets(plan: HostPlan) -> tuple[IPNetwork, ...]:
    """The subnets `plan` routes on its host, IPv4 and IPv6: those of the addresses it
    puts on host-side links, in plan order."""
    found: dict[IPNetwork, None] = {}
    for op in plan.ops:
        if isinstance(op, AddAddress) and op.netns is None:
            found[ip_interface(op.address).network] = None
    return tuple(found)


def routed_subnets_of_dict(plan: Mapping[str, object], host: str) -> tuple[IPNetwork, ...]:
    """`routed_subnets` of a host's part of a plan in its JSON form, read without decoding
    the whole plan: for plans labmgr itself stored (the database, an agent's journal)."""
    found: dict[IPNetwork, None] = {}
    hosts = plan.get("hosts")
    for part in hosts if isinstance(hosts, list) else ():
        if not isinstance(part, Mapping) or part.get("host") != host:
            continue
        ops = part.get("ops")
        for op in ops if isinstance(ops, list) else ():
            if (
                isinstance(op, Mapping)
                and op.get("op") == "add_address"
                and op.get("netns") is None
            ):
                try:
                    found[ip_interface(str(op.get("address"))).network] = None
                except ValueError:
                    continue
    return tuple(found)


def host_conflict(
    subnet: IPNetwork, routes: Iterable[HostRoute], addresses: Iterable[HostAddress]
) -> str:
    """What of the host's own a routed lab `subnet` would shadow, or "" for nothing: a
    route of its family other than the default one, or an address (with its prefix) of a
    host link."""
    for route in routes:
        dst = ip_network(route.dst, strict=False)
        if dst.version == subnet.version and dst.prefixlen and subnet.overlaps(dst):
            via = f" (dev {route.dev})" if route.dev else ""
            return f"{subnet} overlaps the host's route {dst}{via}"
    for held in addresses:
        network = ip_interface(held.address).network
        if network.version == subnet.version and subnet.overlaps(network):
            return f"{subnet} overlaps the host's address {held.address} (dev {held.dev})"
    return ""


def overlapping(subnet: IPNetwork, others: Iterable[IPNetwork]) -> IPNetwork | None:
    """The first of `others` (of its family) that `subnet` overlaps, if any."""
    return next(
        (o for o in others if o.version == subnet.version and subnet.overlaps(o)),
        None,
    )


def routes_from(data: object) -> list[HostRoute]:
    """A host's reported routes (its facts' "routes"), IPv4 and IPv6, as HostRoute;
    entries that do not parse are left out."""
    return [
        HostRoute(str(item["dst"]), str(item.get("dev") or ""), str(item.get("via") or ""))
        for item in _items(data, "dst")
        if _parses(lambda text: ip_network(text, strict=False), item["dst"])
    ]


def addresses_from(data: object) -> list[HostAddress]:
    """A host's reported addresses (its facts' "addresses") as HostAddress."""
    return [
        HostAddress(str(item["address"]), str(item.get("dev") or ""))
        for item in _items(data, "address")
        if _parses(ip_interface, item["address"])
    ]


def _items(data: object, key: str) -> list[Mapping[str, object]]:
    if not isinstance(data, list):
        return []
    return [item for item in data if isinstance(item, Mapping) and isinstance(item.get(key), str)]


def _parses(kind: Callable[[str], object], value: object) -> bool:
    try:
        kind(str(value))
    except ValueError:
        return False
    return True
