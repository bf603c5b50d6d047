"""A plan as the shell commands that would do the same (`ip`, `bridge`, `tc`, `iptables`,
`unshare`, cgroup file writes), for students to read and, as root, to run.

The agent applies plans through netlink, not through these commands; this is the readable
equivalent. Names in a plan come from `labplan.naming`; every other value that came from
a labfile (commands, environment, hostnames) is passed through `shlex.quote`, so it is
only ever data to the shell.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from labplan import naming
from labplan.codec import shared_hosts_lines
from labplan.ops import (
    AddAddress,
    AddFdbEntry,
    AddRoute,
    AttachToBridge,
    CreateBridge,
    CreateCgroup,
    CreateIpvlan,
    CreateMacvlan,
    CreateNetns,
    CreateVethPair,
    CreateVxlan,
    GuardBridge,
    HostPlan,
    IsolateBridge,
    Op,
    Plan,
    SetCgroupLimit,
    SetLinkUp,
    SetNat,
    SetShaping,
    SpawnNode,
)
from labplan.units import format_percent, format_rate, format_time

CGROUP_MOUNT = f"/sys/fs/cgroup/{naming.CGROUP_ROOT}"
RUN_DIR = "/run/labmgr"  # per-node files (/etc/hosts) the nodes bind-mount
CONTROLLERS = "+cpu +memory +pids +io"
TBF_LATENCY = "50ms"
TBF_MIN_BURST = 1600  # bytes: at least one full frame per token bucket refill
IDLE_COMMAND = ("sleep", "infinity")

# The phase an op opens; ops of kinds absent here belong to the phase already open.
_PHASES = {
    "create_netns": "network namespaces, one per node",
    "create_cgroup": "cgroups and their limits",
    "set_cgroup_limit": "cgroups and their limits",
    "create_bridge": "bridges, their gateway addresses, NAT and isolation",
    "set_nat": "bridges, their gateway addresses, NAT and isolation",
    "isolate_bridge": "bridges, their gateway addresses, NAT and isolation",
    "guard_bridge": "bridges, their gateway addresses, NAT and isolation",
    "create_vxlan": "overlay tunnels: VXLAN devices and flood entries to the peer hosts",
    "add_fdb_entry": "overlay tunnels: VXLAN devices and flood entries to the peer hosts",
    "create_veth_pair": "links into the nodes",
    "attach_to_bridge": "links into the nodes",
    "create_macvlan": "links into the nodes",
    "create_ipvlan": "links into the nodes",
    "add_route": "addresses, shaping and routes inside the nodes",
    "set_shaping": "addresses, shaping and routes inside the nodes",
    "spawn_node": "processes: each node's init in its own namespaces",
}
_ADDRESS_PHASE = _PHASES["add_route"]


def tbf_burst(rate: int) -> int:
    """Token bucket size in bytes: 10 ms worth of the rate, so a 250 Hz kernel timer can
    keep the rate, and never less than one frame."""
    return max(rate // 8 // 100, TBF_MIN_BURST)


def render_plan(plan: Plan) -> str:
    """Every host's commands, one block per host."""
    header = (
        f"# lab {plan.lab}, deployment {plan.deployment}\n"
        "# bash, as root, on each host; the agent does the same through netlink\n"
    )
    return header + "".join("\n" + render_host(host) for host in plan.hosts)


def render_teardown_plan(plan: Plan) -> str:
    header = f"# teardown of lab {plan.lab}, deployment {plan.deployment}\n"
    return header + "".join("\n" + render_teardown(host) for host in plan.hosts)


def render_host(host: HostPlan) -> str:
    lines = [f"# host: {host.host}"]
    phase = ""
    shared = _SharedHosts(f"{RUN_DIR}/{host.deployment}/hosts", shared_hosts_lines(host.ops))
    for op in host.ops:
        opens = _phase_of(op)
        if opens and opens != phase:
            phase = opens
            lines.append(f"# {phase}")
            if isinstance(op, SpawnNode) and shared.lines:
                lines += shared.render()
        lines.extend(render_op(op, shared))
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class _SharedHosts:
    """The /etc/hosts lines every node of a host has, written once to `path`."""

    path: str
    lines: tuple[tuple[str, str], ...] = ()

    def render(self) -> list[str]:
        return [
            f"mkdir -p {self.path.rsplit('/', 1)[0]}",
            f"printf '%s\\n' {_hosts_words(self.lines)} > {self.path}",
        ]


