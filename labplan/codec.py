"""Plans to JSON-ready dicts and back, the decoding being the privilege-boundary check.

`plan_from_dict` is what a root agent calls on a plan it received: every field is
type-checked, unknown ops and keys are refused, every kernel object the agent would create
belongs to the plan's deployment (its name starts with the deployment's name prefix and
fits IFNAMSIZ), cgroups stay under the deployment's cgroup, addresses parse, numbers lie
in range and paths are absolute without "..". Problems raise LabfileError with paths like
`hosts.local.ops.12.name`.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from labplan import naming
from labplan.errors import FieldError, LabfileError
from labplan.model import IPVLAN_MODES, MACVLAN_MODES, NAMESPACE_KINDS
from labplan.ops import (
    CGROUP_KEYS,
    OPS_BY_KIND,
    AddAddress,
    HostPlan,
    Op,
    Plan,
    SetCgroupLimit,
    SetLinkUp,
    SetShaping,
    SpawnNode,
)

PLAN_VERSION = 1
LAB_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,39}")
NODE_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")
HOST_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?|[a-z][a-z0-9-]{0,30}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAC_RE = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
IFNAME_RE = re.compile(
    r"[A-Za-z0-9_.@+=-]{1,15}"
)  # what dev_valid_name lets through, minus oddities
_INDEX = r"(?:0|[1-9a-z][0-9a-z]?)"  # base36 of 0..1295; naming stops at 999
MAX_RATE = 10**12  # bit/s
MAX_TIME = 60 * 10**6  # microseconds
MAX_COMMAND_BYTES = 128 * 1024


class _Invalid(Exception):
    """A field's value is refused; the message says why."""


@dataclass(frozen=True)
class _Deployment:
    """What names and numbers of one deployment must look like."""

    token: str
    prefix: str
    group: int
    alias: str

    def name_re(self, kind: str) -> re.Pattern[str]:
        tail = {"v": f"v{_INDEX}x{_INDEX}"}.get(kind, f"{kind}{_INDEX}")
        return re.compile(re.escape(self.prefix) + tail)


