"""The labfile's fields, declared once: type, default, drivers, range, description.
Which drivers take an option, and their own defaults of it, are the drivers' (in
`labplan.drivers`); these tables read them.

The validator (`labplan.structure`, `labplan.labfile`), the exporter and the JSON Schema
(`labplan.schema`) all read these tables, so the three cannot disagree on what a key is.
Table order is the key order of docs/labfile.md and of every export.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from labplan.bounds import (
    DEFAULT_VOLUME_SIZE,
    MAX_LINKS,
    MAX_NETWORKS,
    MAX_NODE_ENVIRONMENT,
    MAX_NODE_EXEC,
    MAX_NODE_IO,
    MAX_NODE_MOUNTS,
    MAX_NODE_NETWORKS,
    MAX_NODE_ROUTES,
    MAX_NODE_SYSCTLS,
    MAX_NODES,
    MAX_PORT_VLANS,
    MAX_VOLUME_SIZE,
    MAX_VOLUMES,
)
from labplan.drivers import DRIVERS, listed, taking
from labplan.model import NAMESPACE_KINDS

Kind = Literal[
    "version",  # the labfile format version
    "string",  # text, optionally constrained by a pattern
    "integer",
    "number",
    "boolean",
    "choice",  # one of `choices`
    "size",  # bytes: 256M
    "rate",  # bit/s: 10mbit
    "time",  # microseconds: 20ms
    "percent",  # 0.5%
    "subnet",  # IPv4 network with room for hosts
    "subnet6",  # IPv6 network with room for hosts
    "ipv6",  # a bare IPv6 address
    "route_dst",  # an IPv4 or IPv6 network (route destinations)
    "ip",  # a bare IPv4 or IPv6 address
    "cidr",  # any IPv4 network (route destinations)
    "ipv4",  # a bare IPv4 address
    "gateway",  # a bare IPv4 address or "none"
    "mac",  # unicast MAC address
    "ifname",  # Linux interface name
    "parent",  # a network name or host:IFNAME
    "rootfs",  # "host" or an absolute path
    "image",  # an OCI image reference (labplan.imageref)
    "interface4",  # an IPv4 address with its prefix: 10.0.12.1/30
    "interface6",  # an IPv6 address with its prefix: fd00:12::1/64
    "endpoint",  # node:ifname
    "link_impairments",  # impairments, or endpoint -> impairments
    "scenario_step",  # `at` and one action (labplan.scenarios checks the action)
    "path",  # an absolute path
    "env_value",  # a string; numbers become strings
    "object",  # keys from `spec`
    "map",  # user-chosen keys matching `key`, values `item`
    "list",  # items `item`
]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


class _NoDefault:
    def __repr__(self) -> str:
        return "NO_DEFAULT"


REQUIRED = _Required()  # the key must be given
NO_DEFAULT = _NoDefault()  # optional; absent means "not set"


@dataclass(frozen=True)
class Field:
    """One key of a labfile object, or the shape of a map value / list item."""

    name: str
    kind: Kind
    description: str
    default: object = NO_DEFAULT
    # Driver-dependent defaults; wins over `default` for the drivers it names.
    driver_defaults: Mapping[str, object] = field(default_factory=dict)
    # The network drivers this option belongs to; None: every driver.
    drivers: frozenset[str] | None = None
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    pattern_hint: str = ""  # how to write a matching value, for messages
    label: str = ""  # what the value is called in messages, when not its key
    minimum: float | None = None
    exclusive_minimum: bool = False
    maximum: float | None = None
    max_items: int | None = None
    scope: str = "a lab"  # what holds at most `max_items` of them, for messages
    spec: ObjectSpec | None = None  # kind "object"
    key: Field | None = None  # kind "map": the keys
    item: Field | None = None  # kind "map" and "list": the values
    min_items: int | None = None  # kind "list"
    since: int = 1  # the labfile version that has the key

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def default_for(self, driver: str | None) -> object:
        if driver is not None and driver in self.driver_defaults:
            return self.driver_defaults[driver]
        return self.default


@dataclass(frozen=True)
class ObjectSpec:
    """A labfile object with a fixed set of keys."""

    title: str
    description: str
    fields: tuple[Field, ...]
    _by_name: dict[str, Field] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    def get(self, name: str) -> Field | None:
        return self._by_name.get(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


LAB_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,39}$"
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}$"
NAME_HINT = "lower-case letters, digits and hyphens, starting with a letter, at most 31 characters"
RFC1123_LABEL = r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$"
# A node's own name is always accepted as its hostname (the default), even ending in "-".
HOSTNAME_PATTERN = r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?|[a-z][a-z0-9-]{0,30})$"
HOST_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
NETWORK_MODE_PATTERN = r"^container:[a-z][a-z0-9-]{0,30}$"
# A sysctl of the node's own network namespace, as sysctl(8) writes it.
SYSCTL_PATTERN = r"^net(\.[A-Za-z0-9_-][A-Za-z0-9_/-]{0,63}){1,6}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DEVICE_PATTERN = r"^[0-9]{1,10}:[0-9]{1,10}$"
IFNAME_PATTERN = r"^[A-Za-z0-9_.-]{1,15}$"
MAC_PATTERN = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$"
_ID_PATTERN = r"([0-9]{1,10}|[A-Za-z_][A-Za-z0-9_.-]{0,31})"
USER_PATTERN = rf"^{_ID_PATTERN}(:{_ID_PATTERN})?$"
MIN_MEMORY = 4 * 1024**2


def _drivers(option: str) -> frozenset[str]:
    """The drivers taking a network option."""
    return frozenset(taking(option))


def _attached_by(option: str) -> frozenset[str]:
    """The drivers taking an attachment option."""
    return frozenset(n for n, d in DRIVERS.items() if option in d.attachment_options)


def _defaults(option: str) -> dict[str, object]:
    """The drivers' own defaults of a network option."""
    return {n: d.defaults[option] for n, d in DRIVERS.items() if option in d.defaults}


