"""What a labfile leaves out and labmgr decides: node addresses, interface names, MACs,
gateways and default routes. Every choice depends only on the labfile's content (never on
the order of keys in the file), so the same lab always gets the same addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence

from labplan.model import Route

DEFAULT_DST = "0.0.0.0/0"
DEFAULT_DST6 = "::/0"


def default_gateway(subnet: str) -> str:
    """The first host address of `subnet`."""
    return str(ipaddress.IPv4Network(subnet).network_address + 1)


def capacity(subnet: str, gateway: str | None) -> int:
    """How many node addresses `subnet` holds besides its gateway."""
    hosts = ipaddress.IPv4Network(subnet).num_addresses - 2
    return hosts - (1 if gateway is not None else 0)


def assign_ipv4(
    subnet: str, gateway: str | None, requests: Mapping[str, str | None]
) -> dict[str, str]:
    """Node name -> address on one network.

    `requests` maps every attached node to its static address or None. Nodes without one
    get, in sorted-name order, the lowest host address that is neither the gateway nor
    any static address. The caller has checked `capacity`; running out is a bug.
    """
    network = ipaddress.IPv4Network(subnet)
    taken = {ipaddress.IPv4Address(a) for a in requests.values() if a is not None}
    if gateway is not None:
        taken.add(ipaddress.IPv4Address(gateway))
    result = {node: ip for node, ip in requests.items() if ip is not None}
    candidate = network.network_address + 1
    last = network.broadcast_address - 1
    for node in sorted(n for n, ip in requests.items() if ip is None):
        while candidate in taken:
            candidate += 1
        if candidate > last:
            raise ValueError(f"{subnet} has no free address left for {node}")
        result[node] = str(candidate)
        candidate += 1
    return result


def capacity6(subnet6: str, gateway6: str | None) -> int:
    """How many node addresses `subnet6` holds: all but the subnet-router anycast one and
    the first host (kept free for a gateway), and a gateway6 elsewhere."""
    network = ipaddress.IPv6Network(subnet6)
    elsewhere = gateway6 is not None and ipaddress.IPv6Address(gateway6) != network[1]
    return network.num_addresses - 2 - int(elsewhere)


def assign_ipv6(
    subnet6: str, requests: Mapping[str, str | None], gateway6: str | None = None
) -> dict[str, str]:
    """Node name -> IPv6 address on one network: the static ones kept, the others, in
    sorted-name order, the lowest addresses from the second host on (the first stays
    free, as a gateway's would be) that neither the gateway6 nor a static address takes."""
    network = ipaddress.IPv6Network(subnet6)
    taken = {ipaddress.IPv6Address(a) for a in requests.values() if a is not None}
    if gateway6 is not None:
        taken.add(ipaddress.IPv6Address(gateway6))
    result = {node: ip for node, ip in requests.items() if ip is not None}
    candidate = network.network_address + 2
    for node in sorted(n for n, ip in requests.items() if ip is None):
        while candidate in taken:
            candidate += 1
        if candidate > network.broadcast_address:
            raise ValueError(f"{subnet6} has no free address left for {node}")
        result[node] = str(candidate)
        candidate += 1
    return result


def assign_ifnames(given: Sequence[str | None], reserved: Iterable[str] = ()) -> list[str]:
    """Interface names for a node's attachments, in its order: the given ones kept, the
    others eth0, eth1, ... skipping names the node already uses (`reserved`: those its
    links take)."""
    used = {name for name in given if name is not None} | set(reserved)
    result: list[str] = []
    counter = 0
    for name in given:
        if name is None:
            while f"eth{counter}" in used:
                counter += 1
            name = f"eth{counter}"
            used.add(name)
        result.append(name)
    return result


def docker_mac(ipv4: str) -> str:
    """Docker's scheme: 02:42 followed by the four bytes of the address."""
    packed = ipaddress.IPv4Address(ipv4).packed
    return ":".join(f"{b:02x}" for b in b"\x02\x42" + packed)


def default_routes(
    gateways: Iterable[str | None], gateways6: Iterable[str | None] = ()
) -> tuple[Route, ...]:
    """A default route via the first gateway, in the node's network order, and an IPv6
    one via the first gateway6; none for a family no attached network has a gateway of."""
    routes = []
    for dst, candidates in ((DEFAULT_DST, gateways), (DEFAULT_DST6, gateways6)):
        first = next((g for g in candidates if g is not None), None)
        if first is not None:
            routes.append(Route(dst, first))
    return tuple(routes)
