"""Validation rules about networks: driver options, subnets and their overlaps, gateways,
parents, modes, VNIs and how many nodes a network takes. Used by `labplan.rules`. Which
driver takes, needs and defaults what is the driver's (`labplan.drivers`); the rules
only a driver has are its own `member_errors`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, cast

from labplan import addressing, subnets
from labplan.drivers import DRIVERS, article, listed, taking
from labplan.fields import NETWORK, ObjectSpec
from labplan.model import HOST_PARENT_PREFIX, DriverName, Network, Shaping
from labplan.structure import INVALID, Checker

Tree = Mapping[str, Any]
# What a network of a driver that needs the option lacks, for the message.
_NEEDS = {
    "subnet": "a subnet (an IPv4 CIDR like 10.10.0.0/24)",
    "parent": "a parent: a bridge network of this lab or host:IFNAME",
    "id": "an id: its 802.1Q VLAN id, 1..4094",
}


def check_driver_options(
    checker: Checker, spec: ObjectSpec, raw: Tree, driver: str, path: str
) -> None:
    for key in raw:
        option = spec.get(key)
        if option is not None and option.drivers is not None and driver not in option.drivers:
            checker.error(f"{path}.{key}", f"{key} is not an option of the {driver} driver")


class Networks:
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
        check_driver_options(self.checker, NETWORK, raw, driver, path)
        rules = DRIVERS[driver]
        for option in rules.required:
            if option not in raw:
                self.checker.error(
                    f"{path}.{option}", f"{article(driver)} network needs {_NEEDS[option]}"
                )
        subnet = raw.get("subnet")
        mode = raw.get("mode", NETWORK.get("mode").default_for(driver))  # type: ignore[union-attr]
        if rules.modes and mode is not INVALID and mode not in rules.modes:
            self.checker.error(
                f"{path}.mode",
                f"{mode} is not {article(driver)} mode (choose {', '.join(rules.modes)})",
            )
            return None
        gateway = (
            self._gateway(path, subnet, raw.get("gateway")) if "gateway" in rules.options else None
        )
        gateway6 = (
            self._gateway6(path, raw.get("subnet6"), raw.get("gateway6"))
            if "gateway6" in rules.options
            else None
        )
        shaping = self._impairments(path, raw)
        values = [subnet, gateway, gateway6, shaping, *raw.values()]
        if INVALID in values:
            return None
        return Network(
            name=name,
            driver=cast(DriverName, driver),
            subnet=subnet,
            gateway=gateway,
            internal=raw.get("internal", False),
            mtu=raw.get("mtu", NETWORK.get("mtu").default_for(driver)),  # type: ignore[union-attr]
            shaping=shaping if "shaping" in rules.options else None,
            parent=raw.get("parent"),
            mode=mode if rules.modes else None,
            vni=raw.get("vni"),
            vlan_filtering=raw.get("vlan_filtering", False),
            vlan_id=raw.get("id"),
            subnet6=raw.get("subnet6"),
            gateway6=gateway6,
        )

    def _impairments(self, path: str, raw: Tree) -> Any:
        """`impairments`, or labfile 1's `shaping`: one of them."""
        if "impairments" in raw and "shaping" in raw:
            self.checker.error(
                f"{path}.shaping",
                "shaping is labfile 1's name of impairments: give one of them, not both",
            )
            return INVALID
        key = "impairments" if "impairments" in raw else "shaping"
        return impairments(self.checker, f"{path}.{key}", raw.get(key))

    def _gateway(self, path: str, subnet: Any, given: Any) -> Any:
        if subnet in (None, INVALID) or given is INVALID:
            return None
        if given is None:
            return addressing.default_gateway(subnet)
        if given == "none":
            return None
        problem = address_problem(given, subnet)
        if problem:
            self.checker.error(f"{path}.gateway", problem)
            return INVALID
        return given

    def _gateway6(self, path: str, subnet6: Any, given: Any) -> Any:
        if given is None or given is INVALID or subnet6 is INVALID:
            return given
        if subnet6 is None:
            self.checker.error(
                f"{path}.gateway6", "a gateway6 needs a subnet6 to be in (add subnet6 here)"
            )
            return INVALID
        problem = address_problem(given, subnet6)
        if not problem and (routed := subnets.routed_problem(ipaddress.IPv6Network(subnet6))):
            problem = (
                f"{routed}, so no host routes it into a lab (choose a subnet6 like "
                "fd00:10::/64, or leave gateway6 out)"
            )
        if problem:
            self.checker.error(f"{path}.gateway6", problem)
            return INVALID
        return given

    def _check_parents(self, raw: dict[str, Any]) -> None:
        # A link carries the children of one driver only: the kernel gives a link one
        # receive handler, and each driver needs its own.
        first_child: dict[str, tuple[str, str]] = {}  # parent -> (driver, network)
        for name in sorted(self.valid):
            network = self.valid[name]
            if network.parent is None:
                continue
            driver, other = first_child.setdefault(network.parent, (network.driver, name))
            if driver != network.driver:
                self.checker.error(
                    f"networks.{name}.parent",
                    f"{network.parent} is already the parent of {driver} network {other}; "
                    f"one link can carry {listed(taking('parent'), 'or')} children, one kind only",
                )
            elif DRIVERS[driver].children_share_mode and self.valid[other].mode != network.mode:
                # The mode belongs to the parent link: the last child would set it for all.
                self.checker.error(
                    f"networks.{name}.mode",
                    f"{driver} network {other} on the same parent {network.parent} is in "
                    f"{self.valid[other].mode} mode; {driver} networks sharing a parent share "
                    "one mode (give this one a parent of its own)",
                )
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
            elif parent in self.valid and not DRIVERS[self.valid[parent].driver].carries_children:
                driver = self.valid[parent].driver
                self.checker.error(
                    path,
                    f"{parent} is {article(driver)} network; a parent must be a "
                    "bridge network of this lab or host:IFNAME",
                )

    def _check_overlaps(self, order: list[str]) -> None:
        position = {name: i for i, name in enumerate(order)}
        for key in ("subnet", "subnet6"):
            subnets = sorted(
                (
                    int((net := ipaddress.ip_network(getattr(n, key))).network_address),
                    int(net.broadcast_address),
                    position[n.name],
                    n.name,
                    net,
                )
                for n in self.valid.values()
                if getattr(n, key) is not None
            )
            widest: tuple[int, int, int, str, Any] | None = None
            for current in subnets:
                if widest is not None and current[0] <= widest[1]:
                    later, earlier = sorted((current, widest), key=lambda t: t[2], reverse=True)
                    self.checker.error(
                        f"networks.{later[3]}.{key}",
                        f"{later[4]} overlaps the {key} of {earlier[3]} ({earlier[4]})",
                    )
                if widest is None or current[1] > widest[1]:
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

    def check_members(self, members: Mapping[str, list[str]]) -> None:
        """Rules about how many nodes a network takes (`members`: network -> node names)."""
        for name, network in self.valid.items():
            nodes = members.get(name, [])
            if network.subnet6 is not None:
                room6 = addressing.capacity6(network.subnet6, network.gateway6)
                if len(nodes) > room6:
                    self.checker.error(
                        f"networks.{name}.subnet6",
                        f"{network.subnet6} has room for {room6} node addresses but "
                        f"{len(nodes)} nodes attach to {name}",
                    )
            if network.subnet is not None:
                room = addressing.capacity(network.subnet, network.gateway)
                if len(nodes) > room:
                    addresses = "address" if room == 1 else "addresses"
                    self.checker.error(
                        f"networks.{name}.subnet",
                        f"{network.subnet} has room for {room} node {addresses} but "
                        f"{len(nodes)} nodes attach to {name}",
                    )
            for error in DRIVERS[network.driver].member_errors(network, nodes):
                self.checker.error(error.path, error.message)


def impairments(checker: Checker, path: str, raw: Any) -> Any:
    """The checked impairments object as a Shaping (None when empty or absent), or
    INVALID after saying why."""
    if raw is None or raw is INVALID:
        return raw
    needs_delay = [key for key in ("jitter", "reorder") if key in raw and "delay" not in raw]
    for key in needs_delay:
        checker.error(f"{path}.{key}", f"{key} needs a delay (add delay, like 20ms)")
    if needs_delay or INVALID in raw.values():
        return INVALID
    return Shaping(**raw) if raw else None


def address_problem(address: str, subnet: str) -> str:
    """Why `address` cannot be a host of `subnet`, or "" if it can."""
    network = ipaddress.ip_network(subnet)
    ip = ipaddress.ip_address(address)
    if ip.version != network.version or ip not in network:
        return f"{address} is not in the subnet {subnet}"
    if ip == network.network_address:
        return f"{address} is the network address of {subnet}"
    if ip == network.broadcast_address and network.version == 4:
        return f"{address} is the broadcast address of {subnet}"
    return ""
