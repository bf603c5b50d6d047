"""Second pass of validation: the rules that relate fields to each other (driver options,
subnets, addresses, parents, exclusive networks, routes, privileges), then the defaults
and automatic choices that turn a checked tree into a `labplan.model.Labfile`.

Input is the converted tree of `labplan.structure`, where a value that already failed
is INVALID; rules that depend on such a value are skipped rather than reported twice.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from labplan import addressing
from labplan.fields import (
    ATTACHMENT,
    GATEWAYED,
    IO_THROTTLE_KEYS,
    NETWORK,
    RFC1123_LABEL,
    VLAN_DRIVERS,
    ObjectSpec,
)
from labplan.model import (
    ADDRESSED_DRIVERS,
    HOST_PARENT_PREFIX,
    IPVLAN_MODES,
    MACVLAN_MODES,
    NAMESPACE_KINDS,
    Attachment,
    Driver,
    IoThrottle,
    Labfile,
    Limits,
    Namespaces,
    Network,
    Node,
    Route,
    Shaping,
)
from labplan.structure import INVALID, Checker

Tree = Mapping[str, Any]


def build_lab(checker: Checker, tree: Tree) -> Labfile | None:
    """The normalised lab, or None when an error was recorded in `checker`."""
    raw_networks = _entries(tree.get("networks", {}))
    raw_nodes = _entries(tree.get("nodes", {}))
    networks = _Networks(checker, raw_networks)
    # Without a readable map of networks, every attachment would be "unknown": say nothing.
    networks.known = tree.get("networks") is not INVALID
    drafts = [
        draft
        for name, raw in raw_nodes.items()
        if (draft := _NodeDraft.check(checker, name, raw, networks)) is not None
    ]
    networks.check_members(drafts)
    if checker.count or INVALID in (tree.get("name"), tree.get("labfile")):
        return None
    nodes = _resolve(checker, networks.valid, drafts)
    if checker.count:
        return None
    return Labfile(
        name=tree["name"],
        description=tree.get("description", ""),
        networks=tuple(sorted(networks.valid.values(), key=lambda n: n.name)),
        nodes=tuple(sorted(nodes, key=lambda n: n.name)),
    )


def _entries(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _check_driver_options(
    checker: Checker, spec: ObjectSpec, raw: Tree, driver: str, path: str
) -> None:
    for key in raw:
        option = spec.get(key)
        if option is not None and option.drivers is not None and driver not in option.drivers:
            checker.error(f"{path}.{key}", f"{key} is not an option of the {driver} driver")


# -- networks -----------------------------------------------------------------------


class _Networks:
    """Every network of the lab: the valid ones built, the names of all of them known."""

    def __init__(self, checker: Checker, raw: dict[str, Any]) -> None:
        self.checker = checker
        self.known = True
        self.declared = set(raw)
        self.valid: dict[str, Network] = {}
        for name, spec in raw.items():
            network = self._network(name, spec) if spec is not INVALID else None
            if network is not None:
                self.valid[name] = network
        self._check_parents(raw)
        self._check_overlaps(list(raw))
        self._check_vnis()

    def _network(self, name: str, raw: Tree) -> Network | None:
        path = f"networks.{name}"
        driver = raw.get("driver", "bridge")
        if driver is INVALID:
            return None
        _check_driver_options(self.checker, NETWORK, raw, driver, path)
        subnet = raw.get("subnet")
        if driver in ADDRESSED_DRIVERS and subnet is None:
            self.checker.error(
                f"{path}.subnet",
                f"{_a(driver)} network needs a subnet (an IPv4 CIDR like 10.10.0.0/24)",
            )
        if driver in VLAN_DRIVERS and "parent" not in raw:
            self.checker.error(
                f"{path}.parent",
                f"{_a(driver)} network needs a parent: a bridge network of this lab or host:IFNAME",
            )
        mode = raw.get("mode", NETWORK.get("mode").default_for(driver))  # type: ignore[union-attr]
        if driver in VLAN_DRIVERS and mode is not INVALID and mode not in _modes(driver):
            self.checker.error(
                f"{path}.mode",
                f"{mode} is not {_a(driver)} mode (choose {', '.join(_modes(driver))})",
            )
            return None
        gateway = self._gateway(path, driver, subnet, raw.get("gateway"))
        shaping = _shaping(self.checker, f"{path}.shaping", raw.get("shaping"))
        values = [subnet, gateway, shaping, *raw.values()]
        if INVALID in values:
            return None
        return Network(
            name=name,
            driver=cast(Driver, driver),
            subnet=subnet,
            gateway=gateway if driver in GATEWAYED else None,
            internal=raw.get("internal", False),
            mtu=raw.get("mtu", NETWORK.get("mtu").default_for(driver)),  # type: ignore[union-attr]
            shaping=shaping if driver in ADDRESSED_DRIVERS else None,
            parent=raw.get("parent"),
            mode=mode if driver in VLAN_DRIVERS else None,
            vni=raw.get("vni"),
        )

    def _gateway(self, path: str, driver: str, subnet: Any, given: Any) -> Any:
        if driver not in GATEWAYED or subnet in (None, INVALID) or given is INVALID:
            return None
        if given is None:
            return addressing.default_gateway(subnet)
        if given == "none":
            return None
        problem = _address_problem(given, subnet)
        if problem:
            self.checker.error(f"{path}.gateway", problem)
            return INVALID
        return given

    def _check_parents(self, raw: dict[str, Any]) -> None:
        for name, network in self.valid.items():
            parent = network.parent
            if parent is None or parent.startswith(HOST_PARENT_PREFIX):
                continue
            path = f"networks.{name}.parent"
            if parent not in self.declared:
                self.checker.error(
                    path,
                    f"{parent} is not a network of this lab (a parent is "
                    "a bridge network of this lab or host:IFNAME)",
                )
            elif parent in self.valid and self.valid[parent].driver != "bridge":
                driver = self.valid[parent].driver
                self.checker.error(
                    path,
                    f"{parent} is {_a(driver)} network; a parent must be a "
                    "bridge network of this lab or host:IFNAME",
                )

    def _check_overlaps(self, order: list[str]) -> None:
        position = {name: i for i, name in enumerate(order)}
        subnets = sorted(
            (ipaddress.IPv4Network(n.subnet), position[n.name], n.name)
            for n in self.valid.values()
            if n.subnet is not None
        )
        widest: tuple[ipaddress.IPv4Network, int, str] | None = None
        for current in subnets:
            if widest is not None and current[0].network_address <= widest[0].broadcast_address:
                later, earlier = sorted((current, widest), key=lambda t: t[1], reverse=True)
                self.checker.error(
                    f"networks.{later[2]}.subnet",
                    f"{later[0]} overlaps the subnet of {earlier[2]} ({earlier[0]})",
                )
            if widest is None or current[0].broadcast_address > widest[0].broadcast_address:
                widest = current

    def _check_vnis(self) -> None:
        seen: dict[int, str] = {}
        for name, network in self.valid.items():
            if network.vni is None:
                continue
            if network.vni in seen:
                self.checker.error(
                    f"networks.{name}.vni",
                    f"VNI {network.vni} is already used by {seen[network.vni]}",
                )
            seen.setdefault(network.vni, name)

    def check_members(self, drafts: list[_NodeDraft]) -> None:
        """Rules about how many nodes a network takes."""
        members: dict[str, list[str]] = {}
        for draft in drafts:
            for attachment in draft.attachments:
                members.setdefault(attachment.network, []).append(draft.name)
        for name, network in self.valid.items():
            nodes = members.get(name, [])
            if network.subnet is not None:
                room = addressing.capacity(network.subnet, network.gateway)
                if len(nodes) > room:
                    addresses = "address" if room == 1 else "addresses"
                    self.checker.error(
                        f"networks.{name}.subnet",
                        f"{network.subnet} has room for {room} node {addresses} but "
                        f"{len(nodes)} nodes attach to {name}",
                    )
            if network.mode == "passthru" and len(nodes) > 1:
                self.checker.error(
                    f"networks.{name}.mode",
                    "a passthru macvlan network takes "
                    f"at most one node; {len(nodes)} attach to it "
                    f"({', '.join(sorted(nodes))})",
                )


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _modes(driver: str) -> tuple[str, ...]:
    return MACVLAN_MODES if driver == "macvlan" else IPVLAN_MODES


def _shaping(checker: Checker, path: str, raw: Any) -> Any:
    if raw is None or raw is INVALID:
        return raw
    if "jitter" in raw and "delay" not in raw:
        checker.error(f"{path}.jitter", "jitter needs a delay (add delay, like 20ms)")
        return INVALID
    if INVALID in raw.values():
        return INVALID
    return Shaping(**raw) if raw else None


def _address_problem(address: str, subnet: str) -> str:
    """Why `address` cannot be a host of `subnet`, or "" if it can."""
    network = ipaddress.IPv4Network(subnet)
    ip = ipaddress.IPv4Address(address)
    if ip not in network:
        return f"{address} is not in the subnet {subnet}"
    if ip == network.network_address:
        return f"{address} is the network address of {subnet}"
    if ip == network.broadcast_address:
        return f"{address} is the broadcast address of {subnet}"
    return ""


# -- nodes --------------------------------------------------------------------------


@dataclass
class _AttachmentDraft:
    network: str
    driver: str
    path: str
    ipv4: str | None = None
    ifname: str | None = None
    mac: str | None = None


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
    def check(cls, checker: Checker, name: str, raw: Any, networks: _Networks) -> _NodeDraft | None:
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
        draft.namespaces = _namespaces(checker, path, raw)
        draft.limits = _limits(checker, f"{path}.limits", raw.get("limits", {}))
        draft.attachments = _attachments(checker, path, raw.get("networks", {}), networks)
        draft.routes = _routes(checker, path, raw.get("routes"), draft.attachments, networks)
        if checker.count > before or INVALID in raw.values():
            return None
        return draft


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
    checker: Checker, path: str, raw: Any, networks: _Networks
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
        _check_driver_options(checker, ATTACHMENT, spec, network.driver, att_path)
        given = {k: v for k, v in spec.items() if v is not INVALID}
        draft = _AttachmentDraft(net_name, network.driver, att_path, **given)
        if draft.ipv4 is not None and network.subnet is not None:
            problem = _address_problem(draft.ipv4, network.subnet)
            if not problem and draft.ipv4 == network.gateway:
                problem = f"{draft.ipv4} is the gateway of {net_name}"
            if problem:
                checker.error(f"{att_path}.ipv4", problem)
        if draft.ifname is not None:
            if draft.ifname in ifnames:
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
    """A node on a host or none network has that one network only."""
    for draft in drafts:
        if draft.driver in ("host", "none") and len(drafts) > 1:
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
    networks: _Networks,
) -> tuple[Route, ...] | None:
    if raw is None or raw is INVALID:
        return None
    host = next((a.network for a in attachments if a.driver == "host"), None)
    if host is not None and raw:
        checker.error(
            f"{path}.routes",
            f"a node on the host network {host} uses the host's routes; it cannot have its own",
        )
        return None
    subnets = [
        (a.network, ipaddress.IPv4Network(subnet))
        for a in attachments
        if (subnet := networks.valid[a.network].subnet) is not None
    ]
    routes: list[Route] = []
    seen: dict[str, int] = {}
    for i, entry in enumerate(raw):
        if entry is INVALID or INVALID in entry.values() or len(entry) < 2:
            continue
        route = Route(entry["dst"], entry["via"])
        via = ipaddress.IPv4Address(route.via)
        on = next((name for name, net in subnets if via in net), None)
        if on is None:
            attached = ", ".join(f"{n} {s}" for n, s in subnets) or "none"
            checker.error(
                f"{path}.routes.{i}.via",
                f"{route.via} is not in a subnet this node is attached to ({attached})",
            )
        elif problem := _address_problem(route.via, networks.valid[on].subnet or ""):
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
    checker: Checker, networks: Mapping[str, Network], drafts: list[_NodeDraft]
) -> list[Node]:
    """Addresses, interface names, MACs and default routes for every node."""
    addresses = _addresses(checker, networks, drafts)
    static_macs = {a.mac: a.path for d in drafts for a in d.attachments if a.mac is not None}
    _check_static_macs(checker, drafts)
    if checker.count:
        return []
    nodes: list[Node] = []
    for draft in drafts:
        addressed = [a for a in draft.attachments if a.driver in ADDRESSED_DRIVERS]
        ifnames = iter(addressing.assign_ifnames([a.ifname for a in addressed]))
        attachments: list[Attachment] = []
        for att in draft.attachments:
            if att.driver not in ADDRESSED_DRIVERS:
                attachments.append(Attachment(att.network))
                continue
            ipv4 = addresses[att.network][draft.name]
            mac = att.mac
            if mac is None and att.driver != "ipvlan":
                mac = addressing.docker_mac(ipv4)
                if mac in static_macs:
                    checker.error(
                        f"{static_macs[mac]}.mac",
                        f"{mac} is also the automatic MAC "
                        f"of nodes.{draft.name} on {att.network}; choose another",
                    )
            attachments.append(Attachment(att.network, ipv4, next(ifnames), mac))
        routes = draft.routes
        if routes is None:
            routes = addressing.default_routes(networks[a.network].gateway for a in addressed)
        nodes.append(_node(draft, tuple(attachments), routes))
    return nodes


def _addresses(
    checker: Checker, networks: Mapping[str, Network], drafts: list[_NodeDraft]
) -> dict[str, dict[str, str]]:
    requests: dict[str, dict[str, str | None]] = {name: {} for name in networks}
    owners: dict[tuple[str, str], str] = {}
    for draft in drafts:
        for att in draft.attachments:
            if att.driver not in ADDRESSED_DRIVERS:
                continue
            if att.ipv4 is not None:
                owner = owners.setdefault((att.network, att.ipv4), draft.name)
                if owner != draft.name:
                    checker.error(
                        f"{att.path}.ipv4",
                        f"{att.ipv4} is already the address of nodes.{owner} on {att.network}",
                    )
            requests[att.network][draft.name] = att.ipv4
    return {
        name: addressing.assign_ipv4(net.subnet or "", net.gateway, requests[name])
        for name, net in networks.items()
        if net.subnet is not None
    }


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
    return Node(
        name=draft.name,
        hostname=raw.get("hostname", draft.name),
        host=raw.get("host"),
        rootfs=raw.get("rootfs", "host"),
        command=tuple(raw.get("command", ())),
        workdir=raw.get("workdir", "/"),
        environment=dict(sorted(raw.get("environment", {}).items())),
        limits=draft.limits,
        namespaces=draft.namespaces,
        privileged=raw.get("privileged", False),
        networks=attachments,
        routes=routes,
    )
