"""Plans to JSON-ready dicts and back, the decoding being the privilege-boundary check.

`plan_from_dict` is what a root agent calls on a plan it received: every field is
type-checked, unknown ops and keys are refused, every kernel object the agent would create
belongs to the plan's deployment (its name starts with the deployment's name prefix and
fits IFNAMSIZ), cgroups stay under the deployment's cgroup, addresses parse, numbers lie
in range and paths are absolute without "..", and the plan stays within the bounds of
`labplan.bounds` (its size is checked before any op is). Problems raise LabfileError with
paths like `hosts.local.ops.12.name`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from dataclasses import MISSING, fields
from typing import Any, cast

from labplan import bounds, naming
from labplan.errors import FieldError, LabfileError
from labplan.ops import (
    OPS_BY_KIND,
    CreateBridge,
    GuardBridge,
    HostPlan,
    Op,
    Plan,
    SetLinkUp,
    SpawnNode,
)
from labplan.plancheck import (
    HOST_NAME_RE,
    LAB_NAME_RE,
    Check,
    Deployment,
    Invalid,
    check_op,
    pattern,
)

PLAN_VERSION = 1
HostsLines = tuple[tuple[str, str], ...]
_FIELD_NAMES = {kind: tuple(sorted(f.name for f in fields(t))) for kind, t in OPS_BY_KIND.items()}
_OP_KEYS = {kind: frozenset({*names, "op"}) for kind, names in _FIELD_NAMES.items()}
# Fields an op gained later, with a default: absent from the plans of older versions (in
# the journal) and left out when they hold the default, so older plans read the same.
_DEFAULTS = {
    kind: {f.name: f.default for f in fields(t) if f.default is not MISSING}
    for kind, t in OPS_BY_KIND.items()
}


# --- encoding ------------------------------------------------------------------------------


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data: ops are dicts tagged with "op": kind."""
    return {
        "version": PLAN_VERSION,
        "lab": plan.lab,
        "deployment": plan.deployment,
        "hosts": [_host_to_dict(host) for host in plan.hosts],
    }


def _host_to_dict(host: HostPlan) -> dict[str, Any]:
    """A host plan. Every node's /etc/hosts lists every node of the lab, so the lines all
    nodes share travel once, as "etc_hosts", and each node's "hosts" gives only its own
    lines with their positions: the message grows with the lab, not with its square."""
    shared = _SharedLines.of(host.ops)
    data: dict[str, Any] = {
        "host": host.host,
        "deployment": host.deployment,
        "group": host.group,
        "ops": [op_to_dict(op, shared) for op in host.ops],
    }
    if shared.lines:
        data["etc_hosts"] = _plain(shared.lines)
    return data


def shared_hosts_lines(ops: tuple[Op, ...]) -> HostsLines:
    """The /etc/hosts lines of every node a host plan spawns (none for fewer than two),
    in the first node's order. Nodes usually share one tuple of lines: each distinct
    tuple is looked at once."""
    spawns = [op for op in ops if isinstance(op, SpawnNode)]
    if len(spawns) < 2:
        return ()
    distinct = list({id(op.hosts): op.hosts for op in spawns}.values())
    if len(distinct) == 1:
        return distinct[0]
    common = set(distinct[0]).intersection(*distinct[1:])
    return tuple(line for line in distinct[0] if line in common)


class _SharedLines:
    """The /etc/hosts lines every node of a host plan has, in their order."""

    def __init__(self, lines: HostsLines) -> None:
        self.lines = lines
        # Each node's own lines, by the tuple of lines they came from (kept alive here).
        self._own: dict[int, tuple[HostsLines, list[list[object]] | None]] = {}

    @classmethod
    def of(cls, ops: tuple[Op, ...]) -> _SharedLines:
        return cls(shared_hosts_lines(ops))

    def own(self, lines: HostsLines) -> object:
        """{"shared": true, "own": [[position, address, name], ...]} when `lines` are the
        shared lines in order with the node's own inserted; else the plain list."""
        known = self._own.get(id(lines))
        if known is None or known[0] is not lines:
            known = self._own[id(lines)] = (lines, self._own_lines(lines))
        own = known[1]
        if own is None:
            return _plain(lines)
        return {"shared": True, "own": [list(item) for item in own]}

    def _own_lines(self, lines: HostsLines) -> list[list[object]] | None:
        shared, matched, own = self.lines, 0, []
        for position, line in enumerate(lines):
            if matched < len(shared) and line == shared[matched]:
                matched += 1
            else:
                own.append([position, *line])
        return None if matched < len(shared) else own


