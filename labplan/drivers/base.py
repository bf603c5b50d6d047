"""What a network driver declares and decides, with the defaults most drivers share.

A driver is one class in its own module of `labplan.drivers`. Its attributes say which
labfile options it takes, which it needs and what they default to; its methods add the
validation rules only it has, place its network on hosts, compile the network and each
attachment to ops, and render the ops only it makes. Everything generic (addressing,
naming, the op order) stays with the parts of labplan that ask the registry.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Protocol

from labplan.errors import FieldError
from labplan.ops import Op

if TYPE_CHECKING:
    from labplan.model import Network, Node


class Phase(enum.Enum):
    """The compiler's op order on a host, each phase with the heading it opens in a
    rendered plan: images, namespaces and cgroups, then bridges and tunnels, then links,
    then addresses and routes, then processes."""

    IMAGES = "images: each in the host's store, pulled and unpacked if missing"
    NETNS = "network namespaces, one per node"
    CGROUPS = "cgroups and their limits"
    BRIDGES = "bridges, their gateway addresses, NAT and isolation"
    TUNNELS = "overlay tunnels: VXLAN devices and flood entries to the peer hosts"
    LINKS = "links into the nodes"
    ADDRESSES = "addresses, shaping and routes inside the nodes"
    PROCESSES = "processes: each node's init in its own namespaces"
    EXEC = "exec: each node's commands, in order, once every node runs"


@dataclass(frozen=True)
class OpTraits:
    """What an op only a driver makes means outside the agent."""

    phase: Phase  # the rendered plan's heading it opens
    link_kind: str = ""  # the kernel link kind it makes: a feature a host may lack
    feature: str = ""  # a kernel feature it needs besides a link kind ("bridge vlan filtering")
    firewall: bool = False  # rules of the host's firewall: the host needs nftables
    objects: str = ""  # the `labplan.bounds.KernelObjects` count it adds to
    count: int = 1  # how many of them
    # Field -> the values an agent accepts in it, checked when a plan is decoded.
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Link:
    """One attachment to compile into a link: the node's netns and the link's name,
    MAC and place there."""

    netns: str
    ifname: str
    mac: str | None
    node_index: int
    position: int  # the attachment's position among the node's networks
    vlan: int | None = None  # on a vlan_filtering bridge: the port's untagged VLAN
    vlans: tuple[int, ...] = ()  # ... and those it carries tagged


@dataclass(frozen=True)
class Placing:
    """What placing a network on hosts reads: which hosts its nodes, and those of the
    networks it is the parent of, were placed on."""

    members: Mapping[str, list[Node]]  # network -> its nodes, by name
    # network -> (node, child network) for each node of a network it is the parent of,
    # by node name
    via_children: Mapping[str, list[tuple[Node, str]]]
    node_host: Mapping[str, str]
    default_host: str
    underlay: Mapping[str, str]  # host -> its VXLAN underlay address


@dataclass(frozen=True)
class Placement:
    """The hosts holding a network's own kernel objects (its bridge, its tunnel), the
    one holding its gateway address, and why the nodes' placement does not fit it."""

    hosts: tuple[str, ...] = ()
    gateway: str | None = None
    errors: tuple[FieldError, ...] = ()


class Build(Protocol):
    """What a driver reads of the lab being compiled (`labplan.compiler` holds it)."""

    @property
    def deployment(self) -> int: ...

    @property
    def underlay(self) -> Mapping[str, str]: ...

    @property
    def vnis(self) -> Mapping[str, int]: ...  # VNIs allocated at deploy time

    def bridge(self, network: str) -> str: ...  # the kernel name of the network's bridge

    def index(self, network: str) -> int: ...  # the network's index, for kernel names

    def position(self, network: str) -> int: ...  # its position in name order

    def placement(self, network: str) -> Placement: ...

    @property
    def networks(self) -> tuple[Network, ...]: ...  # sorted by name

    def network(self, name: str) -> Network: ...


class Driver:
    """A network driver: the defaults here are those of a driver that takes no option,
    makes no kernel object of its own and gives its nodes no link."""

    name: ClassVar[str]
    # Network options it takes besides `driver`, and those a network must give.
    options: ClassVar[frozenset[str]] = frozenset()
    required: ClassVar[tuple[str, ...]] = ()
    # Its defaults where they differ from the option's, and why, for the option's text.
    defaults: ClassVar[Mapping[str, object]] = {}
    default_reasons: ClassVar[Mapping[str, str]] = {}
    modes: ClassVar[tuple[str, ...]] = ()  # the values its `mode` takes
    attachment_options: ClassVar[frozenset[str]] = frozenset()
    # A node on it lives in the host's network namespace.
    shares_host_netns: ClassVar[bool] = False
    # A node on it attaches to no other network.
    exclusive: ClassVar[bool] = False
    # Why only an admin may use it; "" when anyone may.
    admin_only: ClassVar[str] = ""
    # Its network may be the parent of another's links.
    carries_children: ClassVar[bool] = False
    # Its networks on one parent link share their mode (it belongs to the parent).
    children_share_mode: ClassVar[bool] = False
    # The op that makes each attachment's link; None: its nodes get no link.
    attachment_op: ClassVar[type[Op] | None] = None
    # The ops only this driver makes, and what they mean outside the agent.
    ops: ClassVar[Mapping[type[Op], OpTraits]] = {}

    @property
    def addressed(self) -> bool:
        """Whether its nodes get a link and an address on the network."""
        return "subnet" in self.options

    def member_errors(self, network: Network, nodes: list[str]) -> Iterator[FieldError]:
        """Its rules about the nodes attached to `network` (`nodes`: their names)."""
        return iter(())

    def members_reach_each_other(self, network: Network) -> bool:
        """Whether nodes on `network` reach each other's addresses on it by themselves."""
        return False

    def place(self, network: Network, placing: Placing) -> Placement:
        """The hosts holding the network's own kernel objects."""
        return Placement()

    def objects(self, network: Network, attached: bool) -> Mapping[str, int]:
        """The kernel objects of the network itself on one host (`attached`: some node
        attaches to it), by `labplan.bounds.KernelObjects` count."""
        return {}

    def network_ops(self, lab: Build, network: Network, host: str) -> Iterator[Op]:
        """The network's bridge phase on a host that holds it."""
        return iter(())

    def tunnel_ops(self, lab: Build, network: Network, host: str) -> Iterator[Op]:
        """The network's tunnel phase on a host that holds it."""
        return iter(())

    def link_ops(self, lab: Build, network: Network, link: Link) -> Iterator[Op]:
        """The link of one attachment, before the compiler sets it up."""
        return iter(())

    def render(self, op: Op) -> list[str]:
        """The shell commands equivalent to one of its `ops`."""
        raise ValueError(f"the {self.name} driver renders no {op.kind!r}")

    def teardown(self, op: Op) -> list[str]:
        """The commands removing what one of its `ops` made and the deployment's link
        group delete leaves behind."""
        return []