# --- encoding ------------------------------------------------------------------------------


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data: ops are dicts tagged with "op": kind."""
    return {
        "version": PLAN_VERSION,
        "lab": plan.lab,
        "deployment": plan.deployment,
        "hosts": [
            {
                "host": host.host,
                "deployment": host.deployment,
                "group": host.group,
                "ops": [op_to_dict(op) for op in host.ops],
            }
            for host in plan.hosts
        ],
    }


def op_to_dict(op: Op) -> dict[str, Any]:
    data: dict[str, Any] = {"op": op.kind}
    for field in fields(op):
        data[field.name] = _plain(getattr(op, field.name))
    return data


def _plain(value: object) -> object:
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


# --- decoding ------------------------------------------------------------------------------


def plan_from_dict(data: object) -> Plan:
    """Decode and check a plan received across the privilege boundary."""
    errors: list[FieldError] = []
    top = _mapping(data, "", {"version", "lab", "deployment", "hosts"}, errors)
    if top is None:
        raise LabfileError(errors)
    if top.get("version") != PLAN_VERSION:
        errors.append(FieldError("version", f"must be {PLAN_VERSION}"))
    lab = _field(top, "lab", "lab", _pattern(LAB_NAME_RE, "a lab name"), errors)
    token = top.get("deployment")
    deployment = naming.deployment_from_token(token) if isinstance(token, str) else None
    if deployment is None:
        errors.append(FieldError("deployment", f"{token!r} is not a deployment token like 'lm1'"))
        raise LabfileError(errors)
    ctx = _Deployment(
        token=naming.deployment_token(deployment),
        prefix=naming.name_prefix(deployment),
        group=naming.link_group(deployment),
        alias=naming.link_alias(deployment),
    )
    hosts = _hosts(top.get("hosts"), ctx, errors)
    if errors:
        raise LabfileError(errors)
    return Plan(lab=str(lab), deployment=ctx.token, hosts=hosts)


def _mapping(
    value: object, path: str, keys: set[str], errors: list[FieldError]
) -> Mapping[str, object] | None:
    if not isinstance(value, Mapping):
        errors.append(FieldError(path, "must be a mapping"))
        return None
    for key in sorted(set(value) - keys, key=str):
        errors.append(FieldError(_join(path, str(key)), "unknown key"))
    for key in sorted(keys - set(value)):
        errors.append(FieldError(_join(path, key), "is missing"))
    return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _field(
    data: Mapping[str, object],
    key: str,
    path: str,
    check: Callable[[object], object],
    errors: list[FieldError],
) -> object:
    if key not in data:
        return None  # reported as missing already
    try:
        return check(data[key])
    except _Invalid as invalid:
        errors.append(FieldError(path, str(invalid)))
        return None


def _hosts(value: object, ctx: _Deployment, errors: list[FieldError]) -> tuple[HostPlan, ...]:
    if not isinstance(value, list):
        errors.append(FieldError("hosts", "must be a list"))
        return ()
    hosts = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        name = item.get("host") if isinstance(item, Mapping) else None
        valid = isinstance(name, str) and HOST_NAME_RE.fullmatch(name) and name not in seen
        path = f"hosts.{name}" if valid else f"hosts.{index}"
        if not valid:
            errors.append(FieldError(f"{path}.host", f"{name!r} is not a new host name"))
        host = _host(item, path, ctx, errors)
        if host is not None and valid:
            seen.add(host.host)
            hosts.append(host)
    if [h.host for h in hosts] != sorted(h.host for h in hosts):
        errors.append(FieldError("hosts", "must be sorted by host"))
    return tuple(hosts)


def _host(item: object, path: str, ctx: _Deployment, errors: list[FieldError]) -> HostPlan | None:
    data = _mapping(item, path, {"host", "deployment", "group", "ops"}, errors)
    if data is None:
        return None
    if data.get("deployment") != ctx.token:
        errors.append(FieldError(f"{path}.deployment", f"must be the plan's {ctx.token}"))
    if data.get("group") != ctx.group:
        errors.append(FieldError(f"{path}.group", f"must be {ctx.group}, the deployment's group"))
    ops_value = data.get("ops")
    if not isinstance(ops_value, list):
        errors.append(FieldError(f"{path}.ops", "must be a list"))
        return None
    ops = [_op(op, f"{path}.ops.{i}", ctx, errors) for i, op in enumerate(ops_value)]
    return HostPlan(str(data.get("host")), ctx.token, ctx.group, tuple(o for o in ops if o))


def _op(item: object, path: str, ctx: _Deployment, errors: list[FieldError]) -> Op | None:
    kind = item.get("op") if isinstance(item, Mapping) else None
    op_type = OPS_BY_KIND.get(kind) if isinstance(kind, str) else None
    if op_type is None:
        errors.append(FieldError(f"{path}.op", f"{kind!r} is not a known operation"))
        return None
    names = {f.name for f in fields(op_type)}
    before = len(errors)
    data = _mapping(item, path, names | {"op"}, errors)
    if data is None or len(errors) > before:
        return None
    values = {
        name: _field(data, name, f"{path}.{name}", _checker(str(kind), name, ctx), errors)
        for name in sorted(names)
    }
    if len(errors) > before:
        return None
    op = op_type(**values)
    try:
        _check_op(op, ctx)
    except _Invalid as invalid:
        field, _, message = str(invalid).partition(": ")
        errors.append(FieldError(f"{path}.{field}", message))
        return None
    return op


# --- field checks ------------------------------------------------------------------------


Check = Callable[[object], object]


def _checker(kind: str, field: str, ctx: _Deployment) -> Check:
    """The check of `field` in an op of `kind`: per-kind meaning first, then by name."""
    owned = {k: _owned(ctx, k) for k in "nbvx"}
    by_kind: dict[tuple[str, str], Check] = {
        ("create_bridge", "name"): owned["b"],
        ("create_veth_pair", "name"): owned["v"],
        ("create_vxlan", "name"): owned["x"],
        ("create_macvlan", "mode"): _choice(MACVLAN_MODES),
        ("create_ipvlan", "mode"): _choice(IPVLAN_MODES),
        ("add_fdb_entry", "dst"): _ip_address(any_version=True),
        ("add_route", "dst"): _ipv4_network,
        ("set_link_up", "ifname"): _ifname,  # owned-ness checked with netns in _check_op
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
        "local": _optional(_ip_address(any_version=True)),
        "address": _ipv4_interface,
        "via": _ip_address(any_version=False),
        "subnet": _ipv4_network,
        "rate": _optional(_integer(1, MAX_RATE)),
        "delay": _optional(_integer(0, MAX_TIME)),
        "jitter": _optional(_integer(0, MAX_TIME)),
        "loss": _optional(_percent),
        "node": _pattern(NODE_NAME_RE, "a node name"),
        "hostname": _pattern(HOSTNAME_RE, "a hostname"),
        "namespaces": _namespaces,
        "privileged": _boolean,
        "rootfs": lambda v: v if v == "host" else _absolute_path(v),
        "command": _command,
        "environment": _environment,
        "workdir": _absolute_path,
        "hosts": _hosts_lines,
    }
    return by_kind.get((kind, field)) or by_name[field]


def _optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def _text(limit: int) -> Callable[[object], str]:
    def check(value: object) -> str:
        if not isinstance(value, str):
            raise _Invalid(f"{value!r} is not a string")
        if "\0" in value or len(value.encode()) > limit:
            raise _Invalid(f"{value!r} is not text of at most {limit} bytes without NUL")
        return value

    return check


def _pattern(pattern: re.Pattern[str], what: str) -> Check:
    def check(value: object) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise _Invalid(f"{value!r} is not {what}")
        return value

    return check


def _choice(choices: tuple[str, ...]) -> Check:
    def check(value: object) -> str:
        if value not in choices:
            raise _Invalid(f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    return check


def _equal(expected: object, what: str) -> Check:
    def check(value: object) -> object:
        if value != expected or type(value) is not type(expected):
            raise _Invalid(f"{value!r} is not {expected!r}, {what}")
        return value

    return check


def _integer(low: int, high: int) -> Check:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _Invalid(f"{value!r} is not a whole number in {low}..{high}")
        return value

    return check


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"{value!r} is not true or false")
    return value


def _percent(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"{value!r} is not a percentage")
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise _Invalid(f"{value!r} is not a percentage in 0..100")
    return float(value)


def _owned(ctx: _Deployment, kind: str) -> Check:
    pattern = ctx.name_re(kind)
    what = {"n": "netns", "b": "bridge", "v": "veth", "x": "vxlan"}[kind]

    def check(value: object) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise _Invalid(f"{value!r} is not a {what} name of deployment {ctx.token}")
        if len(value.encode()) > naming.IFNAMSIZ:
            raise _Invalid(f"{value!r} is longer than {naming.IFNAMSIZ} bytes")
        return value

    return check


def _ifname(value: object) -> str:
    """A name inside a node's own netns: anything the kernel takes but "." and ".."."""
    if not isinstance(value, str) or not IFNAME_RE.fullmatch(value) or value in (".", ".."):
        raise _Invalid(f"{value!r} is not an interface name of at most 15 bytes")
    return value


