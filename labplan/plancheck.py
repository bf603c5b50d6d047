"""Checks of single plan values and of single ops, for `labplan.codec`'s decoding.

Each check takes a value decoded from JSON and returns it (as the type the op holds) or
raises Invalid with a sentence saying why an agent must not act on it: names must belong
to the deployment, paths stay where they belong, numbers lie in range.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import cast

from labplan import imageref, naming, subnets
from labplan.bounds import (
    MAX_HOSTS_LINES,
    MAX_NODE_ENVIRONMENT,
    MAX_NODE_EXEC,
    MAX_NODE_MOUNTS,
    MAX_PORT_VLANS,
    MAX_VOLUME_SIZE,
)
from labplan.drivers import OP_TRAITS
from labplan.imageref import DIGEST_RE
from labplan.model import NAMESPACE_KINDS
from labplan.mountpaths import path_problem, target_problem
from labplan.ops import (
    CGROUP_KEYS,
    OP_TYPES,
    AddAddress,
    AddRoute,
    ExecInNode,
    GuardBridge,
    IsolateBridge,
    Op,
    SetCgroupLimit,
    SetLinkUp,
    SetNat,
    SetPortVlans,
    SetShaping,
    SpawnNode,
)

LAB_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,39}")
NODE_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")
HOST_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?|[a-z][a-z0-9-]{0,30}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ID = r"(?:[0-9]{1,10}|[A-Za-z_][A-Za-z0-9_.-]{0,31})"
USER_RE = re.compile(rf"{_ID}(?::{_ID})?")  # name, uid, uid:gid, name:group
MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
# A sysctl of a node's own network namespace, and a value for it: one line of text.
SYSCTL_RE = re.compile(r"net(\.[A-Za-z0-9_-][A-Za-z0-9_/-]{0,63}){1,6}")
SYSCTL_VALUE_RE = re.compile(r"[\x20-\x7e\t]{0,256}")
# What the kernel's dev_valid_name lets through, minus characters a shell would mangle.
IFNAME_RE = re.compile(r"[A-Za-z0-9_.@+=-]{1,15}")
_INDEX = r"(?:0|[1-9a-z][0-9a-z]?)"  # base36 of 0..1295; naming stops at 999
MAX_RATE = 10**12  # bit/s
MAX_TIME = 60 * 10**6  # microseconds
MAX_COMMAND_BYTES = 128 * 1024


Check = Callable[[object], object]


class Invalid(Exception):
    """A field's value is refused; the message says why."""


@dataclass(frozen=True)
class Deployment:
    """What names and numbers of one deployment must look like."""

    token: str
    prefix: str
    group: int
    alias: str

    def name_re(self, kind: str) -> re.Pattern[str]:
        return _name_pattern(self.prefix, kind)

    @functools.cached_property
    def checks(self) -> dict[tuple[str, str], Check]:
        """The check of every (op kind, field), built once per decoded plan."""
        return field_checkers(self)


@functools.cache
def _name_pattern(prefix: str, kind: str) -> re.Pattern[str]:
    tail = {"v": f"v{_INDEX}x{_INDEX}"}.get(kind, f"{kind}{_INDEX}")
    return re.compile(re.escape(prefix) + tail)