def _default_notes(option: str) -> str:
    """`overlay default 1450, room for the VXLAN header`: the drivers' own defaults."""
    return "; ".join(
        f"{name} default {d.defaults[option]}, {d.default_reasons[option]}"
        for name, d in DRIVERS.items()
        if option in d.defaults
    )


_MODAL = [d for d in DRIVERS.values() if d.modes]
_NEED_SUBNET = [n for n, d in DRIVERS.items() if "subnet" in d.required]
_NO_MAC = [n for n, d in DRIVERS.items() if d.addressed and "mac" not in d.attachment_options]

IMPAIRMENTS = ObjectSpec(
    "impairments",
    "Impairments of what a link sends: a rate limit (tbf) and netem's delay, jitter, "
    "loss, duplication, corruption and reordering.",
    (
        Field("rate", "rate", "Rate limit (tbf/htb), like 10mbit.", minimum=1, maximum=10**12),
        Field("delay", "time", "Added delay (netem), like 20ms.", maximum=60 * 10**6),
        Field("jitter", "time", "Delay variation (netem); needs delay.", maximum=60 * 10**6),
        Field("loss", "percent", "Random packet loss (netem), like 0.5%.", minimum=0, maximum=100),
        Field(
            "duplicate",
            "percent",
            "Packets sent twice (netem), like 1%.",
            minimum=0,
            maximum=100,
            since=2,
        ),
        Field(
            "corrupt",
            "percent",
            "Packets with one bit flipped (netem), like 0.1%.",
            minimum=0,
            maximum=100,
            since=2,
        ),
        Field(
            "reorder",
            "percent",
            "Packets sent at once, ahead of the delayed rest (netem); needs delay.",
            minimum=0,
            maximum=100,
            since=2,
        ),
    ),
)
IMPAIRMENT_KEYS = IMPAIRMENTS.names
# Labfile 1's name of a network's impairments.
SHAPING = IMPAIRMENTS

