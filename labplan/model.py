"""The normalised labfile: what the validator returns and every other part consumes.

Every default is already applied and every address, interface name and MAC is resolved,
so two equal labfiles compile to equal plans. Values are plain Python data (strings for
addresses, ints for sizes in bytes, rates in bit/s and times in microseconds).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

LABFILE_VERSION = 2  # the newest version this labmgr reads; it reads every older one
LABFILE_VERSIONS = (1, 2)

# The labfile's `driver` enum, in the order the docs and the schema list it. Each name
# has its module in `labplan.drivers`, which says what the driver means (checked there).
DriverName = Literal["bridge", "host", "none", "macvlan", "ipvlan", "overlay", "vlan"]

NAMESPACE_KINDS = ("mnt", "uts", "ipc", "pid", "cgroup", "user")
HOST_PARENT_PREFIX = "host:"


@dataclass(frozen=True)
class Shaping:
    """Impairments of a link's egress: a rate (tbf) and netem's delay, jitter, loss,
    duplication, corruption and reordering. Labfile 2 calls it `impairments`; labfile 1's
    `shaping` of a network is the same object with its first four keys."""

    rate: int | None = None  # bit/s
    delay: int | None = None  # microseconds
    jitter: int | None = None  # microseconds
    loss: float | None = None  # percent, 0..100
    duplicate: float | None = None  # percent
    corrupt: float | None = None  # percent
    reorder: float | None = None  # percent; needs a delay

    @property
    def needs_netem(self) -> bool:
        return any(
            value is not None
            for value in (
                self.delay,
                self.jitter,
                self.loss,
                self.duplicate,
                self.corrupt,
                self.reorder,
            )
        )

    @property
    def since_v2(self) -> bool:
        """Whether it uses a key labfile 1 does not have."""
        return any(v is not None for v in (self.duplicate, self.corrupt, self.reorder))


Impairments = Shaping


@dataclass(frozen=True)
class Network:
    name: str
    driver: DriverName
    subnet: str | None = None  # canonical IPv4 CIDR, e.g. "10.10.0.0/24"
    gateway: str | None = None  # None: no gateway address
    internal: bool = False
    mtu: int = 1500
    shaping: Shaping | None = None
    parent: str | None = None  # a bridge network of this lab, or "host:IFNAME"
    mode: str | None = None  # for drivers with modes
    vni: int | None = None  # VXLAN id; None: allocated at deploy time
    vlan_filtering: bool = False  # bridge: 802.1Q-aware ports (labfile 2)
    vlan_id: int | None = None  # the vlan driver's 802.1Q id, the labfile's `id`
    subnet6: str | None = None  # canonical IPv6 CIDR, e.g. "fd00:10::/64" (labfile 2)
    gateway6: str | None = None  # the bridge's IPv6 address; None: none (labfile 2)


@dataclass(frozen=True)
class IoThrottle:
    device: str  # "MAJOR:MINOR"
    rbps: int | None = None
    wbps: int | None = None
    riops: int | None = None
    wiops: int | None = None


@dataclass(frozen=True)
class Limits:
    cpus: float | None = None
    cpu_weight: int | None = None
    memory: int | None = None  # bytes
    memory_swap: int | None = None  # bytes
    pids: int | None = None
    io_weight: int | None = None
    io: tuple[IoThrottle, ...] = ()


@dataclass(frozen=True)
class Namespaces:
    mnt: bool = True
    uts: bool = True
    ipc: bool = True
    pid: bool = True
    cgroup: bool = True
    user: bool = True


@dataclass(frozen=True)
class Attachment:
    """A node's membership of a network. Resolved for addressed drivers, all None otherwise."""

    network: str
    ipv4: str | None = None  # bare address, e.g. "10.10.0.10"
    ifname: str | None = None
    mac: str | None = None  # lower-case, colon separated
    impairments: Shaping | None = None  # this attachment's own, instead of its network's
    vlan: int | None = None  # on a vlan_filtering bridge: the port's untagged VLAN (pvid)
    vlans: tuple[int, ...] = ()  # ... and the VLANs it carries tagged (a trunk)
    ipv6: str | None = None  # bare address, e.g. "fd00:10::10"; None without a subnet6


@dataclass(frozen=True)
class Route:
    dst: str  # canonical IPv4 or IPv6 CIDR
    via: str  # an address of the same family


@dataclass(frozen=True)
class Mount:
    """A volume of the lab (`volume`) or a path of the host (`host`, admins only) mounted
    at `path` inside a node (labfile 2); exactly one of the two is set."""

    path: str  # absolute, normalised
    volume: str | None = None
    host: str | None = None
    readonly: bool = False

    @property
    def source(self) -> str:
        return f"volume {self.volume}" if self.volume is not None else f"host {self.host}"


@dataclass(frozen=True)
class Volume:
    """A lab's volume (labfile 2): a tmpfs of the deployment on each host with a node that
    mounts it, shared by those nodes, kept across redeploys, gone with the lab."""

    name: str
    size: int  # bytes