def field_checkers(ctx: Deployment) -> dict[tuple[str, str], Check]:
    """The check of every (op kind, field): the per-kind meaning first (with the values
    a driver's op takes, like its modes), then by name. Built once per plan, so a check
    may remember what it already accepted."""
    owned = {k: _owned(ctx, k) for k in "nbvx"}
    by_kind: dict[tuple[str, str], Check] = {
        ("create_bridge", "name"): owned["b"],
        ("create_veth_pair", "name"): owned["v"],
        ("create_vxlan", "name"): owned["x"],
        ("add_fdb_entry", "dst"): _ip_address(),
        ("add_route", "dst"): _ip_network,
        ("set_link_up", "ifname"): _ifname,  # owned-ness checked with netns in check_op
        ("set_sysctl", "key"): pattern(SYSCTL_RE, "a net.* sysctl"),
        ("set_sysctl", "value"): pattern(SYSCTL_VALUE_RE, "a sysctl value"),
        ("set_sysctl", "netns"): owned["n"],
        ("create_tunnel", "parent"): _optional(lambda v: _parent(v, ctx)),
        ("set_altname", "altname"): _altname,
    } | {
        (op.kind, name): _choice(values)
        for op, made in OP_TRAITS.items()
        for name, values in made.choices.items()
    }
    by_name: dict[str, Check] = {
        "netns": _optional(owned["n"]),
        "peer_netns": owned["n"],
        "cgroup": lambda v: _cgroup(v, ctx),
        "key": _choice(CGROUP_KEYS),
        "value": _text(limit=256),
        "mtu": _integer(68, 65535),
        "group": _equal(ctx.group, "the deployment's link group"),
        "alias": _equal(ctx.alias, "the deployment's alias"),
        "peer_ifname": _ifname,
        "ifname": _ifname,
        "peer_mac": _optional(_mac),
        "mac": _optional(_mac),
        "link": owned["v"],
        "bridge": owned["b"],
        "vxlan": owned["x"],
        "parent": lambda v: _parent(v, ctx),
        "vni": _integer(1, 2**24 - 1),
        "port": _integer(1, 65535),
        "local": _optional(_ip_address()),
        "address": _interface,
        "via": _ip_address(),
        "gateway": _optional(_ip_address(version=4)),
        "gateway6": _optional(_ip_address(version=6)),
        "subnet": _ip_network,
        "rate": _optional(_integer(1, MAX_RATE)),
        "delay": _optional(_integer(0, MAX_TIME)),
        "jitter": _optional(_integer(0, MAX_TIME)),
        "loss": _optional(_percent),
        "duplicate": _optional(_percent),
        "corrupt": _optional(_percent),
        "reorder": _optional(_percent),
        "node": pattern(NODE_NAME_RE, "a node name"),
        "joins": _optional(pattern(NODE_NAME_RE, "a node name")),
        "hostname": pattern(HOSTNAME_RE, "a hostname"),
        "namespaces": _namespaces,
        "privileged": _boolean,
        "rootfs": _optional(lambda v: v if v == "host" else _absolute_path(v)),
        "command": _optional(_command),
        "environment": _environment,
        "workdir": _optional(_absolute_path),
        "hosts": _hosts_lines(),
        "image": _optional(_image_ref),
        "entrypoint": _optional(_command),
        "user": _optional(_user),
        "ref": _image_ref,
        "digest": _optional(pattern(DIGEST_RE, "a sha256: digest")),
        "vlan_filtering": _boolean,
        "pvid": _integer(1, 4094),
        "vid": _integer(1, 4094),
        "tagged": _vlan_ids,
        "index": _integer(0, MAX_NODE_EXEC - 1),
        "volume": pattern(NODE_NAME_RE, "a volume name"),
        "size": _integer(1 << 20, MAX_VOLUME_SIZE),
        "mounts": _mounts,
        "timeout": _integer(1, 3600),
        "remote": _ip_address(),
    }
    return {
        (op.kind, f.name): by_kind.get((op.kind, f.name)) or by_name[f.name]
        for op in OP_TYPES
        for f in fields(op)
    }


def _optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def _text(limit: int) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str):
            raise Invalid(f"{value!r} is not a string")
        if "\0" in value or len(value.encode()) > limit:
            raise Invalid(f"{value!r} is not text of at most {limit} bytes without NUL")
        return value

    return check


def pattern(pattern: re.Pattern[str], what: str) -> Check:
    def check(value: object) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise Invalid(f"{value!r} is not {what}")
        return value

    return check


def _choice(choices: tuple[str, ...]) -> Check:
    def check(value: object) -> str:
        if value not in choices:
            raise Invalid(f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    return check


def _equal(expected: object, what: str) -> Check:
    def check(value: object) -> object:
        if value != expected or type(value) is not type(expected):
            raise Invalid(f"{value!r} is not {expected!r}, {what}")
        return value

    return check


def _integer(low: int, high: int) -> Check:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise Invalid(f"{value!r} is not a whole number in {low}..{high}")
        return value

    return check


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"{value!r} is not true or false")
    return value