def _parent(value: object, ctx: _Deployment) -> str:
    """A lab bridge of this deployment, or a plain host link (never another deployment's)."""
    name = _ifname(value)
    if name.startswith(ctx.prefix):
        return str(_owned(ctx, "b")(name))
    if naming.LABMGR_NAME_RE.fullmatch(name) or name == "lo":
        raise _Invalid(f"{name!r} is not a bridge of deployment {ctx.token} or a host link")
    return name


def _mac(value: object) -> str:
    if not isinstance(value, str) or not MAC_RE.fullmatch(value):
        raise _Invalid(f"{value!r} is not a lower-case MAC address")
    if int(value[:2], 16) & 1:
        raise _Invalid(f"{value!r} is a multicast MAC address")
    return value


def _ip_address(any_version: bool) -> Check:
    def check(value: object) -> str:
        try:
            address = ipaddress.ip_address(value if isinstance(value, str) else "")
        except ValueError:
            raise _Invalid(f"{value!r} is not an IP address") from None
        if not any_version and address.version != 4:
            raise _Invalid(f"{value!r} is not an IPv4 address")
        if str(address) != value:
            raise _Invalid(f"{value!r} is not written canonically ({address})")
        return str(value)

    return check


def _ipv4_network(value: object) -> str:
    try:
        network = ipaddress.IPv4Network(value if isinstance(value, str) else "")
    except ValueError:
        raise _Invalid(f"{value!r} is not an IPv4 network like 10.10.0.0/24") from None
    if str(network) != value:
        raise _Invalid(f"{value!r} is not written canonically ({network})")
    return str(network)


def _ipv4_interface(value: object) -> str:
    try:
        interface = ipaddress.IPv4Interface(value if isinstance(value, str) else "")
    except ValueError:
        raise _Invalid(f"{value!r} is not an IPv4 address with prefix like 10.10.0.1/24") from None
    if str(interface) != value:
        raise _Invalid(f"{value!r} is not written canonically as address/prefix")
    return str(interface)