def op_to_dict(op: Op, shared: _SharedLines | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"op": op.kind}
    defaults = _DEFAULTS[op.kind]
    for field in fields(op):
        value = getattr(op, field.name)
        if field.name in defaults and value == defaults[field.name]:
            continue
        if isinstance(op, SpawnNode) and field.name == "hosts" and shared and shared.lines:
            data["hosts"] = shared.own(op.hosts)
        else:
            data[field.name] = _plain(value)
    return data


def _plain(value: object) -> object:
    """Tuples become lists; ops hold tuples of strings or of string pairs, nothing deeper."""
    if isinstance(value, tuple):
        return [list(item) if isinstance(item, tuple) else item for item in value]
    return value


# --- decoding ------------------------------------------------------------------------------


def _expander(
    shared: tuple[tuple[str, str], ...] | None, check_lines: Check
) -> Callable[[object], tuple[tuple[str, str], ...]]:
    """Rebuilds a node's /etc/hosts lines from the host plan's shared lines (checked once,
    with the host plan) and the node's own lines (checked here)."""

    def expand(value: object) -> tuple[tuple[str, str], ...]:
        if shared is None:
            raise Invalid("refers to shared lines, but the host plan has no etc_hosts")
        if not isinstance(value, Mapping) or set(value) != {"shared", "own"}:
            raise Invalid("is not a list of lines or {shared: true, own: [...]}")
        own = value["own"]
        if value["shared"] is not True or not isinstance(own, list):
            raise Invalid("is not a list of lines or {shared: true, own: [...]}")
        if len(shared) + len(own) > bounds.MAX_HOSTS_LINES:
            raise Invalid(f"a node's /etc/hosts has at most {bounds.MAX_HOSTS_LINES:,} lines")
        if not all(isinstance(item, list) and len(item) == 3 for item in own):
            raise Invalid(f"{own!r} is not a list of [position, address, name]")
        own_lines = cast(HostsLines, check_lines([item[1:] for item in own]))
        positions = tuple(item[0] for item in own)
        for item, position in zip(own, positions, strict=True):
            if type(position) is not int or position < 0:
                raise Invalid(f"{item!r} is not at a position in 0..{len(shared)}")
        key = (positions, own_lines)
        known = expanded.get(key)
        if known is not None:  # nodes with the same own lines share one tuple
            return known
        lines = list(shared)
        for item, position, line in zip(own, positions, own_lines, strict=True):
            if position > len(lines):
                raise Invalid(f"{item!r} is not at a position in 0..{len(lines)}")
            lines.insert(position, line)
        result = expanded[key] = tuple(lines)
        return result

    expanded: dict[tuple[tuple[object, ...], HostsLines], HostsLines] = {}
    return expand


def plan_from_dict(data: object) -> Plan:
    """Decode and check a plan received across the privilege boundary."""
    errors: list[FieldError] = []
    top = _mapping(data, "", {"version", "lab", "deployment", "hosts"}, errors)
    if top is None:
        raise LabfileError(errors)
    if top.get("version") != PLAN_VERSION:
        errors.append(FieldError("version", f"must be {PLAN_VERSION}"))
    lab = _field(top, "lab", "lab", pattern(LAB_NAME_RE, "a lab name"), errors)
    token = top.get("deployment")
    deployment = naming.deployment_from_token(token) if isinstance(token, str) else None
    if deployment is None:
        errors.append(FieldError("deployment", f"{token!r} is not a deployment token like 'lm1'"))
        raise LabfileError(errors)
    ctx = Deployment(
        token=naming.deployment_token(deployment),
        prefix=naming.name_prefix(deployment),
        group=naming.link_group(deployment),
        alias=naming.link_alias(deployment),
    )
    if error := bounds.ops_count_error(_ops_count(top.get("hosts"))):
        raise LabfileError([*errors, error])  # not worth checking op by op
    hosts = _hosts(top.get("hosts"), ctx, errors)
    if errors:
        raise LabfileError(errors)
    plan = Plan(lab=str(lab), deployment=ctx.token, hosts=hosts)
    if bound_errors := bounds.plan_errors(plan):
        raise LabfileError(bound_errors)
    return plan


def guard_errors(plan: Plan) -> list[FieldError]:
    """Each bridge of `plan` that would come up (or stay) without its guard_bridge op
    before: an agent applies no such plan. Checked when a plan is applied, not by
    `plan_from_dict`, so that the plans of labs an earlier version started, kept in the
    journal, still decode for exec, terminals and status."""
    errors = []
    for host in plan.hosts:
        created: dict[str, int] = {}
        guarded: set[str] = set()
        for index, op in enumerate(host.ops):
            if isinstance(op, CreateBridge):
                created.setdefault(op.name, index)
            elif isinstance(op, GuardBridge):
                guarded.add(op.bridge)
            elif (
                isinstance(op, SetLinkUp)
                and op.netns is None
                and op.ifname in created
                and op.ifname not in guarded
            ):
                guarded.add(op.ifname)  # said once, where it would first come up
                errors.append(_unguarded(host.host, index, op.ifname))
        errors += [
            _unguarded(host.host, index, name)
            for name, index in created.items()
            if name not in guarded
        ]
    return errors