NETWORK = ObjectSpec(
    "network",
    "A virtual network of the lab.",
    (
        Field(
            "driver",
            "choice",
            f"{' | '.join(DRIVERS)}.",
            default="bridge",
            choices=tuple(DRIVERS),
        ),
        Field(
            "subnet",
            "subnet",
            f"IPv4 CIDR; required for {listed(_NEED_SUBNET)}.",
            drivers=_drivers("subnet"),
        ),
        Field(
            "subnet6",
            "subnet6",
            "IPv6 CIDR, like fd00:10::/64: the nodes get IPv6 addresses from it too (labfile 2).",
            drivers=_drivers("subnet"),
            since=2,
        ),
        Field(
            "gateway",
            "gateway",
            'Address the lab\'s bridge holds; default the first host address; "none" for no '
            "gateway address.",
            drivers=_drivers("gateway"),
        ),
        Field(
            "gateway6",
            "ipv6",
            "IPv6 address the lab's bridge holds in its subnet6, like fd00:10::1: the nodes' "
            "default IPv6 route, NAT66 out unless internal; none unless given (labfile 2).",
            drivers=_drivers("gateway6"),
            since=2,
        ),
        Field(
            "internal",
            "boolean",
            "true: no route or NAT out of the lab.",
            default=False,
            drivers=_drivers("internal"),
        ),
        Field(
            "mtu",
            "integer",
            f"Link MTU, 68..65535 ({_default_notes('mtu')}).",
            default=1500,
            driver_defaults=_defaults("mtu"),
            drivers=_drivers("mtu"),
            minimum=68,
            maximum=65535,
        ),
        Field(
            "impairments",
            "object",
            "Impairments of what every attachment sends (labfile 2).",
            drivers=_drivers("shaping"),
            spec=IMPAIRMENTS,
            since=2,
        ),
        Field(
            "shaping",
            "object",
            "Labfile 1's name of impairments, still read: egress shaping of every attachment.",
            drivers=_drivers("shaping"),
            spec=SHAPING,
        ),
        Field(
            "parent",
            "parent",
            'A bridge network of this lab, or "host:IFNAME" (admins only).',
            drivers=_drivers("parent"),
        ),
        Field(
            "mode",
            "choice",
            "; ".join(f"{d.name}: {' | '.join(d.modes)}" for d in _MODAL) + ".",
            driver_defaults=_defaults("mode"),
            drivers=_drivers("mode"),
            choices=tuple(dict.fromkeys(mode for d in _MODAL for mode in d.modes)),
        ),
        Field(
            "vni",
            "integer",
            "VXLAN network identifier, 1..16777215; allocated at deploy time when absent.",
            drivers=_drivers("vni"),
            minimum=1,
            maximum=16777215,
        ),
        Field(
            "vlan_filtering",
            "boolean",
            "true: 802.1Q-aware ports, each in the VLANs its attachment gives (vlan, vlans); "
            "the rest and the bridge's own address in VLAN 1 (labfile 2).",
            default=False,
            drivers=_drivers("vlan_filtering"),
            since=2,
        ),
        Field(
            "id",
            "integer",
            "The 802.1Q VLAN id of the sub-interface, 1..4094 (labfile 2).",
            drivers=_drivers("id"),
            minimum=1,
            maximum=4094,
            since=2,
        ),
    ),
)

IO_THROTTLE = ObjectSpec(
    "io throttle",
    "Throttles for one block device.",
    (
        Field(
            "device",
            "string",
            'The block device as "MAJOR:MINOR", like "8:0".',
            default=REQUIRED,
            pattern=DEVICE_PATTERN,
            pattern_hint='write "MAJOR:MINOR", like "8:0"',
        ),
        Field("rbps", "size", "Read bytes per second, like 10M.", minimum=1),
        Field("wbps", "size", "Write bytes per second, like 10M.", minimum=1),
        Field("riops", "integer", "Read operations per second.", minimum=1),
        Field("wiops", "integer", "Write operations per second.", minimum=1),
    ),
)
IO_THROTTLE_KEYS = ("rbps", "wbps", "riops", "wiops")

LIMITS = ObjectSpec(
    "limits",
    "cgroup limits of the node; a key that is absent is not limited.",
    (
        Field(
            "cpus",
            "number",
            "CPU quota in cores, like 0.5.",
            minimum=0,
            exclusive_minimum=True,
            maximum=1024,
        ),
        Field("cpu_weight", "integer", "CPU weight, 1..10000.", minimum=1, maximum=10000),
        Field(
            "memory",
            "size",
            "Memory limit: bytes with an optional K, M or G suffix.",
            minimum=MIN_MEMORY,
        ),
        Field("memory_swap", "size", "Swap limit in bytes.", minimum=0),
        Field("pids", "integer", "Maximum number of processes.", minimum=1, maximum=4194304),
        Field("io_weight", "integer", "Block I/O weight, 1..10000.", minimum=1, maximum=10000),
        Field(
            "io",
            "list",
            "Per block device throttles.",
            max_items=MAX_NODE_IO,
            scope="a node",
            label="io throttles",
            item=Field("io", "object", "Throttles for one block device.", spec=IO_THROTTLE),
        ),
    ),
)