def _cgroup(value: object, ctx: _Deployment) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{value!r} is not a cgroup path")
    parts = value.split("/")
    if parts[0] != ctx.token or not all(re.fullmatch(r"[a-z0-9]{1,32}", p) for p in parts):
        raise _Invalid(f"{value!r} is not a relative cgroup path under {ctx.token}")
    return value


def _absolute_path(value: object) -> str:
    path = _text(limit=4096)(value)
    if not path.startswith("/") or ".." in path.split("/"):
        raise _Invalid(f"{value!r} is not an absolute path without '..'")
    return path


def _list(value: object) -> list[object]:
    if not isinstance(value, list | tuple):
        raise _Invalid(f"{value!r} is not a list")
    return list(value)


def _namespaces(value: object) -> tuple[str, ...]:
    kinds = _list(value)
    if any(k not in NAMESPACE_KINDS for k in kinds) or len(set(kinds)) != len(kinds):
        raise _Invalid(f"{value!r} is not a list of distinct kinds of {', '.join(NAMESPACE_KINDS)}")
    return tuple(k for k in NAMESPACE_KINDS if k in kinds)


def _command(value: object) -> tuple[str, ...]:
    words = tuple(_text(limit=MAX_COMMAND_BYTES)(w) for w in _list(value))
    if sum(len(w.encode()) for w in words) > MAX_COMMAND_BYTES:
        raise _Invalid(f"the command is longer than {MAX_COMMAND_BYTES} bytes")
    return words


def _pairs(value: object) -> list[tuple[str, str]]:
    pairs = []
    for item in _list(value):
        pair = _list(item)
        if len(pair) != 2:
            raise _Invalid(f"{item!r} is not a pair")
        pairs.append((_text(limit=MAX_COMMAND_BYTES)(pair[0]), _text(MAX_COMMAND_BYTES)(pair[1])))
    return pairs


def _environment(value: object) -> tuple[tuple[str, str], ...]:
    pairs = _pairs(value)
    for name, _ in pairs:
        if not ENV_NAME_RE.fullmatch(name):
            raise _Invalid(f"{name!r} is not an environment variable name")
    if [n for n, _ in pairs] != sorted({n for n, _ in pairs}):
        raise _Invalid("the variables must be sorted by name, each given once")
    return tuple(pairs)


def _hosts_lines(value: object) -> tuple[tuple[str, str], ...]:
    pairs = _pairs(value)
    for address, name in pairs:
        _ip_address(any_version=False)(address)
        _pattern(HOSTNAME_RE, "a host name")(name)
    return tuple(pairs)


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


def _check_op(op: Op, ctx: _Deployment) -> None:
    """Checks that need two fields of an op; raise _Invalid("field: message")."""
    if isinstance(op, SetCgroupLimit):
        _check_cgroup_value(op.key, op.value)
    if (
        isinstance(op, SetLinkUp | AddAddress | SetShaping)
        and op.netns is None
        and not any(ctx.name_re(kind).fullmatch(op.ifname) for kind in "bvx")
    ):
        raise _Invalid(f"ifname: {op.ifname!r} is not a host link of deployment {ctx.token}")
    if isinstance(op, SetShaping) and (op.rate, op.delay, op.jitter, op.loss) == (None,) * 4:
        raise _Invalid("rate: a shaping op sets at least one of rate, delay, jitter, loss")
    if isinstance(op, SpawnNode):
        if not re.fullmatch(re.escape(ctx.token) + f"/n{_INDEX}", op.cgroup):
            raise _Invalid(f"cgroup: a node runs in a node cgroup like {ctx.token}/n0")
        if not op.privileged and op.namespaces != NAMESPACE_KINDS:
            raise _Invalid("namespaces: only a privileged node may turn a namespace off")


def _check_cgroup_value(key: str, value: str) -> None:
    if not _CGROUP_VALUES[key].fullmatch(value):
        raise _Invalid(f"value: {value!r} is not a valid {key} value")
    if key in _WEIGHTED and not 1 <= int(value.split()[_WEIGHTED[key]]) <= 10000:
        raise _Invalid(f"value: {value!r} is not a weight in 1..10000")
    if key == "io.max":
        keys = [word.split("=")[0] for word in value.split()[1:]]
        if len(set(keys)) != len(keys):
            raise _Invalid(f"value: {value!r} gives a throttle twice")
