"""Bounds on what one lab makes in the kernel, so a labfile of at most 1 MiB cannot ask a
host for 100,000 veths.

Each bound is declared here once. The per-item ones (a node's networks, routes, variables
and throttles) are `max_items` of `labplan.fields` tables; the lab-wide ones are checked
here on a normalised labfile (`lab_errors`) and on a plan (`plan_errors`), which count
kernel objects the same way: the validator, the compiler and an agent decoding a plan
all refuse what the others would.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import astuple, dataclass, fields

from labplan.drivers import DRIVERS, OP_TRAITS, listed
from labplan.errors import FieldError
from labplan.model import Labfile
from labplan.ops import (
    AddAddress,
    AddRoute,
    CreateCgroup,
    CreateDummy,
    CreateNetns,
    CreatePeerLink,
    CreateTunnel,
    Op,
    Plan,
    SetCgroupLimit,
    SetShaping,
    SpawnNode,
)

MAX_NODES = 1000  # also what kernel names have room for (`labplan.naming.MAX_INDEX`)
MAX_NETWORKS = 1000
MAX_LINKS = 4000  # point-to-point links of a lab
MAX_NODE_NETWORKS = 64  # networks one node attaches to: eth0 .. eth63
MAX_NODE_ROUTES = 256
MAX_NODE_ENVIRONMENT = 256  # variables
MAX_NODE_EXEC = 64  # commands run once a node has started
MAX_NODE_SYSCTLS = 64  # net.* sysctls of a node's own network namespace
MAX_NODE_MOUNTS = 32  # volumes and host paths mounted into one node
MAX_VOLUMES = 64  # volumes of a lab (labfile 2), each a tmpfs on each host that mounts it
MAX_VOLUME_SIZE = 4 << 30  # bytes: a volume's bound (its pages are its writers' memory)
DEFAULT_VOLUME_SIZE = 256 << 20
MAX_NODE_IO = 16  # io throttles, one per block device
MAX_PORT_VLANS = 64  # the tagged VLANs of one bridge port (a trunk attachment's vlans)
MAX_ATTACHMENTS = 4000  # node-network pairs of a lab: each a link its driver makes
MAX_KERNEL_OBJECTS = 20_000
# A node's /etc/hosts: every addressed node of the lab, localhost and its own hostname.
MAX_HOSTS_LINES = MAX_NODES + 2
# Every kernel object is made by one op; besides those, a plan sets each link and each
# netns's lo up and attaches each veth pair (2 links) to a bridge: at most 2.5 ops per
# object, so no plan of a lab within the bounds holds more.
MAX_PLAN_OPS = MAX_KERNEL_OBJECTS * 5 // 2


@dataclass(frozen=True)
class KernelObjects:
    """What a lab or a plan makes in the kernel, by kind. Cgroup limits are files
    written, not objects, but each is one more write the agent does as root."""

    links: int = 0  # bridges, vxlans, both ends of each veth, child links
    netns: int = 0
    cgroups: int = 0
    cgroup_limits: int = 0
    addresses: int = 0
    routes: int = 0
    qdiscs: int = 0  # shaping of one link
    fdb_entries: int = 0
    firewall_rules: int = 0  # NAT out of a network, or its isolation
    processes: int = 0  # node inits

    @property
    def total(self) -> int:
        return sum(astuple(self))

    def breakdown(self) -> str:
        """`links 2,001, netns 1,000, ...`: the kinds it has, the largest first."""
        counts = [(getattr(self, f.name), f.name.replace("_", " ")) for f in fields(self)]
        ranked = sorted((c for c in counts if c[0]), key=lambda c: -c[0])
        return ", ".join(f"{name} {count:,}" for count, name in ranked)


# --- a normalised labfile ----------------------------------------------------------------


def lab_objects(lab: Labfile) -> KernelObjects:
    """The kernel objects `lab` makes deployed on one host: what `compile_plan` returns
    for it, counted without compiling (a test keeps the two equal). Each network's own
    objects, and the links of its attachments, are counted as its driver makes them."""
    drivers = {n.name: DRIVERS[n.driver] for n in lab.networks}
    shaped = {n.name for n in lab.networks if n.shaping is not None}
    members: set[str] = set()
    made: Counter[str] = Counter()
    for node in lab.nodes:
        given = node.limits
        settings = (given.cpus, given.cpu_weight, given.memory, given.memory_swap)
        made["cgroup_limits"] += sum(
            v is not None for v in (*settings, given.pids, given.io_weight)
        )
        made["cgroup_limits"] += len(given.io)
        members.update(a.network for a in node.networks)
        if any(drivers[a.network].shares_host_netns for a in node.networks):
            continue  # in the host's netns: nothing of the network is the lab's
        if node.joins is not None:
            continue  # in the netns of the node it joins, which counts it
        made["netns"] += 1
        made["routes"] += len(node.routes)
        for attachment in node.networks:
            link = drivers[attachment.network].attachment_op
            if link is None:
                continue
            made["links"] += OP_TRAITS[link].count
            if attachment.ipv4 is not None:
                made["addresses"] += 1 + (attachment.ipv6 is not None)
                made["qdiscs"] += attachment.network in shaped or bool(attachment.impairments)
    for network in lab.networks:
        made.update(drivers[network.name].objects(network, network.name in members))
    for port in lab.ports:
        made["links"] += 1 + (port.type in ("host", "network"))  # a veth pair from the host
        made["addresses"] += sum(
            a is not None for a in (port.end.ipv4, port.end.ipv6, port.host_ipv4, port.host_ipv6)
        )
    for peer in lab.links:
        made["links"] += 2  # a veth pair
        for end in peer.ends:
            made["addresses"] += (end.ipv4 is not None) + (end.ipv6 is not None)
            made["qdiscs"] += end.impairments is not None
    nodes = len(lab.nodes)
    # The deployment's own cgroup, parent of its nodes'.
    made["cgroups"] = nodes + 1 if nodes else 0
    made["processes"] = nodes
    return KernelObjects(**made)


# What an attachment's link may be, for messages: "veth, ... or ...".
_ATTACHMENT_LINKS = listed(
    dict.fromkeys(
        OP_TRAITS[d.attachment_op].link_kind for d in DRIVERS.values() if d.attachment_op
    ),
    "or",
)


def lab_errors(lab: Labfile) -> list[FieldError]:
    """The lab-wide bounds `lab` passes over: attachments, then kernel objects."""
    errors = []
    attachments = sum(len(node.networks) for node in lab.nodes)
    if attachments > MAX_ATTACHMENTS:
        errors.append(
            FieldError(
                "nodes",
                f"the lab attaches nodes to networks {attachments:,} times (each is a "
                f"{_ATTACHMENT_LINKS} link); at most {MAX_ATTACHMENTS:,}",
            )
        )
    made = lab_objects(lab)
    if made.total > MAX_KERNEL_OBJECTS:
        errors.append(
            FieldError(
                "nodes",
                f"the lab makes {made.total:,} kernel objects ({made.breakdown()}); "
                f"at most {MAX_KERNEL_OBJECTS:,}",
            )
        )
    return errors


# --- a plan ------------------------------------------------------------------------------

# The kind of kernel object each op makes, and how many: the generic ops', then those
# of the drivers.
_OP_OBJECTS: dict[type[Op], tuple[str, int]] = {
    CreateNetns: ("netns", 1),
    CreateCgroup: ("cgroups", 1),
    SetCgroupLimit: ("cgroup_limits", 1),
    AddAddress: ("addresses", 1),
    AddRoute: ("routes", 1),
    SetShaping: ("qdiscs", 1),
    SpawnNode: ("processes", 1),
    CreatePeerLink: ("links", 2),
    CreateDummy: ("links", 1),
    CreateTunnel: ("links", 1),
} | {op: (made.objects, made.count) for op, made in OP_TRAITS.items() if made.objects}


def ops_objects(ops: Iterable[Op]) -> KernelObjects:
    """The kernel objects `ops` make (setting a link up or attaching it makes none)."""
    by_type: dict[type[Op], int] = {}
    for op in ops:
        by_type[type(op)] = by_type.get(type(op), 0) + 1
    counts: dict[str, int] = {}
    for op_type, count in by_type.items():
        if op_type in _OP_OBJECTS:
            kind, each = _OP_OBJECTS[op_type]
            counts[kind] = counts.get(kind, 0) + count * each
    return KernelObjects(**counts)


def ops_count_error(count: int) -> FieldError | None:
    """Checked before any op is looked at: a plan no lab within the bounds compiles to."""
    if count <= MAX_PLAN_OPS:
        return None
    return FieldError(
        "hosts", f"the plan holds {count:,} operations on its hosts; at most {MAX_PLAN_OPS:,}"
    )


def plan_errors(plan: Plan) -> list[FieldError]:
    """The bounds the plan passes over, counted on all its hosts together."""
    error = ops_count_error(sum(len(host.ops) for host in plan.hosts))
    made = ops_objects(op for host in plan.hosts for op in host.ops)
    errors = [error] if error else []
    if made.total > MAX_KERNEL_OBJECTS:
        errors.append(
            FieldError(
                "hosts",
                f"the plan makes {made.total:,} kernel objects on its hosts "
                f"({made.breakdown()}); at most {MAX_KERNEL_OBJECTS:,}",
            )
        )
    return errors