def _unguarded(host: str, index: int, bridge: str) -> FieldError:
    return FieldError(
        f"hosts.{host}.ops.{index}",
        f"bridge {bridge} has no guard_bridge op before it comes up: the host would be "
        "open to its nodes",
    )


def _ops_count(hosts: object) -> int:
    """How many ops the plan's hosts list, counted before any is decoded."""
    if not isinstance(hosts, list):
        return 0
    items = (host.get("ops") for host in hosts if isinstance(host, Mapping))
    return sum(len(ops) for ops in items if isinstance(ops, list))


def _mapping(
    value: object, path: str, keys: Set[str], errors: list[FieldError]
) -> Mapping[str, object] | None:
    if not isinstance(value, Mapping):
        errors.append(FieldError(path, "must be a mapping"))
        return None
    if value.keys() == keys:  # the usual case, checked without building the differences
        return value
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
    *,
    under: str = "",
) -> object:
    """The checked value of `data[key]`; an error at `path` (or `under`.`key`, spelled
    only when needed: thousands of fields pass for one that fails)."""
    if key not in data:
        return None  # reported as missing already
    try:
        return check(data[key])
    except Invalid as invalid:
        errors.append(FieldError(path or f"{under}.{key}", str(invalid)))
        return None


def _hosts(value: object, ctx: Deployment, errors: list[FieldError]) -> tuple[HostPlan, ...]:
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


def _host(item: object, path: str, ctx: Deployment, errors: list[FieldError]) -> HostPlan | None:
    keys = {"host", "deployment", "group", "ops"}
    if isinstance(item, Mapping) and "etc_hosts" in item:
        keys.add("etc_hosts")
    data = _mapping(item, path, keys, errors)
    if data is None:
        return None
    shared = _field(
        data, "etc_hosts", f"{path}.etc_hosts", ctx.checks["spawn_node", "hosts"], errors
    )
    if data.get("deployment") != ctx.token:
        errors.append(FieldError(f"{path}.deployment", f"must be the plan's {ctx.token}"))
    if data.get("group") != ctx.group:
        errors.append(FieldError(f"{path}.group", f"must be {ctx.group}, the deployment's group"))
    ops_value = data.get("ops")
    if not isinstance(ops_value, list):
        errors.append(FieldError(f"{path}.ops", "must be a list"))
        return None
    shared_lines = shared if isinstance(shared, tuple) else None
    # One expander per host plan: nodes with the same own lines share one tuple of lines.
    expand = _expander(shared_lines, ctx.checks["spawn_node", "hosts"])
    shared_checks = {**ctx.checks, ("spawn_node", "hosts"): expand}
    ops = [_op(op, f"{path}.ops.{i}", ctx, shared_checks, errors) for i, op in enumerate(ops_value)]
    return HostPlan(str(data.get("host")), ctx.token, ctx.group, tuple(o for o in ops if o))


def _op(
    item: object,
    path: str,
    ctx: Deployment,
    shared_checks: dict[tuple[str, str], Check],
    errors: list[FieldError],
) -> Op | None:
    """One op; a node's hosts given as {shared, own} are checked by `shared_checks`."""
    kind = item.get("op") if isinstance(item, Mapping) else None
    op_type = OPS_BY_KIND.get(kind) if isinstance(kind, str) else None
    if op_type is None:
        errors.append(FieldError(f"{path}.op", f"{kind!r} is not a known operation"))
        return None
    names = _FIELD_NAMES[op_type.kind]
    defaults = _DEFAULTS[op_type.kind]
    before = len(errors)
    keys = _OP_KEYS[op_type.kind]
    if defaults and isinstance(item, Mapping) and item.keys() != keys:
        keys = frozenset({*item.keys() & defaults.keys(), *(keys - defaults.keys())})
        names = tuple(n for n in names if n in keys)
    data = _mapping(item, path, keys, errors)
    if data is None or len(errors) > before:
        return None
    checks = ctx.checks
    if kind == "spawn_node" and isinstance(data.get("hosts"), Mapping):
        checks = shared_checks
    values = {
        name: _field(data, name, "", checks[op_type.kind, name], errors, under=path)
        for name in names
    }
    if len(errors) > before:
        return None
    op = op_type(**values)
    try:
        check_op(op, ctx)
    except Invalid as invalid:
        field, _, message = str(invalid).partition(": ")
        errors.append(FieldError(f"{path}.{field}", message))
        return None
    return op