def _phase_of(op: Op) -> str | None:
    if isinstance(op, SetLinkUp) and op.ifname == "lo":
        return _ADDRESS_PHASE
    return _PHASES.get(op.kind)


def _ip(netns: str | None) -> str:
    return f"ip -n {netns}" if netns else "ip"


def _cgroup_dir(cgroup: str) -> str:
    return f"{CGROUP_MOUNT}/{cgroup}"


def render_op(op: Op, shared: _SharedHosts | None = None) -> list[str]:
    """The command lines equivalent to one operation (`shared`: /etc/hosts lines already
    written for every node of the host)."""
    match op:
        case CreateNetns(netns=netns):
            return [f"ip netns add {netns}"]
        case CreateCgroup(cgroup=cgroup):
            lines = [f"mkdir {_cgroup_dir(cgroup)}"]
            if "/" not in cgroup:  # the deployment's cgroup hands its controllers down
                controllers = shlex.quote(CONTROLLERS)
                lines.append(f"echo {controllers} > {_cgroup_dir(cgroup)}/cgroup.subtree_control")
            return lines
        case SetCgroupLimit(cgroup=cgroup, key=key, value=value):
            return [f"echo {shlex.quote(value)} > {_cgroup_dir(cgroup)}/{key}"]
        case CreateBridge(name=name, mtu=mtu, group=group, alias=alias):
            return [
                f"ip link add {name} type bridge",
                f"ip link set {name} group {group} alias {alias} mtu {mtu}",
            ]
        case CreateVethPair():
            peer = f"peer name {shlex.quote(op.peer_ifname)} netns {op.peer_netns} mtu {op.mtu}"
            if op.peer_mac:
                peer += f" address {op.peer_mac}"
            return [
                f"ip link add {op.name} mtu {op.mtu} type veth {peer}",
                f"ip link set {op.name} group {op.group} alias {op.alias}",
            ]
        case AttachToBridge(link=link, bridge=bridge):
            return [f"ip link set {link} master {bridge}"]
        case CreateMacvlan():
            address = f" address {op.mac}" if op.mac else ""
            return [
                f"ip link add link {shlex.quote(op.parent)} name {shlex.quote(op.ifname)}"
                f" netns {op.netns}{address} mtu {op.mtu} type macvlan mode {op.mode}"
            ]
        case CreateIpvlan():
            return [
                f"ip link add link {shlex.quote(op.parent)} name {shlex.quote(op.ifname)}"
                f" netns {op.netns} mtu {op.mtu} type ipvlan mode {op.mode}"
            ]
        case CreateVxlan():
            local = f" local {op.local}" if op.local else ""
            return [
                f"ip link add {op.name} mtu {op.mtu} type vxlan"
                f" id {op.vni} dstport {op.port}{local}",
                f"ip link set {op.name} group {op.group} alias {op.alias} master {op.bridge}",
            ]
        case AddFdbEntry(vxlan=vxlan, dst=dst):
            return [f"bridge fdb append 00:00:00:00:00:00 dev {vxlan} dst {dst}"]
        case SetLinkUp(netns=netns, ifname=ifname):
            return [f"{_ip(netns)} link set {shlex.quote(ifname)} up"]
        case AddAddress(netns=netns, ifname=ifname, address=address):
            return [f"{_ip(netns)} addr add {address} dev {shlex.quote(ifname)}"]
        case AddRoute(netns=netns, dst=dst, via=via):
            target = "default" if dst == "0.0.0.0/0" else dst
            return [f"{_ip(netns)} route add {target} via {via}"]
        case SetNat():
            # The agent turns forwarding on only where it is off, and then forwards
            # nothing but the labs' traffic (docs/labfile.md).
            return [
                "sysctl -qw net.ipv4.ip_forward=1",
                *_firewall(op, add=True),
                f"# and: iptables -I FORWARD -i {op.bridge} -d NETWORK -j DROP, for each network"
                " the host is on",
            ]
        case IsolateBridge() | GuardBridge():
            return _firewall(op, add=True)
        case SetShaping():
            return _shaping_lines(op)
        case SpawnNode():
            return _spawn_lines(op, shared or _SharedHosts(""))
    raise ValueError(f"no rendering for operation {op.kind!r}")  # pragma: no cover