def _percent(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Invalid(f"{value!r} is not a percentage")
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise Invalid(f"{value!r} is not a percentage in 0..100")
    return float(value)


def _owned(ctx: Deployment, kind: str) -> Check:
    pattern = ctx.name_re(kind)
    what = {"n": "netns", "b": "bridge", "v": "veth", "x": "vxlan"}[kind]

    def check(value: object) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise Invalid(f"{value!r} is not a {what} name of deployment {ctx.token}")
        if len(value.encode()) > naming.IFNAMSIZ:
            raise Invalid(f"{value!r} is longer than {naming.IFNAMSIZ} bytes")
        return value

    return check


def _ifname(value: object) -> str:
    """A name inside a node's own netns: anything the kernel takes but "." and ".."."""
    if not isinstance(value, str) or not IFNAME_RE.fullmatch(value) or value in (".", ".."):
        raise Invalid(f"{value!r} is not an interface name of at most 15 bytes")
    return value


def _parent(value: object, ctx: Deployment) -> str:
    """A lab bridge of this deployment, or a plain host link (never another deployment's)."""
    name = _ifname(value)
    if name.startswith(ctx.prefix):
        return str(_owned(ctx, "b")(name))
    if naming.LABMGR_NAME_RE.fullmatch(name) or name == "lo":
        raise Invalid(f"{name!r} is not a bridge of deployment {ctx.token} or a host link")
    return name


def _altname(value: object) -> str:
    """A name of the user's for a host link: never one that looks like labmgr's own."""
    name = _ifname(value)
    if naming.LABMGR_NAME_RE.fullmatch(name) or name == "lo":
        raise Invalid(f"{name!r} is a name labmgr keeps for its own links")
    return name


def _mac(value: object) -> str:
    if not isinstance(value, str) or not MAC_RE.fullmatch(value):
        raise Invalid(f"{value!r} is not a lower-case MAC address")
    if int(value[:2], 16) & 1:
        raise Invalid(f"{value!r} is a multicast MAC address")
    return value


def _ip_address(version: int | None = None) -> Check:
    """An IP address (of `version` only, when given), written canonically."""

    def check(value: object) -> str:
        try:
            address = ipaddress.ip_address(value if isinstance(value, str) else "")
        except ValueError:
            raise Invalid(f"{value!r} is not an IP address") from None
        if version is not None and address.version != version:
            raise Invalid(f"{value!r} is not an IPv{version} address")
        if str(address) != value:
            raise Invalid(f"{value!r} is not written canonically ({address})")
        return str(value)

    return check


def _ip_network(value: object) -> str:
    """An IPv4 or IPv6 network, written canonically (a route's destination)."""
    try:
        network = ipaddress.ip_network(value if isinstance(value, str) else "")
    except ValueError:
        raise Invalid(f"{value!r} is not an IP network like 10.10.0.0/24 or fd00::/64") from None
    if str(network) != value:
        raise Invalid(f"{value!r} is not written canonically ({network})")
    return str(network)


def _interface(value: object) -> str:
    """An IPv4 or IPv6 address with its prefix, written canonically."""
    try:
        interface = ipaddress.ip_interface(value if isinstance(value, str) and "/" in value else "")
    except ValueError:
        raise Invalid(
            f"{value!r} is not an IP address with prefix like 10.10.0.1/24 or fd00::1/64"
        ) from None
    if str(interface) != value:
        raise Invalid(f"{value!r} is not written canonically as address/prefix")
    return str(interface)


def _cgroup(value: object, ctx: Deployment) -> str:
    if not isinstance(value, str):
        raise Invalid(f"{value!r} is not a cgroup path")
    parts = value.split("/")
    if parts[0] != ctx.token or not all(re.fullmatch(r"[a-z0-9]{1,32}", p) for p in parts):
        raise Invalid(f"{value!r} is not a relative cgroup path under {ctx.token}")
    return value


def _absolute_path(value: object) -> str:
    path = _text(limit=4096)(value)
    if not path.startswith("/") or ".." in path.split("/"):
        raise Invalid(f"{value!r} is not an absolute path without '..'")
    return path


def _list(value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise Invalid(f"{value!r} is not a list")
    return list(value)


def _vlan_ids(value: object) -> tuple[int, ...]:
    """A port's tagged VLANs: distinct ids in 1..4094, sorted, at most MAX_PORT_VLANS."""
    ids = tuple(cast(int, _integer(1, 4094)(vid)) for vid in _list(value))
    if len(ids) > MAX_PORT_VLANS:
        raise Invalid(f"a port carries at most {MAX_PORT_VLANS} tagged VLANs")
    if list(ids) != sorted(set(ids)):
        raise Invalid(f"{list(ids)!r} is not a sorted list of distinct VLAN ids")
    return ids


def _namespaces(value: object) -> tuple[str, ...]:
    kinds = _list(value)
    if any(k not in NAMESPACE_KINDS for k in kinds) or len(set(kinds)) != len(kinds):
        raise Invalid(f"{value!r} is not a list of distinct kinds of {', '.join(NAMESPACE_KINDS)}")
    return tuple(k for k in NAMESPACE_KINDS if k in kinds)


def _command(value: object) -> tuple[str, ...]:
    words = tuple(_text(limit=MAX_COMMAND_BYTES)(w) for w in _list(value))
    if sum(len(w.encode()) for w in words) > MAX_COMMAND_BYTES:
        raise Invalid(f"the command is longer than {MAX_COMMAND_BYTES} bytes")
    return words


def _mounts(value: object) -> tuple[tuple[str, str, str, str], ...]:
    """A node's mounts: a volume of the plan's by name, or an absolute path of the host
    (the control plane lets only admins ask), each on a path of the node that takes one."""
    items = _list(value)
    if len(items) > MAX_NODE_MOUNTS:
        raise Invalid(f"a node has at most {MAX_NODE_MOUNTS} mounts")
    mounts = []
    for item in items:
        if not isinstance(item, list | tuple) or len(item) != 4:
            raise Invalid(f"{item!r} is not [kind, source, path, mode]")
        kind, source, target, mode = (_text(limit=4096)(word) for word in item)
        if kind == "volume":
            pattern(NODE_NAME_RE, "a volume name")(source)
        elif kind == "host":
            _absolute_path(source)
            if (problem := path_problem(source)) is not None:
                raise Invalid(problem)
        else:
            raise Invalid(f"{kind!r} is not volume or host")
        _absolute_path(target)
        if (problem := target_problem(target)) is not None:
            raise Invalid(problem)
        if mode not in ("ro", "rw"):
            raise Invalid(f"{mode!r} is not ro or rw")
        mounts.append((kind, source, target, mode))
    return tuple(mounts)


def _pairs(value: object) -> list[tuple[str, str]]:
    text = _text(limit=MAX_COMMAND_BYTES)
    pairs = []
    for item in _list(value):
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise Invalid(f"{item!r} is not a pair")
        pairs.append((text(item[0]), text(item[1])))
    return pairs


def _environment(value: object) -> tuple[tuple[str, str], ...]:
    if len(_list(value)) > MAX_NODE_ENVIRONMENT:
        raise Invalid(f"a node has at most {MAX_NODE_ENVIRONMENT} environment variables")
    pairs = _pairs(value)
    for name, _ in pairs:
        if not ENV_NAME_RE.fullmatch(name):
            raise Invalid(f"{name!r} is not an environment variable name")
    if [n for n, _ in pairs] != sorted({n for n, _ in pairs}):
        raise Invalid("the variables must be sorted by name, each given once")
    return tuple(pairs)


def _image_ref(value: object) -> str:
    """A canonical image reference (as the compiler writes them), nothing else."""
    if not isinstance(value, str):
        raise Invalid(f"{value!r} is not an image reference")
    try:
        parsed = imageref.parse(value)
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    if parsed.canonical != value:
        raise Invalid(f"{value!r} is not written canonically ({parsed.canonical})")
    return value


def _user(value: object) -> str:
    if not isinstance(value, str) or not USER_RE.fullmatch(value):
        raise Invalid(f"{value!r} is not a user: name, uid, uid:gid or name:group")
    return value


def _hosts_lines() -> Callable[[object], tuple[tuple[str, str], ...]]:
    """/etc/hosts lines. Every node of a lab lists every other node, so the same line
    comes once per node: each distinct line is checked once."""
    accepted: set[tuple[str, str]] = set()
    address, name = _ip_address(version=4), pattern(HOSTNAME_RE, "a host name")

    def check(value: object) -> tuple[tuple[str, str], ...]:
        items = _list(value)
        if len(items) > MAX_HOSTS_LINES:
            raise Invalid(f"a node's /etc/hosts has at most {MAX_HOSTS_LINES:,} lines")
        lines = []
        for item in items:
            line = tuple(item) if isinstance(item, list | tuple) else None
            if line not in accepted:
                if line is None or len(line) != 2:
                    raise Invalid(f"{item!r} is not a pair")
                address(line[0]), name(line[1])
                accepted.add(line)
            lines.append(line)
        return tuple(lines)

    return check


# --- checks across the fields of one op --------------------------------------------------


_CGROUP_VALUES: dict[str, re.Pattern[str]] = {
    "cpu.max": re.compile(r"(max|[1-9][0-9]{3,9}) [1-9][0-9]{3,6}"),
    "cpu.weight": re.compile(r"[1-9][0-9]{0,4}"),
    "memory.max": re.compile(r"max|0|[1-9][0-9]{0,19}"),
    "memory.swap.max": re.compile(r"max|0|[1-9][0-9]{0,19}"),
    "pids.max": re.compile(r"max|[1-9][0-9]{0,9}"),
    "io.weight": re.compile(r"default [1-9][0-9]{0,4}"),
    "io.max": re.compile(
        r"[0-9]{1,10}:[0-9]{1,10}( (rbps|wbps|riops|wiops)=(max|[1-9][0-9]{0,19})){1,4}"
    ),
}
_WEIGHTED = {"cpu.weight": 0, "io.weight": 1}  # word holding a 1..10000 weight


def check_op(op: Op, ctx: Deployment) -> None:
    """Checks that need two fields of an op; raise Invalid("field: message")."""
    if isinstance(op, SetCgroupLimit):
        _check_cgroup_value(op.key, op.value)
    if (
        isinstance(op, SetLinkUp | AddAddress | SetShaping)
        and op.netns is None
        and not any(ctx.name_re(kind).fullmatch(op.ifname) for kind in "bvx")
    ):
        raise Invalid(f"ifname: {op.ifname!r} is not a host link of deployment {ctx.token}")
    if isinstance(op, AddAddress) and op.netns is None:
        _check_routed("address", ipaddress.ip_interface(op.address).network)
    if isinstance(op, SetPortVlans) and op.pvid in op.tagged:
        raise Invalid(f"tagged: {op.pvid} is the port's untagged VLAN (pvid)")
    if isinstance(op, SetNat | IsolateBridge):
        _check_routed("subnet", ipaddress.ip_network(op.subnet))
    if isinstance(op, GuardBridge):
        for field, gateway in (("gateway", op.gateway), ("gateway6", op.gateway6)):
            if gateway is not None:
                _check_routed(field, ipaddress.ip_network(gateway))
    if (
        isinstance(op, AddRoute)
        and ipaddress.ip_network(op.dst).version != ipaddress.ip_address(op.via).version
    ):
        raise Invalid(f"via: {op.via} is not of the family of {op.dst}")
    if isinstance(op, SetShaping):
        given = (op.rate, op.delay, op.jitter, op.loss, op.duplicate, op.corrupt, op.reorder)
        if given == (None,) * 7:
            raise Invalid(
                "rate: a shaping op sets at least one of rate, delay, jitter, loss, "
                "duplicate, corrupt, reorder"
            )
        if (op.jitter is not None or op.reorder is not None) and op.delay is None:
            raise Invalid("delay: jitter and reorder need a delay")
    if isinstance(op, ExecInNode) and not op.command:
        raise Invalid("command: an exec command has at least one argument")
    if isinstance(op, SpawnNode):
        if op.joins is not None and (op.netns is None or op.joins == op.node):
            raise Invalid("joins: a node joins the network namespace of another node")
        if not re.fullmatch(re.escape(ctx.token) + f"/n{_INDEX}", op.cgroup):
            raise Invalid(f"cgroup: a node runs in a node cgroup like {ctx.token}/n0")
        if not op.privileged and op.namespaces != NAMESPACE_KINDS:
            raise Invalid("namespaces: only a privileged node may turn a namespace off")
        if (op.image is None) != (op.rootfs is not None):
            raise Invalid("rootfs: a node has a rootfs or an image, one of them")
        if op.image is None and (op.command is None or op.workdir is None):
            raise Invalid("command: only a node of an image leaves its command to it")
        if op.image is None and op.entrypoint is not None:
            raise Invalid("entrypoint: only a node of an image has an entrypoint")
        if op.image is not None and "mnt" not in op.namespaces:
            raise Invalid("namespaces: a node of an image needs its mount namespace")


def _check_routed(field: str, subnet: subnets.IPNetwork) -> None:
    """What the host itself holds or routes must not shadow a reserved range or most of
    the internet, whatever a plan says (the broker is not trusted)."""
    if problem := subnets.routed_problem(subnet):
        raise Invalid(f"{field}: {problem}; no host routes it into a lab")


def _check_cgroup_value(key: str, value: str) -> None:
    if not _CGROUP_VALUES[key].fullmatch(value):
        raise Invalid(f"value: {value!r} is not a valid {key} value")
    if key in _WEIGHTED and not 1 <= int(value.split()[_WEIGHTED[key]]) <= 10000:
        raise Invalid(f"value: {value!r} is not a weight in 1..10000")
    if key == "io.max":
        keys = [word.split("=")[0] for word in value.split()[1:]]
        if len(set(keys)) != len(keys):
            raise Invalid(f"value: {value!r} gives a throttle twice")
