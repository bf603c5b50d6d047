"""A plan as the shell commands that would do the same (`ip`, `bridge`, `tc`, `iptables`,
`unshare`, cgroup file writes), for students to read and, as root, to run.

The agent applies plans through netlink, not through these commands; this is the readable
equivalent. The ops only a driver makes (bridges, veths, tunnels, child links, firewall
rules) render as that driver says (`labplan.drivers`); the generic ones here. Names in a
plan come from `labplan.naming`; every other value that came from a labfile (commands,
environment, hostnames) is passed through `shlex.quote`, so it is only ever data to the
shell.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from labplan import imageref, naming
from labplan.codec import shared_hosts_lines
from labplan.drivers import OP_DRIVERS, OP_TRAITS, Phase
from labplan.ops import (
    AddAddress,
    AddRoute,
    CreateCgroup,
    CreateDummy,
    CreateNetns,
    CreatePeerLink,
    CreateTunnel,
    CreateVolume,
    ExecInNode,
    HostPlan,
    Op,
    Plan,
    PullImage,
    SetAltname,
    SetCgroupLimit,
    SetLinkUp,
    SetShaping,
    SetSysctl,
    SpawnNode,
)
from labplan.units import format_percent, format_rate, format_time

CGROUP_MOUNT = f"/sys/fs/cgroup/{naming.CGROUP_ROOT}"
RUN_DIR = "/run/labmgr"  # per-node files (/etc/hosts) the nodes bind-mount
CONTROLLERS = "+cpu +memory +pids +io"
TBF_LATENCY = "50ms"
TBF_MIN_BURST = 1600  # bytes: at least one full frame per token bucket refill
IDLE_COMMAND = ("sleep", "infinity")
IMAGE_STORE = "/var/lib/labmgr-agent/images"  # the agent's store (docs/images.md)

# The phase a generic op opens (a driver's ops say theirs); ops of kinds absent here
# belong to the phase already open.
_PHASES: dict[type[Op], Phase] = {
    PullImage: Phase.IMAGES,
    CreateNetns: Phase.NETNS,
    CreateCgroup: Phase.CGROUPS,
    CreatePeerLink: Phase.LINKS,
    CreateDummy: Phase.LINKS,
    CreateTunnel: Phase.LINKS,
    SetCgroupLimit: Phase.CGROUPS,
    AddRoute: Phase.ADDRESSES,
    SetShaping: Phase.ADDRESSES,
    SetSysctl: Phase.ADDRESSES,
    CreateVolume: Phase.PROCESSES,
    SpawnNode: Phase.PROCESSES,
    ExecInNode: Phase.EXEC,
}


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
        return Phase.ADDRESSES.value
    owned = OP_TRAITS.get(type(op))
    phase = owned.phase if owned is not None else _PHASES.get(type(op))
    return phase.value if phase is not None else None


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
        case SetLinkUp(netns=netns, ifname=ifname):
            return [f"{_ip(netns)} link set {shlex.quote(ifname)} up"]
        case AddAddress(netns=netns, ifname=ifname, address=address):
            dev = shlex.quote(ifname)
            add = f"{_ip(netns)} addr add {address} dev {dev}"
            if ":" not in address:
                return [add]
            # The node's links (and the host's side of a bridge) have IPv6 off until they
            # get an address: then on, without duplicate address detection or a link-local
            # address (agent: the same sysctls).
            sysctl = "sysctl -qw" if netns is None else f"ip netns exec {netns} sysctl -qw"
            return [
                f"{_ip(netns)} link set {dev} addrgenmode none",
                f"{sysctl} net.ipv6.conf.{ifname}.accept_dad=0"
                f" net.ipv6.conf.{ifname}.disable_ipv6=0",
                f"{add} nodad",
            ]
        case CreatePeerLink():
            return [
                f"ip -n {op.netns} link add {shlex.quote(op.ifname)} mtu {op.mtu} type veth"
                f" peer name {shlex.quote(op.peer_ifname)} netns {op.peer_netns} mtu {op.mtu}"
            ]
        case CreateDummy(netns=netns, ifname=ifname, mtu=mtu):
            return [f"ip -n {netns} link add {shlex.quote(ifname)} mtu {mtu} type dummy"]
        case CreateTunnel():
            via = f" dev {shlex.quote(op.parent)}" if op.parent else ""
            return [
                f"ip link add {shlex.quote(op.ifname)} netns {op.netns} mtu {op.mtu} type vxlan"
                f" id {op.vni} remote {op.remote} dstport {op.port}{via}"
            ]
        case SetAltname(link=link, altname=altname):
            return [f"ip link property add dev {link} altname {shlex.quote(altname)}"]
        case AddRoute(netns=netns, dst=dst, via=via):
            target = "default" if dst in ("0.0.0.0/0", "::/0") else dst
            family = " -6" if ":" in dst else ""
            return [f"{_ip(netns)}{family} route add {target} via {via}"]
        case SetShaping():
            return _shaping_lines(op)
        case SetSysctl(netns=netns, key=key, value=value):
            return [f"ip netns exec {netns} sysctl -qw {shlex.quote(f'{key}={value}')}"]
        case CreateVolume(volume=volume, size=size):
            path = f"{RUN_DIR}/volumes/{volume}"
            return [f"mkdir -p {path}", f"mount -t tmpfs -o size={size},mode=0755 lmvol {path}"]
        case SpawnNode():
            return _spawn_lines(op, shared or _SharedHosts(""))
        case PullImage(ref=ref, digest=digest):
            return _pull_lines(ref, digest)
        case ExecInNode(cgroup=cgroup, command=command, timeout=timeout):
            # The init is the newest process of the node's cgroup (unshare forked it).
            init = f'"$(tail -n1 {_cgroup_dir(cgroup)}/cgroup.procs)"'
            return [f"timeout {timeout} nsenter --all --target {init} -- {shlex.join(command)}"]
    if type(op) in OP_DRIVERS:
        return OP_DRIVERS[type(op)].render(op)
    raise ValueError(f"no rendering for operation {op.kind!r}")  # pragma: no cover


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
    for key in ("loss", "duplicate", "corrupt", "reorder"):
        value = getattr(op, key)
        if value is not None:
            netem += [key, format_percent(value)]
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


def _image_tree(ref: str) -> str:
    """Where the store unpacks the image: by digest, which the pull's variable holds."""
    return f"{IMAGE_STORE}/trees/${{{_image_var(ref)}}}/rootfs"