MOUNT = ObjectSpec(
    "mount",
    "A volume of the lab, or (admins only) a path of the host, mounted inside the node.",
    (
        Field(
            "volume",
            "string",
            "A volume this lab declares under `volumes`.",
            pattern=NAME_PATTERN,
            pattern_hint=NAME_HINT,
        ),
        Field(
            "host",
            "path",
            "Admins only: a directory or file of the host, bound as it is (its owners and "
            "modes), without setuid programs or device nodes.",
        ),
        Field(
            "path",
            "path",
            "Where it appears inside the node: an absolute path, made if missing.",
            default=REQUIRED,
        ),
        Field("readonly", "boolean", "Mounted read-only.", default=False),
    ),
)

NAMESPACES = ObjectSpec(
    "namespaces",
    "Which namespaces the node gets; all on by default; turning one off needs privileged.",
    tuple(
        Field(kind, "boolean", f"Give the node its own {kind} namespace.", default=True)
        for kind in NAMESPACE_KINDS
    ),
)

ATTACHMENT = ObjectSpec(
    "attachment",
    "A node's membership of a network; {} takes every default.",
    (
        Field(
            "ipv4",
            "ipv4",
            "Static address in the network's subnet; default the lowest free address.",
            drivers=_attached_by("ipv4"),
        ),
        Field(
            "ipv6",
            "ipv6",
            "Static IPv6 address in the network's subnet6; default the lowest free address "
            "after the first (labfile 2).",
            drivers=_attached_by("ipv4"),
            since=2,
        ),
        Field(
            "ifname",
            "ifname",
            "Interface name inside the node; default eth0, eth1, ... in the node's order.",
            drivers=_attached_by("ifname"),
        ),
        Field(
            "mac",
            "mac",
            f"Unicast MAC; default 02:42 followed by the address (not on {listed(_NO_MAC)}).",
            drivers=_attached_by("mac"),
        ),
        Field(
            "impairments",
            "object",
            "Impairments of what this node sends on the network, instead of the network's.",
            drivers=_attached_by("ipv4"),
            spec=IMPAIRMENTS,
            since=2,
        ),
        Field(
            "vlan",
            "integer",
            "On a vlan_filtering bridge: the VLAN the node's port is in, untagged (an access "
            "port), 1..4094; default 1, the bridge's (labfile 2).",
            drivers=_attached_by("vlan"),
            minimum=1,
            maximum=4094,
            since=2,
        ),
        Field(
            "vlans",
            "list",
            "On a vlan_filtering bridge: the VLANs the port carries tagged (a trunk), like "
            "[10, 20]; the node makes its own sub-interfaces (labfile 2).",
            drivers=_attached_by("vlans"),
            max_items=MAX_PORT_VLANS,
            scope="a port",
            label="tagged VLANs",
            item=Field("vlan", "integer", "A VLAN id, 1..4094.", minimum=1, maximum=4094),
            since=2,
        ),
    ),
)

ROUTE = ObjectSpec(
    "route",
    "A static route inside the node.",
    (
        Field(
            "dst",
            "route_dst",
            "Destination CIDR, like 0.0.0.0/0 or ::/0 (IPv6: labfile 2).",
            default=REQUIRED,
        ),
        Field(
            "via",
            "ip",
            "Next hop, of the destination's family, in one of the node's attached subnets "
            "or links.",
            default=REQUIRED,
        ),
    ),
)

ENDPOINT_PATTERN = r"^[a-z][a-z0-9-]{0,30}:[A-Za-z0-9_.-]{1,15}$"
ENDPOINT_HINT = "write node:ifname, like r1:eth1"
ENDPOINT = Field(
    "endpoint", "endpoint", "node:ifname.", pattern=ENDPOINT_PATTERN, pattern_hint=ENDPOINT_HINT
)

