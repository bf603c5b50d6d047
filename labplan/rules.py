"""Second pass of validation: the rules that relate fields to each other, then the
defaults and automatic choices that turn a checked tree into a `labplan.model.Labfile`.
Network rules live in `labplan.network_rules`; node rules, attachments, routes and
resolution here.

Input is the converted tree of `labplan.structure`, where a value that already failed
is INVALID; rules that depend on such a value are skipped rather than reported twice.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from labplan import addressing
from labplan.drivers import DRIVERS
from labplan.fields import ATTACHMENT, IO_THROTTLE_KEYS, RFC1123_LABEL
from labplan.link_rules import Links, Subnet, check_links
from labplan.model import (
    NAMESPACE_KINDS,
    Attachment,
    IoThrottle,
    Labfile,
    Limits,
    Namespaces,
    Network,
    Node,
    Port,
    Route,
    Shaping,
)
from labplan.mount_rules import check_mounts, mounts_of, volumes_of
from labplan.network_rules import (
    Networks,
    Tree,
    address_problem,
    check_driver_options,
    impairments,
)
from labplan.scenarios import check_scenarios
from labplan.structure import INVALID, Checker
from labplan.vlan_rules import check_vlans


def build_lab(checker: Checker, tree: Tree) -> Labfile | None:
    """The normalised lab, or None when an error was recorded in `checker`."""
    raw_networks = _entries(tree.get("networks", {}))
    raw_nodes = _entries(tree.get("nodes", {}))
    networks = Networks(checker, raw_networks)
    # Without a readable map of networks, every attachment would be "unknown": say nothing.
    networks.known = tree.get("networks") is not INVALID
    check_vlans(checker, networks.valid, raw_nodes)
    links = check_links(
        checker, tree.get("links", ()), raw_nodes, networks.valid, networks.declared
    )
    drafts = [
        draft
        for name, raw in raw_nodes.items()
        if (draft := _NodeDraft.check(checker, name, raw, networks, links)) is not None
    ]
    networks.check_members(_members(drafts))
    _check_joins(checker, raw_nodes, networks, links)
    _check_sysctls(checker, raw_nodes, networks)
    check_mounts(checker, tree.get("volumes", {}), raw_nodes)
    if checker.count or INVALID in (tree.get("name"), tree.get("labfile")):
        return None
    nodes = _resolve(checker, networks.valid, drafts, links)
    if checker.count:
        return None
    lab = Labfile(
        name=tree["name"],
        description=tree.get("description", ""),
        networks=tuple(sorted(networks.valid.values(), key=lambda n: n.name)),
        nodes=tuple(sorted(nodes, key=lambda n: n.name)),
        links=tuple(links.valid),
        ports=tuple(links.ports),
        volumes=volumes_of(tree.get("volumes", {})),
    )
    scenarios = check_scenarios(checker, lab, tree.get("scenarios", {}))
    if checker.count:
        return None
    return replace(lab, scenarios=scenarios) if scenarios else lab


def joined_node(raw: Tree) -> str | None:
    """The node whose network namespace a node joins (`network_mode: container:NODE`)."""
    mode = raw.get("network_mode")
    return mode.removeprefix("container:") if isinstance(mode, str) else None


def _check_joins(
    checker: Checker, raw_nodes: Mapping[str, Any], networks: Networks, links: Links
) -> None:
    """A node that joins another's network namespace has none of its own to attach, route
    or link: it joins a node of this lab that has one (not the host's) and joins no one."""
    linked = {end for link in links.valid for end in (e.node for e in link.ends)}
    linked |= {port.end.node for port in links.ports}
    for name, raw in raw_nodes.items():
        if raw is INVALID or (owner := joined_node(raw)) is None:
            continue
        path = f"nodes.{name}"
        target = raw_nodes.get(owner)
        if owner == name:
            checker.error(f"{path}.network_mode", "a node cannot join its own network namespace")
        elif not isinstance(target, Mapping):
            known = ", ".join(sorted(n for n in raw_nodes if n != name)) or "none"
            checker.error(
                f"{path}.network_mode", f"{owner} is not a node of this lab (nodes: {known})"
            )
        elif (further := joined_node(target)) is not None:
            checker.error(
                f"{path}.network_mode",
                f"{owner} itself joins the network namespace of {further}: join {further}",
            )
        elif any(
            (net := networks.valid.get(n)) is not None and DRIVERS[net.driver].shares_host_netns
            for n in _entries(target.get("networks"))
        ):
            checker.error(
                f"{path}.network_mode",
                f"{owner} is in the host's network namespace; attach {name} to that "
                "network instead",
            )
        elif "host" in raw and raw.get("host") != target.get("host"):
            checker.error(
                f"{path}.host",
                f"{name} joins the network namespace of {owner}, so it runs on {owner}'s host:"
                " give both the same host, or leave this one out",
            )
        for key in ("networks", "routes", "sysctls"):
            if raw.get(key):
                checker.error(
                    f"{path}.{key}",
                    f"{name} joins the network namespace of {owner}, so it has no {key} "
                    f"of its own (give them to {owner})",
                )
        if name in linked:
            checker.error(
                f"{path}.network_mode",
                f"{name} joins the network namespace of {owner}: a link ends on {owner}, "
                f"not on {name}",
            )


SYSCTL_VALUE = re.compile(r"[\x20-\x7e\t]{0,256}")


def _check_sysctls(checker: Checker, raw_nodes: Mapping[str, Any], networks: Networks) -> None:
    """A node's sysctls are its own network namespace's: a node in the host's has none."""
    for name, raw in raw_nodes.items():
        if raw is INVALID or not raw.get("sysctls"):
            continue
        shared = [
            n
            for n in _entries(raw.get("networks"))
            if (net := networks.valid.get(n)) is not None and DRIVERS[net.driver].shares_host_netns
        ]
        for key, value in _entries(raw.get("sysctls")).items():
            if isinstance(value, str) and not SYSCTL_VALUE.fullmatch(value):
                checker.error(
                    f"nodes.{name}.sysctls.{key}",
                    "a sysctl's value is one line of printable text, at most 256 characters",
                )
        if shared:
            checker.error(
                f"nodes.{name}.sysctls",
                f"{name} is on the {shared[0]} network, in the host's network namespace: the "
                "host's sysctls are not a lab's to set",
            )


def _entries(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


# -- nodes --------------------------------------------------------------------------


@dataclass
class _AttachmentDraft:
    network: str
    driver: str
    path: str
    ipv4: str | None = None
    ifname: str | None = None
    mac: str | None = None
    impairments: Shaping | None = None
    ipv6: str | None = None
    vlan: int | None = None
    vlans: tuple[int, ...] = ()


@dataclass
class _NodeDraft:
    """A node whose own fields are valid; attachments still to be resolved."""

    name: str
    raw: Tree
    attachments: list[_AttachmentDraft] = field(default_factory=list)
    routes: tuple[Route, ...] | None = None
    limits: Limits = field(default_factory=Limits)
    namespaces: Namespaces = field(default_factory=Namespaces)

    @classmethod
    def check(
        cls, checker: Checker, name: str, raw: Any, networks: Networks, links: Links
    ) -> _NodeDraft | None:
        if raw is INVALID:
            return None
        path = f"nodes.{name}"
        draft = cls(name, raw)
        before = checker.count
        hostname = raw.get("hostname", name)
        if hostname is not INVALID and hostname != name and not re.match(RFC1123_LABEL, hostname):
            checker.error(
                f"{path}.hostname",
                f'"{hostname}" is not a valid hostname (letters, '
                "digits and inner hyphens, at most 63 characters)",
            )
        _check_image(checker, path, raw)
        draft.namespaces = _namespaces(checker, path, raw)
        draft.limits = _limits(checker, f"{path}.limits", raw.get("limits", {}))
        taken = links.ifnames.get(name, {})
        draft.attachments = _attachments(checker, path, raw.get("networks", {}), networks, taken)
        draft.routes = _routes(
            checker,
            path,
            raw.get("routes"),
            draft.attachments,
            networks,
            links.subnets.get(name, []),
        )
        if checker.count > before or INVALID in raw.values():
            return None
        return draft


def _check_image(checker: Checker, path: str, raw: Tree) -> None:
    """An image instead of a rootfs, never both; an entrypoint only with an image, which
    needs the node's own mount namespace (its tree is mounted there)."""
    if "image" in raw and "rootfs" in raw:
        checker.error(
            f"{path}.rootfs", "a node runs an image or a rootfs, not both: remove one of them"
        )
    if "entrypoint" in raw and "image" not in raw:
        checker.error(
            f"{path}.entrypoint", "only a node of an image has an entrypoint (add image:)"
        )
    namespaces = raw.get("namespaces", {})
    if "image" in raw and isinstance(namespaces, dict) and namespaces.get("mnt") is False:
        checker.error(
            f"{path}.namespaces.mnt",
            "a node of an image needs its mount namespace: its tree is mounted there",
        )


def _namespaces(checker: Checker, path: str, raw: Tree) -> Namespaces:
    privileged = raw.get("privileged", False) is True
    given = raw.get("namespaces", {})
    if given is INVALID:
        return Namespaces()
    values = {kind: given.get(kind, True) for kind in NAMESPACE_KINDS}
    if "user" not in given:
        values["user"] = not privileged
    for kind, on in values.items():
        if on is False and not privileged and kind in given:
            checker.error(
                f"{path}.namespaces.{kind}",
                f"turning the {kind} namespace off needs privileged: true",
            )
    return Namespaces(**{k: v for k, v in values.items() if v is not INVALID})


def _limits(checker: Checker, path: str, raw: Any) -> Limits:
    if raw is INVALID:
        return Limits()
    throttles: list[IoThrottle] = []
    devices: dict[str, int] = {}
    io = raw.get("io", [])
    for i, entry in enumerate(io if io is not INVALID else []):
        if entry is INVALID or INVALID in entry.values() or "device" not in entry:
            continue
        device = entry["device"]
        if not any(key in entry for key in IO_THROTTLE_KEYS):
            checker.error(
                f"{path}.io.{i}",
                f"give at least one of {', '.join(IO_THROTTLE_KEYS)} for device {device}",
            )
        if device in devices:
            checker.error(
                f"{path}.io.{i}.device",
                f"device {device} is already throttled by {path}.io.{devices[device]}",
            )
        devices.setdefault(device, i)
        throttles.append(IoThrottle(**entry))
    if INVALID in raw.values():
        return Limits()
    return Limits(**{k: v for k, v in raw.items() if k != "io"}, io=tuple(throttles))


def _attachments(
    checker: Checker, path: str, raw: Any, networks: Networks, taken: Mapping[str, str]
) -> list[_AttachmentDraft]:
    if raw is INVALID or not networks.known:
        return []
    drafts: list[_AttachmentDraft] = []
    ifnames: dict[str, str] = {}
    for net_name, spec in raw.items():
        att_path = f"{path}.networks.{net_name}"
        if net_name not in networks.declared:
            known = ", ".join(sorted(networks.declared)) or "none yet"
            checker.error(att_path, f"{net_name} is not a network of this lab (networks: {known})")
            continue
        network = networks.valid.get(net_name)
        if network is None or spec is INVALID:
            continue
        check_driver_options(checker, ATTACHMENT, spec, network.driver, att_path)
        given = {k: v for k, v in spec.items() if v is not INVALID}
        if "impairments" in given:
            shaping = impairments(checker, f"{att_path}.impairments", given.pop("impairments"))
            if shaping is not INVALID:
                given["impairments"] = shaping
        draft = _AttachmentDraft(net_name, network.driver, att_path, **given)
        if draft.ipv4 is not None and network.subnet is not None:
            problem = address_problem(draft.ipv4, network.subnet)
            if not problem and draft.ipv4 == network.gateway:
                problem = f"{draft.ipv4} is the gateway of {net_name}"
            if problem:
                checker.error(f"{att_path}.ipv4", problem)
        if draft.ipv6 is not None:
            if network.subnet6 is None:
                checker.error(
                    f"{att_path}.ipv6",
                    f"{net_name} has no IPv6 subnet; add subnet6 to networks.{net_name}",
                )
            elif problem := address_problem(draft.ipv6, network.subnet6):
                checker.error(f"{att_path}.ipv6", problem)
            elif draft.ipv6 == network.gateway6:
                checker.error(f"{att_path}.ipv6", f"{draft.ipv6} is the gateway6 of {net_name}")
        if draft.ifname is not None:
            if draft.ifname in taken:
                checker.error(
                    f"{att_path}.ifname",
                    f"{draft.ifname} is already this node's end of {taken[draft.ifname]}",
                )
            elif draft.ifname in ifnames:
                checker.error(
                    f"{att_path}.ifname",
                    f"{draft.ifname} is already the interface "
                    f"of {ifnames[draft.ifname]} in this node",
                )
            ifnames.setdefault(draft.ifname, net_name)
        drafts.append(draft)
    _check_exclusive(checker, path, drafts)
    return drafts


def _check_exclusive(checker: Checker, path: str, drafts: list[_AttachmentDraft]) -> None:
    """A node on a network of an exclusive driver (host, none) has that one network only."""
    for draft in drafts:
        if DRIVERS[draft.driver].exclusive and len(drafts) > 1:
            others = ", ".join(d.network for d in drafts if d is not draft)
            checker.error(
                f"{path}.networks",
                f"a node on the {draft.driver} network "
                f"{draft.network} attaches to no other network (it also lists "
                f"{others})",
            )
            return


def _routes(
    checker: Checker,
    path: str,
    raw: Any,
    attachments: list[_AttachmentDraft],
    networks: Networks,
    link_subnets: list[tuple[str, Subnet]],
) -> tuple[Route, ...] | None:
    if raw is None or raw is INVALID:
        return None
    host = next((a for a in attachments if DRIVERS[a.driver].shares_host_netns), None)
    if host is not None and raw:
        checker.error(
            f"{path}.routes",
            f"a node on the {host.driver} network {host.network} uses the host's routes; it "
            "cannot have its own",
        )
        return None
    subnets: list[tuple[str, Subnet]] = [
        (a.network, ipaddress.ip_network(subnet))
        for a in attachments
        for subnet in (networks.valid[a.network].subnet, networks.valid[a.network].subnet6)
        if subnet is not None
    ]
    subnets += link_subnets
    routes: list[Route] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(raw):
        if entry is INVALID or INVALID in entry.values() or len(entry) < 2:
            continue
        route = Route(entry["dst"], entry["via"])
        via = ipaddress.ip_address(route.via)
        family = [(name, net) for name, net in subnets if net.version == via.version]
        on = next(((name, net) for name, net in family if via in net), None)
        if ipaddress.ip_network(route.dst).version != via.version:
            checker.error(
                f"{path}.routes.{i}.via",
                f"{route.via} is not of the family of the destination {route.dst}",
            )
        elif on is None:
            attached = ", ".join(f"{n} {s}" for n, s in family) or "none"
            checker.error(
                f"{path}.routes.{i}.via",
                f"{route.via} is not in a subnet this node is attached to ({attached})",
            )
        elif on[0] in networks.valid and (problem := address_problem(route.via, str(on[1]))):
            checker.error(f"{path}.routes.{i}.via", problem)
        if route.dst in seen:
            checker.error(
                f"{path}.routes.{i}.dst",
                f"{route.dst} is already routed by {path}.routes.{seen[route.dst]}",
            )
        seen.setdefault(route.dst, i)
        routes.append(route)
    return tuple(routes)


# -- resolution ---------------------------------------------------------------------


def _resolve(
    checker: Checker, networks: Mapping[str, Network], drafts: list[_NodeDraft], links: Links
) -> list[Node]:
    """Addresses, interface names, MACs and default routes for every node."""
    addresses = _addresses(checker, networks, drafts, links.ports)
    addresses6 = _addresses(checker, networks, drafts, links.ports, "ipv6")
    static_macs = {a.mac: a.path for d in drafts for a in d.attachments if a.mac is not None}
    _check_static_macs(checker, drafts)
    if checker.count:
        return []
    nodes: list[Node] = []
    for draft in drafts:
        addressed = [a for a in draft.attachments if DRIVERS[a.driver].addressed]
        reserved = links.ifnames.get(draft.name, {})
        ifnames = iter(addressing.assign_ifnames([a.ifname for a in addressed], reserved))
        attachments: list[Attachment] = []
        for att in draft.attachments:
            if not DRIVERS[att.driver].addressed:
                attachments.append(Attachment(att.network))
                continue
            ipv4 = addresses[att.network][draft.name]
            ipv6 = addresses6.get(att.network, {}).get(draft.name)
            mac = att.mac
            if mac is None and "mac" in DRIVERS[att.driver].attachment_options:
                mac = addressing.docker_mac(ipv4)
                if mac in static_macs:
                    checker.error(
                        f"{static_macs[mac]}.mac",
                        f"{mac} is also the automatic MAC "
                        f"of nodes.{draft.name} on {att.network}; choose another",
                    )
            attachments.append(
                Attachment(att.network, ipv4, next(ifnames), mac, att.impairments, ipv6=ipv6)
            )
            if att.vlan is not None or att.vlans:
                attachments[-1] = replace(attachments[-1], vlan=att.vlan, vlans=tuple(att.vlans))
        routes = draft.routes
        if routes is None:
            routes = addressing.default_routes(
                (networks[a.network].gateway for a in addressed),
                (networks[a.network].gateway6 for a in addressed),
            )
        nodes.append(_node(draft, tuple(attachments), routes))
    return nodes


def _addresses(
    checker: Checker,
    networks: Mapping[str, Network],
    drafts: list[_NodeDraft],
    ports: Sequence[Port],
    family: str = "ipv4",
) -> dict[str, dict[str, str]]:
    """Node -> `family` address on each network that has a subnet of that family."""
    requests = _requests(checker, networks, drafts, ports, family)
    return {
        name: _assign(checker, networks[name], wanted, family) for name, wanted in requests.items()
    }


def _requests(
    checker: Checker,
    networks: Mapping[str, Network],
    drafts: list[_NodeDraft],
    ports: Sequence[Port],
    family: str,
) -> dict[str, dict[str, str | None]]:
    """Network -> each attached node's static `family` address or None, and each network
    link's (by its path: its address is taken, and it needs no other)."""
    subnet = "subnet6" if family == "ipv6" else "subnet"
    requests: dict[str, dict[str, str | None]] = {
        name: {} for name, net in networks.items() if getattr(net, subnet) is not None
    }
    owners: dict[tuple[str, str], str] = {}  # (network, address) -> "nodes.r1", "links.0"
    for draft in drafts:
        for att in draft.attachments:
            if att.network not in requests or not DRIVERS[att.driver].addressed:
                continue
            wanted = getattr(att, family)
            if wanted is not None:
                owner = owners.setdefault((att.network, wanted), f"nodes.{draft.name}")
                if owner != f"nodes.{draft.name}":
                    checker.error(
                        f"{att.path}.{family}",
                        f"{wanted} is already the address of {owner} on {att.network}",
                    )
            requests[att.network][draft.name] = wanted
    for port in ports:
        given = getattr(port.end, family)
        if port.network not in requests or given is None:
            continue
        path, wanted = f"links.{port.index}", given.split("/")[0]
        owner = owners.setdefault((port.network, wanted), path)
        if owner != path:
            checker.error(
                f"{path}.{family}.0",
                f"{wanted} is already the address of {owner} on {port.network}",
            )
        requests[port.network][path] = wanted
    return requests


def _assign(
    checker: Checker, net: Network, wanted: dict[str, str | None], family: str
) -> dict[str, str]:
    """The addresses of one network's requests; a subnet the nodes fill once its network
    links took their addresses is the first such link's error."""
    try:
        if family == "ipv6":
            return addressing.assign_ipv6(net.subnet6 or "", wanted, net.gateway6)
        return addressing.assign_ipv4(net.subnet or "", net.gateway, wanted)
    except ValueError as error:
        taking = [key for key in wanted if key.startswith("links.")]
        if not taking:
            raise  # the members were counted against the subnet: a bug
        checker.error(f"{taking[0]}.{family}.0", f"{error}, once this link takes its address")
        return {}


def _check_static_macs(checker: Checker, drafts: list[_NodeDraft]) -> None:
    owners: dict[str, str] = {}
    for draft in drafts:
        for att in draft.attachments:
            if att.mac is None:
                continue
            owner = owners.setdefault(att.mac, att.path)
            if owner != att.path:
                checker.error(f"{att.path}.mac", f"{att.mac} is already the MAC of {owner}")


def _node(
    draft: _NodeDraft, attachments: tuple[Attachment, ...], routes: tuple[Route, ...]
) -> Node:
    raw = draft.raw
    image = raw.get("image")
    # An image node leaves what the labfile does not give to the image's config.
    unset = None if image is not None else ()
    command = raw.get("command")
    entrypoint = raw.get("entrypoint")
    return Node(
        name=draft.name,
        hostname=raw.get("hostname", draft.name),
        host=raw.get("host"),
        rootfs=None if image is not None else raw.get("rootfs", "host"),
        command=tuple(command) if command is not None else unset,
        workdir=raw.get("workdir", None if image is not None else "/"),
        image=image,
        entrypoint=tuple(entrypoint) if entrypoint is not None else None,
        user=raw.get("user"),
        exec=tuple(tuple(argv) for argv in raw.get("exec", ())),
        joins=joined_node(raw),
        sysctls=dict(sorted(raw.get("sysctls", {}).items())),
        mounts=mounts_of(raw),
        environment=dict(sorted(raw.get("environment", {}).items())),
        limits=draft.limits,
        namespaces=draft.namespaces,
        privileged=raw.get("privileged", False),
        networks=attachments,
        routes=routes,
    )


def _members(drafts: list[_NodeDraft]) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {}
    for draft in drafts:
        for attachment in draft.attachments:
            members.setdefault(attachment.network, []).append(draft.name)
    return members