def _firewall(op: SetNat | IsolateBridge | GuardBridge, add: bool) -> list[str]:
    """The iptables rules of a NAT, isolation or guard op, to add or to delete.

    A NATed bridge may send out of the host but not into another labmgr link ("lm+"), nor
    to link-local addresses or the networks the host is on (the agent adds one rule per
    network it finds), and nothing new comes in: two labs, or two bridges of one lab,
    never reach each other through the host. Its own ports stay reachable (br_netfilter
    may show bridged frames to FORWARD). A guarded bridge delivers nothing to the host but
    echo requests to its gateway and replies to the host.
    """
    append, insert = ("-A", "-I") if add else ("-D", "-D")
    b = op.bridge
    if isinstance(op, SetNat):
        return [
            f"iptables -t nat {append} POSTROUTING -s {op.subnet} ! -o {b} -j MASQUERADE",
            f"iptables {insert} FORWARD -i {b} -o lm+ -j DROP",
            f"iptables {insert} FORWARD -i {b} ! -o {b} -d 169.254.0.0/16 -j DROP",
            f"iptables {insert} FORWARD -o {b} ! -i {b} -m conntrack"
            " ! --ctstate ESTABLISHED,RELATED -j DROP",
            f"iptables {insert} FORWARD -i {b} -o {b} -j ACCEPT",
        ]
    if isinstance(op, GuardBridge):
        echo = (
            [
                f"iptables {insert} INPUT -i {b} -d {op.gateway} -p icmp --icmp-type echo-request"
                " -j ACCEPT"
            ]
            if op.gateway
            else []
        )
        lines = [
            f"iptables {insert} INPUT -i {b} -j DROP",
            *echo,
            f"iptables {insert} INPUT -i {b} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
        ]
        if op.gateway is None:
            lines += [
                f"iptables {insert} FORWARD -i {b} ! -o {b} -j DROP",
                f"iptables {insert} FORWARD -o {b} ! -i {b} -j DROP",
            ]
        return lines
    return [
        f"iptables {insert} FORWARD -i {b} ! -o {b} -j DROP",
        f"iptables {insert} FORWARD -o {b} ! -i {b} -j DROP",
    ]


def _shaping_lines(op: SetShaping) -> list[str]:
    """netem for delay, jitter and loss as the root qdisc, tbf for the rate under it (or
    as the root when there is nothing for netem to do)."""
    tc = f"tc -n {op.netns}" if op.netns else "tc"
    dev = shlex.quote(op.ifname)
    netem: list[str] = []
    if op.delay is not None or op.jitter is not None:
        netem += ["delay", format_time(op.delay or 0)]
        if op.jitter is not None:
            netem.append(format_time(op.jitter))
    if op.loss is not None:
        netem += ["loss", format_percent(op.loss)]
    lines = []
    parent = "root"
    if netem:
        lines.append(f"{tc} qdisc add dev {dev} root handle 1: netem {' '.join(netem)}")
        parent = "parent 1:"
    if op.rate is not None:
        lines.append(
            f"{tc} qdisc add dev {dev} {parent} handle 2: tbf rate {format_rate(op.rate)}"
            f" burst {tbf_burst(op.rate)} latency {TBF_LATENCY}"
        )
    return lines


def _hosts_words(lines: Iterable[tuple[str, str]]) -> str:
    return " ".join(shlex.quote(f"{address} {name}") for address, name in lines)