def _image_var(ref: str) -> str:
    """The shell variable holding the image's digest, named after the reference (Docker
    Hub's prefix left out): IMAGE_FRROUTING_FRR_V8_4_1."""
    name = ref.split("@")[0].removeprefix("docker.io/").removeprefix("library/")
    return "IMAGE_" + "".join(c if c.isalnum() else "_" for c in name).upper()


def _pull_lines(ref: str, digest: str | None) -> list[str]:
    """The store's pull, which the agent skips when the host has the image: the digest
    (pinned, else what the tag names now), the copy of that digest, its unpacking."""
    parsed = imageref.parse(ref)
    var = _image_var(ref)
    layout = f"{IMAGE_STORE}/layout"
    if digest is None:
        source = shlex.quote(f"docker://{parsed.canonical}")
        resolve = f"{var}=$(skopeo inspect --format '{{{{.Digest}}}}' {source} | cut -c8-)"
    else:
        resolve = f"{var}={digest.removeprefix('sha256:')}"
    return [
        resolve,
        f"skopeo copy docker://{parsed.name}@sha256:${var} oci:{layout}:${var}",
        f"umoci raw unpack --image {layout}:${var} {IMAGE_STORE}/trees/${var}/rootfs",
    ]


def _user_switch(user: str) -> str:
    """The switch to the node's user, its ids looked up in the node's own tree."""
    name, _, group = user.partition(":")
    regid = shlex.quote(group) if group else f'"$(id -g {shlex.quote(name)} || echo 0)"'
    return f"setpriv --reuid={shlex.quote(name)} --regid={regid} --clear-groups "


def _argv(op: SpawnNode) -> tuple[str, ...]:
    """The command the init runs; for a node of an image, what the labfile leaves to the
    image is named, as the agent combines them: an entrypoint given drops the image's Cmd."""
    if op.image is None:
        return op.command or IDLE_COMMAND
    entry = op.entrypoint if op.entrypoint is not None else ("<image Entrypoint>",)
    cmd = op.command if op.command is not None else () if op.entrypoint else ("<image Cmd>",)
    return (*entry, *cmd) or IDLE_COMMAND


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
    if op.image is not None:
        # The agent binds the tree read-only, idmapped, under the node's own layer.
        flags.append(f'--root="{_image_tree(op.image)}"')
    elif op.rootfs is not None and op.rootfs != "host":
        flags.append(f"--root={shlex.quote(op.rootfs)}")
    workdir = op.workdir if op.workdir is not None else "<image WorkingDir>"
    flags.append(f"--wd={shlex.quote(workdir)}")
    # Inside the new namespaces: name the host, give it its own /etc/hosts, then exec.
    setup = []
    if "uts" in kinds:
        setup.append(f"hostname {shlex.quote(op.hostname)}")
    if "mnt" in kinds and op.rootfs == "host":
        setup.append(f"mount --bind {run_dir}/hosts /etc/hosts")
    for kind, source, target, mode in op.mounts:
        origin = f"{RUN_DIR}/volumes/{source}" if kind == "volume" else shlex.quote(source)
        options = "bind,nosuid,nodev" + (",ro" if mode == "ro" else "")
        setup.append(f"mkdir -p {shlex.quote(target)}")
        setup.append(f"mount -o {options} {origin} {shlex.quote(target)}")
    setup.append(f'exec {_user_switch(op.user) if op.user else ""}"$@"')
    inner = ["sh", "-c", " && ".join(setup), "init"]
    env = ["env", *(f"{key}={value}" for key, value in op.environment)] if op.environment else []
    command = [*env, *inner, *_argv(op)]
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
    # What the group delete leaves: the firewall rules of the drivers' ops.
    rules = [
        line
        for op in host.ops
        if (owner := OP_DRIVERS.get(type(op))) is not None
        for line in owner.teardown(op)
    ]
    if rules:
        yield "# firewall rules"
        yield from rules
    if cgroups:
        yield "# cgroups, children first, and the nodes' files"
        yield from (f"rmdir {_cgroup_dir(c)}" for c in reversed(cgroups))
        yield f"rm -rf {RUN_DIR}/{host.deployment}"