LINK_TYPES = ("veth", "dummy", "host", "vxlan", "network")
LINK = ObjectSpec(
    "link",
    "A point-to-point link: a veth pair between two node interfaces; or, by its type, an "
    "interface of one node whose far side is not a node: a dummy, a veth into the host's "
    "own namespace (admins only), a VXLAN tunnel to a remote endpoint (admins only) or "
    "another port on a bridge network of the lab.",
    (
        Field(
            "type",
            "choice",
            "veth: between two nodes; dummy: an interface that goes nowhere; host: a veth "
            "whose other end is in the host's namespace; vxlan: a tunnel to `remote`; "
            "network: one more port of the node on the bridge network `network`.",
            default="veth",
            choices=LINK_TYPES,
            since=2,
        ),
        Field(
            "endpoints",
            "list",
            "The two ends, as node:ifname, like [r1:eth1, r2:eth1]; one end for a link of "
            "type dummy, host, vxlan or network.",
            default=REQUIRED,
            min_items=1,
            max_items=2,
            scope="a link",
            label="endpoints",
            item=ENDPOINT,
        ),
        Field(
            "ipv4",
            "list",
            "The ends' IPv4 addresses with their prefix, in the endpoints' order, like "
            "[10.0.12.1/30, 10.0.12.2/30]; one subnet. A dummy, vxlan or network link has "
            "the node's alone (a network link's in the network's subnet, with its prefix); "
            "a host link the node's and, optionally, the host side's.",
            min_items=1,
            max_items=2,
            scope="a link",
            label="IPv4 addresses",
            item=Field("ipv4", "interface4", "An IPv4 address with its prefix."),
        ),
        Field(
            "ipv6",
            "list",
            'The ends\' IPv6 addresses with their prefix, like ["fd00:12::1/64", '
            '"fd00:12::2/64"]; one subnet, given as for ipv4.',
            min_items=1,
            max_items=2,
            scope="a link",
            label="IPv6 addresses",
            item=Field("ipv6", "interface6", "An IPv6 address with its prefix."),
        ),
        Field("mtu", "integer", "Link MTU, 68..65535.", default=1500, minimum=68, maximum=65535),
        Field(
            "host_ifname",
            "ifname",
            "type host or network: the name the host side also answers to (an alternative "
            "name of the veth, which labmgr names itself).",
            since=2,
        ),
        Field(
            "network",
            "string",
            "type network: the lab's bridge network the node's interface is one more port of.",
            since=2,
        ),
        Field("remote", "ip", "type vxlan: the far tunnel endpoint's address.", since=2),
        Field(
            "vni",
            "integer",
            "type vxlan: the VXLAN network identifier, 1..16777215.",
            minimum=1,
            maximum=16777215,
            since=2,
        ),
        Field(
            "port",
            "integer",
            "type vxlan: the UDP port of the tunnel, 1..65535 (4789 when absent).",
            minimum=1,
            maximum=65535,
            since=2,
        ),
        Field(
            "parent",
            "ifname",
            "type vxlan: the host interface the tunnel goes out of (the host's route to "
            "`remote` when absent).",
            since=2,
        ),
        Field(
            "impairments",
            "link_impairments",
            "Impairments of both directions, or keyed by endpoint for one direction "
            "({r2:eth2: {delay: 5ms}}).",
            spec=IMPAIRMENTS,
            key=ENDPOINT,
        ),
    ),
)

NETWORK_NAME = Field(
    "network name", "string", "A network name.", pattern=NAME_PATTERN, pattern_hint=NAME_HINT
)
NODE_NAME = Field(
    "node name", "string", "A node name.", pattern=NAME_PATTERN, pattern_hint=NAME_HINT
)