def _spawn_lines(op: SpawnNode, shared: _SharedHosts) -> list[str]:
    """Write the node's /etc/hosts, then start its init: join the cgroup first (so the new
    cgroup namespace is rooted there), enter the netns, unshare the rest."""
    kinds = set(op.namespaces)
    run_dir = f"{RUN_DIR}/{op.cgroup}"
    lines = [f"mkdir -p {run_dir}"]
    common = set(shared.lines)
    own = [line for line in op.hosts if line not in common]
    if not shared.lines:
        lines.append(f"printf '%s\\n' {_hosts_words(op.hosts)} > {run_dir}/hosts")
    elif own:
        lines.append(
            f"{{ cat {shared.path}; printf '%s\\n' {_hosts_words(own)}; }} > {run_dir}/hosts"
        )
    else:
        lines.append(f"cp {shared.path} {run_dir}/hosts")
    flags = [
        flag
        for kind, flag in (
            ("mnt", "--mount"),
            ("uts", "--uts"),
            ("ipc", "--ipc"),
            ("pid", "--pid"),
            ("cgroup", "--cgroup"),
            ("user", "--user --map-root-user"),
        )
        if kind in kinds
    ]
    if "pid" in kinds:
        flags.append("--fork --mount-proc" if "mnt" in kinds else "--fork")
    if op.rootfs != "host":
        flags.append(f"--root={shlex.quote(op.rootfs)}")
    flags.append(f"--wd={shlex.quote(op.workdir)}")
    # Inside the new namespaces: name the host, give it its own /etc/hosts, then exec.
    setup = []
    if "uts" in kinds:
        setup.append(f"hostname {shlex.quote(op.hostname)}")
    if "mnt" in kinds and op.rootfs == "host":
        setup.append(f"mount --bind {run_dir}/hosts /etc/hosts")
    setup.append('exec "$@"')
    inner = ["sh", "-c", " && ".join(setup), "init"]
    env = ["env", *(f"{key}={value}" for key, value in op.environment)] if op.environment else []
    command = [*env, *inner, *(op.command or IDLE_COMMAND)]
    netns = f"ip netns exec {op.netns} " if op.netns else ""
    lines.append(
        f"(echo $BASHPID > {_cgroup_dir(op.cgroup)}/cgroup.procs && exec {netns}unshare"
        f" {' '.join(flags)} -- {_quote_all(command)}) &"
    )
    return lines


def _quote_all(words: Iterable[str]) -> str:
    return " ".join(shlex.quote(word) for word in words)


def render_teardown(host: HostPlan) -> str:
    """What removes one host's part of a deployment: kill the nodes, delete every
    host-side link at once by group, the namespaces, the firewall rules, the cgroups."""
    lines = [f"# host: {host.host}"]
    lines += _teardown_lines(host)
    return "\n".join(lines) + "\n"


def _teardown_lines(host: HostPlan) -> Iterator[str]:
    cgroups = [op.cgroup for op in host.ops if isinstance(op, CreateCgroup)]
    nodes = [c for c in cgroups if "/" in c]
    if nodes:
        yield "# processes: kill every process of each node's cgroup"
        yield from (f"echo 1 > {_cgroup_dir(c)}/cgroup.kill" for c in nodes)
    yield "# links: every host-side link of the deployment, in one group delete"
    yield f"ip link delete group {host.group}"
    namespaces = [op.netns for op in host.ops if isinstance(op, CreateNetns)]
    if namespaces:
        yield "# network namespaces (their links go with them)"
        yield from (f"ip netns delete {netns}" for netns in namespaces)
    rules = [op for op in host.ops if isinstance(op, SetNat | IsolateBridge | GuardBridge)]
    if rules:
        yield "# firewall rules"
        for op in rules:
            yield from _firewall(op, add=False)
    if cgroups:
        yield "# cgroups, children first, and the nodes' files"
        yield from (f"rmdir {_cgroup_dir(c)}" for c in reversed(cgroups))
        yield f"rm -rf {RUN_DIR}/{host.deployment}"
