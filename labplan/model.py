"""The normalised labfile: what the validator returns and every other part consumes.

Every default is already applied and every address, interface name and MAC is resolved,
so two equal labfiles compile to equal plans. Values are plain Python data (strings for
addresses, ints for sizes in bytes, rates in bit/s and times in microseconds).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

LABFILE_VERSION = 1

# The labfile's `driver` enum, in the order the docs and the schema list it. Each name
# has its module in `labplan.drivers`, which says what the driver means (checked there).
DriverName = Literal["bridge", "host", "none", "macvlan", "ipvlan", "overlay"]

NAMESPACE_KINDS = ("mnt", "uts", "ipc", "pid", "cgroup", "user")
HOST_PARENT_PREFIX = "host:"


@dataclass(frozen=True)
class Shaping:
    """Egress shaping applied to every attachment of a network."""

    rate: int | None = None  # bit/s
    delay: int | None = None  # microseconds
    jitter: int | None = None  # microseconds
    loss: float | None = None  # percent, 0..100

    @property
    def needs_netem(self) -> bool:
        return self.delay is not None or self.jitter is not None or self.loss is not None


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


@dataclass(frozen=True)
class Route:
    dst: str  # canonical IPv4 CIDR
    via: str


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

    def attachment(self, network: str) -> Attachment | None:
        return next((a for a in self.networks if a.network == network), None)


@dataclass(frozen=True)
class Labfile:
    name: str
    description: str = ""
    networks: tuple[Network, ...] = ()  # sorted by name
    nodes: tuple[Node, ...] = ()  # sorted by name

    def network(self, name: str) -> Network:
        return next(n for n in self.networks if n.name == name)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)