NODE = ObjectSpec(
    "node",
    "A container: one init process in its own namespaces and cgroup.",
    (
        Field(
            "host",
            "string",
            "The host to place the node on; default: chosen at deploy time.",
            pattern=HOST_PATTERN,
            pattern_hint="letters, digits, '_', '.' and '-', at most 63 characters",
        ),
        Field(
            "hostname",
            "string",
            "The node's hostname (an RFC 1123 label); default the node's name.",
            pattern=HOSTNAME_PATTERN,
            pattern_hint="letters, digits and inner hyphens, at most 63 characters",
        ),
        Field(
            "rootfs",
            "rootfs",
            '"host": the host\'s tree read-only with a private writable layer; or an '
            "absolute directory to pivot into.",
            default="host",
        ),
        Field(
            "image",
            "image",
            "An OCI image to run instead of a rootfs (alpine:3.20, "
            "registry.example:5000/team/router@sha256:...): its Entrypoint, Cmd, Env, "
            "WorkingDir and User apply as Docker applies them.",
        ),
        Field(
            "entrypoint",
            "list",
            "With an image: replaces its Entrypoint (and, as in Docker, its Cmd unless a "
            "command is given).",
            item=Field("argument", "string", "One argument."),
        ),
        Field(
            "command",
            "list",
            "The command and its arguments, as a list; default: the node's init, idle (with "
            "an image: the image's Cmd, which this replaces).",
            default=(),
            item=Field("argument", "string", "One argument."),
        ),
        Field(
            "workdir",
            "path",
            "Working directory of the command (with an image: default its WorkingDir).",
            default="/",
        ),
        Field(
            "user",
            "string",
            "The user the command runs as inside the node: a name, uid, uid:gid or "
            "name:group of the node's tree (with an image: default its User).",
            pattern=USER_PATTERN,
            pattern_hint=(
                "a name or number, optionally :group or :gid; names start with a letter or "
                "_, at most 32 characters, no spaces"
            ),
        ),
        Field(
            "environment",
            "map",
            "Environment variables of the command.",
            default={},
            max_items=MAX_NODE_ENVIRONMENT,
            scope="a node",
            label="environment variables",
            key=Field(
                "variable name",
                "string",
                "A variable name.",
                pattern=ENV_NAME_PATTERN,
                pattern_hint="letters, digits and '_', not starting with a digit",
            ),
            item=Field("value", "env_value", "The variable's value."),
        ),
        Field("limits", "object", "cgroup limits.", default={}, spec=LIMITS),
        Field("namespaces", "object", NAMESPACES.description, default={}, spec=NAMESPACES),
        Field(
            "privileged",
            "boolean",
            "Admins only: no user namespace, full capabilities.",
            default=False,
        ),
        Field(
            "networks",
            "map",
            "Network name -> attachment.",
            default={},
            max_items=MAX_NODE_NETWORKS,
            scope="a node",
            key=NETWORK_NAME,
            item=Field("attachment", "object", ATTACHMENT.description, spec=ATTACHMENT),
        ),
        Field(
            "sysctls",
            "map",
            "Sysctls of the node's own network namespace (net.*, as sysctl(8) writes "
            "them: net.ipv4.ip_forward: 1), set before it starts (labfile 2).",
            default={},
            max_items=MAX_NODE_SYSCTLS,
            scope="a node",
            label="sysctls",
            since=2,
            key=Field(
                "sysctl",
                "string",
                "A net.* sysctl.",
                pattern=SYSCTL_PATTERN,
                pattern_hint=(
                    "a sysctl of the node's network namespace, like net.ipv4.ip_forward "
                    "(only net.* keys are a node's own)"
                ),
            ),
            item=Field("value", "env_value", "Its value."),
        ),
        Field(
            "mounts",
            "list",
            "Volumes of the lab and (admins only) host paths mounted inside the node, in "
            "order (labfile 2).",
            default=(),
            max_items=MAX_NODE_MOUNTS,
            scope="a node",
            label="mounts",
            since=2,
            item=Field("mount", "object", MOUNT.description, spec=MOUNT),
        ),
        Field(
            "network_mode",
            "string",
            "container:NODE: the node joins NODE's network namespace (its interfaces, "
            "addresses and routes), as a Kubernetes pod's containers do, and has no networks, "
            "routes or links of its own (labfile 2).",
            pattern=NETWORK_MODE_PATTERN,
            pattern_hint=(
                "container:NODE, the node whose network namespace this one joins (for the "
                "host's or none, attach the node to a network of driver host or none)"
            ),
            since=2,
        ),
        Field(
            "routes",
            "list",
            "Static routes; default: a default route via the gateway of the first attached "
            "network that has one.",
            max_items=MAX_NODE_ROUTES,
            scope="a node",
            item=Field("route", "object", ROUTE.description, spec=ROUTE),
        ),
        Field(
            "exec",
            "list",
            "Commands run inside the node once every node of the lab has started and "
            "every link is up, in order, each as a list like `command`; their output is "
            "in the deployment's steps, and one that fails (exits non-zero, or runs past "
            "60 s) fails the deployment. A node kept running by a redeploy does not run "
            "them again.",
            default=(),
            max_items=MAX_NODE_EXEC,
            scope="a node",
            label="exec commands",
            since=2,
            item=Field(
                "exec command",
                "list",
                "The command and its arguments.",
                min_items=1,
                scope="an exec command",
                label="argument",
                item=Field("argument", "string", "One argument."),
            ),
        ),
    ),
)

