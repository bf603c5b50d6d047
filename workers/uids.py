"""Which outside uids each user-namespaced node of a deployment gets: a range of its own
(processes.UID_RANGE wide) that no other deployment of this host uses, kept across
re-applies so a running node's files keep their owners."""

from __future__ import annotations

from labplan import ops
from workers.errors import ApplyError
from workers.journal import Journal, Record
from workers.kernel.processes import UID_LAST, UID_RANGE, uid_base

# The last slot whose whole range stays inside the nodes' uids (processes.UID_LAST).
MAX_UID_SLOTS = (UID_LAST + 1 - uid_base(0)) // UID_RANGE - 1


def uid_slots(journal: Journal, plan: ops.HostPlan, previous: Record | None) -> dict[str, int]:
    """Each user-namespaced node's outside uid base: kept across re-applies, else the
    lowest range no other deployment of this host uses."""
    kept = dict(previous.uid_bases) if previous else {}
    used = set(kept.values())
    for other in journal.tokens():
        record = journal.read(other) if other != plan.deployment else None
        if record is not None:
            used.update(record.uid_bases.values())
    slot = 1
    bases: dict[str, int] = {}
    for op in plan.ops:
        if not isinstance(op, ops.SpawnNode) or "user" not in op.namespaces:
            continue
        if op.node in kept:
            bases[op.node] = kept[op.node]
            continue
        while uid_base(slot) in used:
            slot += 1
        if slot > MAX_UID_SLOTS:
            raise ApplyError("no free uid range left for another user namespace")
        bases[op.node] = uid_base(slot)
        used.add(bases[op.node])
    return bases
