"""What a message hands the agent, decoded and checked at the privilege boundary before
anything runs as root: the plan (`labplan.codec`, with the guards an apply needs) and
the budget of docs/messages.md."""

from __future__ import annotations

import math

from labplan import codec, ops
from labplan.errors import LabfileError
from labplan.messages import Budget, budget_for, reservation_cgroup
from workers.errors import ApplyError

# Bounds a budget must lie within: a CPU quota of at least the kernel's 1 ms per 100 ms
# period; memory of at least 1 MiB, below what cgroups can count; pids within pid_max.
BUDGET_CPUS = (0.01, 65_536.0)
BUDGET_MEMORY = (1 << 20, 1 << 62)
BUDGET_PIDS = (1, 1 << 22)
MAX_RESERVATION = (1 << 53) - 1


def decode(plan_data: object) -> ops.Plan:
    """The plan a codec dict stands for, checked at the privilege boundary."""
    try:
        plan = codec.plan_from_dict(plan_data)
        if unguarded := codec.guard_errors(plan):
            raise LabfileError(unguarded)
    except LabfileError as exc:
        raise ApplyError(f"the plan is invalid:\n{exc}") from exc
    return plan


def decode_budget(data: object) -> Budget | None:
    """The budget an apply carries, checked at the privilege boundary: a reservation's
    integer id (or null: a host-wide budget outside reservations), each bound null or a
    number in range, nothing else. `cgroup`, when sent, must be the name the agent derives
    from the id, null without one (a path is never taken from a message). Whatever it
    says, the `labmgr` parent's own ceiling holds."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ApplyError("the budget is invalid: not an object")
    errors: list[str] = []
    unknown = sorted(set(data) - {"reservation", "cgroup", "cpus", "memory", "pids"})
    if unknown:
        errors.append(f"unknown fields {', '.join(map(str, unknown))}")
    given = data.get("reservation", "absent")
    host_wide = given is None
    reservation = given if isinstance(given, int) and not isinstance(given, bool) else None
    if not host_wide and (reservation is None or not 1 <= reservation <= MAX_RESERVATION):
        errors.append(f"reservation: an integer id is needed, not {given!r}")
        reservation = None
    cpus = data.get("cpus")
    if cpus is not None and not (
        isinstance(cpus, int | float)
        and not isinstance(cpus, bool)
        and math.isfinite(cpus)
        and BUDGET_CPUS[0] <= cpus <= BUDGET_CPUS[1]
    ):
        errors.append(f"cpus: null or a number from {BUDGET_CPUS[0]} to {BUDGET_CPUS[1]:g}")
    for kind, (low, high) in (("memory", BUDGET_MEMORY), ("pids", BUDGET_PIDS)):
        value = data.get(kind)
        if value is not None and not (_is_int(value) and low <= value <= high):
            errors.append(f"{kind}: null or an integer from {low} to {high}")
    if (reservation is not None or host_wide) and "cgroup" in data:
        expected = reservation_cgroup(reservation) if reservation is not None else None
        if data["cgroup"] != expected:
            errors.append(f"cgroup: {data['cgroup']!r} is not {expected!r}")
    if errors or (reservation is None and not host_wide):
        raise ApplyError("the budget is invalid: " + "; ".join(errors))
    return budget_for(
        reservation,
        float(cpus) if cpus is not None else None,
        data.get("memory"),
        data.get("pids"),
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