# The actions of a scenario's step: a live change's (labplan.live) or a command or a check.
SCENARIO_ACTIONS = (
    "set",
    "down",
    "up",
    "restore",
    "stop",
    "start",
    "restart",
    "kill",
    "exec",
    "check",
)
MAX_SCENARIOS = 20
MAX_SCENARIO_STEPS = 200
MAX_SCENARIO_AT = 24 * 3600 * 10**6  # microseconds: a day
SCENARIOS = Field(
    "scenarios",
    "map",
    "Scenario name -> its timed actions on the running lab (labfile 2): each step an `at` "
    "(from the run's start, like 10s) and one action (docs/live.md).",
    default={},
    max_items=MAX_SCENARIOS,
    since=2,
    key=Field(
        "scenario name",
        "string",
        "The scenario's name.",
        pattern=NAME_PATTERN,
        pattern_hint=NAME_HINT,
    ),
    item=Field(
        "scenario",
        "list",
        "The scenario's steps, in the order of their `at`.",
        max_items=MAX_SCENARIO_STEPS,
        scope="a scenario",
        label="steps",
        item=Field(
            "step",
            "scenario_step",
            "`at` and one action: set, down, up, restore, stop, start, restart, kill (a live "
            "change), exec ({node, command}) or check (connectivity).",
            maximum=MAX_SCENARIO_AT,
        ),
    ),
)

VOLUME = ObjectSpec(
    "volume",
    "A tmpfs of the deployment on each host with a node that mounts it, shared by those "
    "nodes: its files outlive node restarts and redeploys and go with the lab.",
    (
        Field(
            "size",
            "size",
            "Its bound in bytes (K, M or G suffix); what is written counts against the "
            "writing node's memory limit.",
            default=DEFAULT_VOLUME_SIZE,
            minimum=1 << 20,
            maximum=MAX_VOLUME_SIZE,
        ),
    ),
)

LABFILE = ObjectSpec(
    "labfile",
    "A labmgr lab: networks and the nodes attached to them.",
    (
        Field(
            "labfile",
            "version",
            "The format version: 1, or 2 for links and impairments.",
            default=REQUIRED,
        ),
        Field(
            "name",
            "string",
            "The lab's name.",
            default=REQUIRED,
            label="lab name",
            pattern=LAB_NAME_PATTERN,
            pattern_hint="lower-case letters, digits and hyphens, starting with a letter, "
            "at most 40 characters",
        ),
        Field("description", "string", "What the lab is for.", default=""),
        Field(
            "networks",
            "map",
            "Network name -> network.",
            default={},
            max_items=MAX_NETWORKS,
            key=NETWORK_NAME,
            item=Field("network", "object", NETWORK.description, spec=NETWORK),
        ),
        Field(
            "nodes",
            "map",
            "Node name -> node.",
            default={},
            max_items=MAX_NODES,
            key=NODE_NAME,
            item=Field("node", "object", NODE.description, spec=NODE),
        ),
        Field(
            "links",
            "list",
            "Point-to-point links between node interfaces (labfile 2).",
            default=(),
            max_items=MAX_LINKS,
            label="links",
            item=Field("link", "object", LINK.description, spec=LINK),
            since=2,
        ),
        Field(
            "volumes",
            "map",
            "Volume name -> volume (labfile 2): mounted by nodes under their `mounts`.",
            default={},
            max_items=MAX_VOLUMES,
            since=2,
            key=Field(
                "volume name",
                "string",
                "A volume name.",
                pattern=NAME_PATTERN,
                pattern_hint=NAME_HINT,
            ),
            item=Field("volume", "object", VOLUME.description, spec=VOLUME),
        ),
        SCENARIOS,
    ),
)