@dataclass(frozen=True)
class Node:
    name: str
    hostname: str
    host: str | None = None
    # "host" or a directory; None for a node of an image (`image`, a canonical reference),
    # whose command and workdir None leave to the image's Cmd and WorkingDir.
    rootfs: str | None = "host"
    command: tuple[str, ...] | None = ()
    workdir: str | None = "/"
    environment: Mapping[str, str] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    namespaces: Namespaces = field(default_factory=Namespaces)
    privileged: bool = False
    networks: tuple[Attachment, ...] = ()  # in the order the labfile lists them
    routes: tuple[Route, ...] = ()
    image: str | None = None
    entrypoint: tuple[str, ...] | None = None  # image nodes only: replaces its Entrypoint
    user: str | None = None  # name, uid, uid:gid or name:group; None: the image's or root
    # Commands run inside the node once the lab is up, in order (labfile 2).
    exec: tuple[tuple[str, ...], ...] = ()
    # The node whose network namespace this one joins (`network_mode: container:NODE`,
    # labfile 2); None: a namespace of its own, or the host's.
    joins: str | None = None
    # Sysctls of its own network namespace, "net.ipv4.ip_forward" -> "1" (labfile 2).
    sysctls: Mapping[str, str] = field(default_factory=dict)
    mounts: tuple[Mount, ...] = ()  # in the labfile's order (labfile 2)

    def attachment(self, network: str) -> Attachment | None:
        return next((a for a in self.networks if a.network == network), None)


@dataclass(frozen=True)
class LinkEnd:
    """One end of a point-to-point link: an interface of a node, with its addresses (in
    interface form, "10.0.12.1/30") and the impairments of what it sends."""

    node: str
    ifname: str
    ipv4: str | None = None
    ipv6: str | None = None
    impairments: Shaping | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.node}:{self.ifname}"


@dataclass(frozen=True)
class Link:
    """A point-to-point veth pair between two node interfaces (labfile 2 `links`)."""

    ends: tuple[LinkEnd, LinkEnd]
    mtu: int = 1500


@dataclass(frozen=True)
class Port:
    """An interface of one node whose far side is not a node of the lab (labfile 2 `links`
    of one endpoint, by their type): a dummy; a veth whose other end is in the host's own
    namespace, optionally with an address and a name of the user's; a VXLAN tunnel to
    a remote endpoint, over the host's route to it or over `parent`; or one more port of
    the node on a bridge network of the lab (containerlab's mgmt-net link)."""

    index: int  # its position among the labfile's links
    type: str  # "dummy" | "host" | "vxlan" | "network"
    end: LinkEnd  # the node's interface and addresses (no impairments)
    mtu: int = 1500
    host_ifname: str | None = None  # host, network: an alternative name of the host side
    host_ipv4: str | None = None  # host: the host side's addresses
    host_ipv6: str | None = None
    remote: str | None = None  # vxlan
    vni: int | None = None
    port: int = 4789
    parent: str | None = None
    network: str | None = None  # network: the bridge network it is a port of


@dataclass(frozen=True)
class ScenarioStep:
    """One timed action of a scenario: `at` microseconds after its run starts, and the
    action as JSON text (`{"down": "r1:eth1"}`), checked against the lab."""

    at: int
    action: str

    @property
    def data(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.action)
        return value

    @property
    def verb(self) -> str:
        return next(iter(self.data))


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[ScenarioStep, ...]


@dataclass(frozen=True)
class Labfile:
    name: str
    description: str = ""
    networks: tuple[Network, ...] = ()  # sorted by name
    nodes: tuple[Node, ...] = ()  # sorted by name
    links: tuple[Link, ...] = ()  # in the labfile's order
    scenarios: tuple[Scenario, ...] = ()  # sorted by name (labfile 2)
    volumes: tuple[Volume, ...] = ()  # sorted by name (labfile 2)
    ports: tuple[Port, ...] = ()  # the links of one endpoint, in the labfile's order

    @property
    def version(self) -> int:
        """The oldest labfile version that can say this lab: 1 unless it uses what only
        labfile 2 has (links, impairments, IPv6, VLANs, exec)."""
        shapings = [n.shaping for n in self.networks]
        shapings += [a.impairments for node in self.nodes for a in node.networks]
        if self.links or self.ports:
            return 2
        if any(a.impairments for node in self.nodes for a in node.networks):
            return 2
        if self.scenarios or self.volumes:
            return 2
        if any(n.subnet6 for n in self.networks):
            return 2
        if any(n.vlan_filtering or n.driver == "vlan" for n in self.networks):
            return 2
        if any(n.exec or n.joins or n.sysctls or n.mounts for n in self.nodes):
            return 2
        return 2 if any(s is not None and s.since_v2 for s in shapings) else 1

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)

    def link_numbers(self) -> tuple[int, ...]:
        """Each veth link's position among the labfile's links (`links.N`): the links of
        one endpoint hold the others."""
        held = {port.index for port in self.ports}
        every = range(len(self.links) + len(self.ports))
        return tuple(number for number in every if number not in held)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def volume(self, name: str) -> Volume:
        return next(v for v in self.volumes if v.name == name)
