"""Applying a host's plan, destroying a deployment, sweeping what nobody owns.

The plan is decoded and validated by `labplan.codec` before anything runs as root, and
checked against the host's facts so a plan needing a missing feature is refused before
anything is created. Every op is idempotent, so re-applying after a crash converges; a
failed apply is rolled back, and `destroy` works on half-built or already-gone labs
because it finds objects by their names, not only through the journal.

An apply may come with a budget (docs/messages.md): a reservation's puts the deployment's
cgroup in the reservation's (`labmgr/r<id>/<token>`), which holds the share, and the
journal says so (the reservation's cgroup goes with its last lab); a host-wide one, with
no reservation, bounds the deployment's own cgroup. Either way the `labmgr` parent holds
the host's ceiling (workers.kernel.ceiling), which no message changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from labplan import codec, naming, ops, subnets
from labplan.errors import LabfileError
from workers import facts as host_facts
from workers import hostguard
from workers.driver import Driver, Interface
from workers.journal import Journal, Record
from workers.kernel.cgroups import Budget, is_reservation_cgroup
from workers.kernel.processes import UID_LAST, UID_RANGE, NodeProcess, SpawnError, uid_base

# The last slot whose whole range stays inside the nodes' uids (processes.UID_LAST).
MAX_UID_SLOTS = (UID_LAST + 1 - uid_base(0)) // UID_RANGE - 1
# Bounds a budget must lie within: a CPU quota of at least the kernel's 1 ms per 100 ms
# period; memory of at least 1 MiB, below what cgroups can count; pids within pid_max.
BUDGET_CPUS = (0.01, 65_536.0)
BUDGET_MEMORY = (1 << 20, 1 << 62)
BUDGET_PIDS = (1, 1 << 22)
MAX_RESERVATION = (1 << 53) - 1


@dataclass(frozen=True)
class Step:
    """One op of a job, reported as it ends."""

    index: int
    total: int
    kind: str
    target: str
    state: str  # "done" | "failed" | "rolled back"
    seconds: float


@dataclass(frozen=True)
class NodeReport:
    name: str
    pid: int
    netns: str | None
    interfaces: tuple[Interface, ...]
    note: str = ""  # what lminit said the node's user should know, "" for nothing


@dataclass
class ApplyResult:
    token: str
    lab: str
    host: str
    seconds: float
    nodes: list[NodeReport] = field(default_factory=list)


class ApplyError(Exception):
    """The apply failed (and was rolled back); the message says why."""


class RefusedError(ApplyError):
    """The plan needs features this host lacks; nothing was created."""

    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__("this host lacks: " + ", ".join(missing))


class ConflictRefusedError(RefusedError):
    """The subnets the plan routes on this host clash with the host's own routes or
    addresses, or with another deployment's; nothing was created."""

    def __init__(self, conflicts: list[str]) -> None:
        self.missing: list[str] = []
        self.conflicts = conflicts
        ApplyError.__init__(self, "this host cannot route " + "; ".join(conflicts))


class MoveRefusedError(ApplyError):
    """A running deployment was asked to go into another reservation's cgroup (or out of
    its own); nothing was changed."""


Progress = Callable[[Step], None]


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
        expected = Budget(reservation).cgroup
        if data["cgroup"] != expected:
            errors.append(f"cgroup: {data['cgroup']!r} is not {expected!r}")
    if errors or (reservation is None and not host_wide):
        raise ApplyError("the budget is invalid: " + "; ".join(errors))
    return Budget(
        reservation,
        float(cpus) if cpus is not None else None,
        data.get("memory"),
        data.get("pids"),
    )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def deployment_cgroup(token: str, budget: Budget | None) -> str:
    """Where a deployment's cgroup goes below the `labmgr` parent: in its reservation's,
    or, outside reservations, right below the parent."""
    holder = budget.cgroup if budget is not None else None
    return f"{holder}/{token}" if holder is not None else token


def target_of(op: ops.Op) -> str:
    """The object an op is about, for progress lines."""
    match op:
        case ops.CreateNetns(netns=name) | ops.CreateCgroup(cgroup=name):
            return name
        case ops.SetCgroupLimit():
            return f"{op.cgroup} {op.key}={op.value}"
        case ops.CreateBridge(name=name) | ops.CreateVethPair(name=name):
            return name
        case ops.CreateVxlan(name=name):
            return name
        case ops.AttachToBridge():
            return f"{op.link} -> {op.bridge}"
        case ops.CreateMacvlan() | ops.CreateIpvlan():
            return f"{op.netns}:{op.ifname}"
        case ops.AddFdbEntry():
            return f"{op.vxlan} -> {op.dst}"
        case ops.SetLinkUp() | ops.SetShaping():
            return f"{op.netns or 'host'}:{op.ifname}"
        case ops.AddAddress():
            return f"{op.netns or 'host'}:{op.ifname} {op.address}"
        case ops.AddRoute():
            return f"{op.netns} {op.dst} via {op.via}"
        case ops.SetNat() | ops.IsolateBridge():
            return f"{op.bridge} {op.subnet}"
        case ops.GuardBridge():
            return f"{op.bridge} {op.gateway or '(no gateway)'}"
        case ops.SpawnNode():
            return op.node
        case _:
            return ""


class Executor:
    def __init__(
        self,
        data_dir: Path,
        driver_factory: Callable[[], Driver],
        facts: host_facts.Facts | Callable[[], host_facts.Facts] = host_facts.probe,
        progress: Progress | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.journal = Journal(data_dir / "journal")
        self._driver_factory = driver_factory
        self._facts = facts
        self.progress = progress or (lambda step: None)
        self.host = hostguard.HostGuard(data_dir)

    @property
    def facts(self) -> host_facts.Facts:
        if callable(self._facts):
            self._facts = self._facts()
        return self._facts

    # --- apply ----------------------------------------------------------------------------

    def driver(self) -> Driver:
        """A driver session for work beside the executor's own jobs; the caller closes it."""
        return self._driver_factory()

    def apply(self, plan_data: object, host: str, budget: object = None) -> ApplyResult:
        """Decode, check and apply this host's part of a plan (a codec dict), inside the
        reservation's budget if one is given (its message form)."""
        return self.apply_decoded(decode(plan_data), plan_data, host, decode_budget(budget))

    def apply_decoded(
        self, plan: ops.Plan, plan_data: object, host: str, budget: Budget | None = None
    ) -> ApplyResult:
        """`apply` for a caller that has already decoded `plan_data` and the budget."""
        host_plan = plan.for_host(host)
        if host_plan is None:
            raise ApplyError(f"the plan has nothing for host {host!r}")
        missing = host_facts.check_plan(self.facts, host_plan)
        if missing:
            raise RefusedError(missing)
        self.check_subnets(host_plan)
        self.check_move(host_plan.deployment, budget)
        return self._apply(plan.lab, host_plan, plan_data, budget)

    def check_subnets(self, plan: ops.HostPlan) -> None:
        """Refuse a plan routing a subnet this host cannot route: one shadowing a route or
        an address of the host, or another deployment's (the control plane checked too;
        the broker is not trusted to have asked it)."""
        if not subnets.routed_subnets(plan):
            return
        driver = self._driver_factory()
        try:
            problems = hostguard.conflicts(driver, plan, self.journal)
        finally:
            driver.close()
        if problems:
            raise ConflictRefusedError(problems)

    def check_move(self, token: str, budget: Budget | None) -> None:
        """Refuse to apply a deployment inside another cgroup than the one it runs in: a
        running node's processes cannot follow its cgroup elsewhere."""
        record = self.journal.read(token)
        wanted = deployment_cgroup(token, budget)
        if record is not None and "plan" in record.header and record.cgroup != wanted:
            where = record.reservation_cgroup
            now = f"reservation cgroup {where}" if where else "no reservation"
            asked = budget.cgroup if budget is not None else None
            then = f"reservation cgroup {asked}" if asked else "no reservation"
            raise MoveRefusedError(
                f"{token} runs in {now}, not {then}; destroy and deploy it again to move it"
            )

    def _apply(
        self, lab: str, plan: ops.HostPlan, plan_data: object, budget: Budget | None
    ) -> ApplyResult:
        started = time.monotonic()
        token = plan.deployment
        previous = self.journal.read(token)
        slots = self._uid_slots(token, plan, previous)
        header = {"token": token, "lab": lab, "host": plan.host, "group": plan.group}
        if budget is not None:
            header |= {"budget": budget.to_dict(), "cgroup": deployment_cgroup(token, budget)}
        self.journal.append(token, {**header, "plan": plan_data})
        driver = self._driver_factory()
        result = ApplyResult(token, lab, plan.host, 0.0)
        try:
            # The host-wide rules the journal now says (this plan's included) come first.
            self.host.sync(driver, self.journal)
            if budget is not None:
                self._place(driver, token, budget)
            self._run_all(driver, plan, previous, slots, result)
            self.journal.append(token, {"state": "applied"})
        except Exception as exc:
            self.journal.append(token, {"state": "failed", "error": str(exc)})
            cgroup = deployment_cgroup(token, budget)
            self._teardown(driver, token, plan.group, self._rolled_back, cgroup)
            self.journal.remove(token)
            self.host.sync(driver, self.journal)
            raise ApplyError(
                f"{type(exc).__name__}: {exc}; the deployment was rolled back"
            ) from exc
        finally:
            self.journal.close(token)
            driver.close()
        result.seconds = time.monotonic() - started
        return result

    @staticmethod
    def _place(driver: Driver, token: str, budget: Budget) -> None:
        """The reservation's cgroup with its share written (again: a share may have
        changed), then the deployment's inside it, before any node cgroup: those are
        found below wherever the deployment's is. A host-wide budget is written on the
        deployment's own cgroup."""
        holder = budget.cgroup or token
        driver.ensure_cgroup(holder)
        for key, value in budget.limits():
            driver.set_cgroup_limit(holder, key, value)
        driver.ensure_cgroup(deployment_cgroup(token, budget))

    def _run_all(
        self,
        driver: Driver,
        plan: ops.HostPlan,
        previous: Record | None,
        slots: dict[str, int],
        result: ApplyResult,
    ) -> None:
        nodes = dict(previous.nodes) if previous else {}
        index = 0
        while index < len(plan.ops):
            op = plan.ops[index]
            if isinstance(op, ops.SpawnNode):
                # Nodes start together: a run of spawns is one parallel step of the job.
                end = index
                while end < len(plan.ops) and isinstance(plan.ops[end], ops.SpawnNode):
                    end += 1
                self._spawn_run(driver, plan, index, end, nodes, slots, result)
                index = end
                continue
            self.journal.append(plan.deployment, {"op": index, "kind": op.kind})
            began = time.monotonic()
            try:
                self._run(driver, plan, op)
            except Exception:
                self._report(plan, index, "failed", 0.0)
                raise
            self._report(plan, index, "done", time.monotonic() - began)
            index += 1
        result.nodes = [
            NodeReport(n.name, n.pid, n.netns, tuple(driver.interfaces(n.netns)), n.note)
            for n in result.nodes
        ]

    def _report(self, plan: ops.HostPlan, index: int, state: str, seconds: float) -> None:
        op = plan.ops[index]
        self.progress(Step(index, len(plan.ops), op.kind, target_of(op), state, seconds))

    def _run(self, driver: Driver, plan: ops.HostPlan, op: ops.Op) -> None:
        """One op other than a spawn; every branch is idempotent."""
        match op:
            case ops.CreateNetns():
                driver.ensure_netns(op.netns)
            case ops.CreateCgroup():
                driver.ensure_cgroup(op.cgroup)
            case ops.SetCgroupLimit():
                driver.set_cgroup_limit(op.cgroup, op.key, op.value)
            case ops.CreateBridge():
                driver.ensure_bridge(op)
            case ops.CreateVethPair():
                driver.ensure_veth(op)
            case ops.AttachToBridge():
                driver.attach(op.link, op.bridge)
            case ops.CreateMacvlan():
                driver.ensure_macvlan(op)
            case ops.CreateIpvlan():
                driver.ensure_ipvlan(op)
            case ops.CreateVxlan():
                driver.ensure_vxlan(op)
            case ops.AddFdbEntry():
                driver.ensure_fdb(op.vxlan, op.dst)
            case ops.SetLinkUp():
                driver.set_up(op.netns, op.ifname)
            case ops.AddAddress():
                driver.ensure_address(op.netns, op.ifname, op.address)
            case ops.AddRoute():
                driver.ensure_route(op.netns, op.dst, op.via)
            case ops.SetNat():
                driver.set_nat(plan.deployment, op.bridge, op.subnet)
            case ops.IsolateBridge():
                driver.isolate(plan.deployment, op.bridge, op.subnet)
            case ops.GuardBridge():
                driver.guard_bridge(plan.deployment, op.bridge, op.gateway)
            case ops.SetShaping():
                driver.set_shaping(op)
            case _:
                raise ApplyError(f"unknown operation {op.kind}")

    def _spawn_run(
        self,
        driver: Driver,
        plan: ops.HostPlan,
        first: int,
        end: int,
        nodes: dict[str, NodeProcess],
        slots: dict[str, int],
        result: ApplyResult,
    ) -> None:
        """Start the nodes of ops[first:end] that are not running, together, then journal
        and report each in plan order. Each is idempotent: a running node is kept."""
        began = time.monotonic()
        spawns = [cast(ops.SpawnNode, op) for op in plan.ops[first:end]]
        starts: list[tuple[ops.SpawnNode, int | None]] = []
        for offset, op in enumerate(spawns):
            self.journal.append(plan.deployment, {"op": first + offset, "kind": op.kind})
            running = nodes.get(op.node)
            if running is not None and driver.alive(running):
                continue
            # A node half-started by a crashed apply leaves processes in its cgroup.
            driver.kill_cgroup(op.cgroup)
            nodes.pop(op.node, None)
            base = slots.get(op.node) if "user" in op.namespaces and not op.privileged else None
            starts.append((op, base))
        try:
            started = driver.spawn_all(starts, plan.deployment)
        except Exception as exc:
            failed = exc.node if isinstance(exc, SpawnError) else starts[0][0].node
            self._report(plan, first + [o.node for o in spawns].index(failed), "failed", 0.0)
            raise
        for (op, _), process in zip(starts, started, strict=True):
            nodes[op.node] = process
            self.journal.append(
                plan.deployment,
                {
                    "node": op.node,
                    "pid": process.pid,
                    "start": process.start,
                    "uid_base": slots.get(op.node),
                    **({"note": process.note} if process.note else {}),
                },
            )
        elapsed = time.monotonic() - began
        for offset, op in enumerate(spawns):
            process = nodes[op.node]
            result.nodes.append(NodeReport(op.node, process.pid, op.netns, (), process.note))
            # The nodes started together: the run's time is counted once, not per node.
            self._report(plan, first + offset, "done", elapsed if offset == 0 else 0.0)

    def _uid_slots(self, token: str, plan: ops.HostPlan, previous: Record | None) -> dict[str, int]:
        """Each user-namespaced node's outside uid base: kept across re-applies, else the
        lowest range no other deployment of this host uses."""
        kept = dict(previous.uid_bases) if previous else {}
        used = set(kept.values())
        for other in self.journal.tokens():
            record = self.journal.read(other) if other != token else None
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

    def _rolled_back(self, what: str) -> None:
        self.progress(Step(0, 0, "rollback", what, "rolled back", 0.0))

    # --- destroy and sweep ----------------------------------------------------------------

    def destroy(self, token: str) -> list[str]:
        """Remove everything of the deployment on this host; what was removed, by name."""
        record = self.journal.read(token)
        group = record.header.get("group") if record else None
        if group is None:
            deployment = naming.deployment_from_token(token)
            if deployment is None:
                raise ApplyError(f"{token!r} is not a deployment token")
            group = naming.link_group(deployment)
        removed: list[str] = []
        driver = self._driver_factory()
        try:
            cgroup = record.cgroup if record else self._found_cgroup(driver, token)
            self._teardown(driver, token, int(group), removed.append, cgroup)
            if self.journal.remove(token):
                removed.append(f"journal {token}")
            self.host.sync(driver, self.journal)
        finally:
            driver.close()
        return removed

    @staticmethod
    def _found_cgroup(driver: Driver, token: str) -> str:
        """Where a deployment without a journal has its cgroup: inside a reservation's
        if one holds it, else under the parent."""
        inside = [c for c in driver.cgroup_children() if c.rpartition("/")[2] == token]
        return next((c for c in inside if "/" in c), token)

    def _teardown(
        self,
        driver: Driver,
        token: str,
        group: int,
        report: Callable[[str], None],
        cgroup: str | None = None,
    ) -> None:
        """Reverse of the build: processes, firewall, host links, namespaces, cgroups
        (the reservation's too when this was its last lab), files. Each step accepts
        "already gone"."""
        cgroup = cgroup or token
        # Processes die and cgroups go while links and namespaces go.
        driver.start_removing_cgroup(cgroup)
        try:
            self._remove_network(driver, token, group, report)
        finally:
            killed, removed = driver.finish_removing_cgroup(cgroup)
        if killed:
            report(f"{killed} processes in cgroup {cgroup}")
        if removed:
            report(f"cgroup {cgroup}")
        holder = cgroup.rpartition("/")[0]
        if holder and driver.remove_cgroup(holder):  # only when no lab is left in it
            report(f"cgroup {holder}")
        if driver.remove_files(token):
            report(f"files of {token}")

    @staticmethod
    def _remove_network(
        driver: Driver, token: str, group: int, report: Callable[[str], None]
    ) -> None:
        """Firewall table, host-side links, network namespaces of the deployment."""
        if driver.remove_firewall(token):
            report(f"nftables table {token}")
        prefix = token + "-"
        owned = [
            name
            for name, alias in driver.host_links()
            if name.startswith(prefix) or alias == naming.ALIAS_PREFIX + token
        ]
        driver.remove_link_group(group)
        for name in owned:
            driver.remove_link(name)  # those outside the group, if any
            report(f"link {name}")
        for name in driver.netns_names(prefix):
            if driver.remove_netns(name):
                report(f"netns {name}")

    def sweep(self, live: Iterable[str]) -> list[str]:
        """Destroy every deployment found on this host that is not in `live`."""
        keep = set(live)
        removed: list[str] = []
        for token in sorted(self.found_tokens() - keep):
            removed.extend(self.destroy(token))
        removed.extend(self._sweep_reservations())
        driver = self._driver_factory()
        try:
            self.host.sync(driver, self.journal)  # forwarding back as it was with no lab
        finally:
            driver.close()
        return removed

    def _sweep_reservations(self) -> list[str]:
        """Remove the reservations' cgroups no lab is left in (a crash between a lab's
        cgroup and its reservation's); one still holding a lab is kept."""
        removed: list[str] = []
        driver = self._driver_factory()
        try:
            for name in driver.cgroup_children():
                if is_reservation_cgroup(name) and driver.remove_cgroup(name):
                    removed.append(f"cgroup {name}")
        finally:
            driver.close()
        return removed

    def found_tokens(self) -> set[str]:
        """Tokens of every deployment with anything left on this host."""
        names: list[str] = list(self.journal.tokens())
        driver = self._driver_factory()
        try:
            # Flat names carry "-" after the token; others starting with "lm" are not ours.
            names += [n for n in driver.netns_names(naming.PREFIX) if "-" in n]
            for name, alias in driver.host_links():
                if name.startswith(naming.PREFIX) and "-" in name:
                    names.append(name)
                if alias and alias.startswith(naming.ALIAS_PREFIX):
                    names.append(alias.removeprefix(naming.ALIAS_PREFIX))
            # Deployments inside a reservation's cgroup are listed as "r5/lm1".
            names += [c.rpartition("/")[2] for c in driver.cgroup_children()]
            names += driver.firewall_tables()
        finally:
            driver.close()
        tokens = {name.split("-", 1)[0] for name in names}
        return {t for t in tokens if naming.deployment_from_token(t) is not None}

    # --- status ---------------------------------------------------------------------------

    def status(self, token: str) -> tuple[Record | None, list[NodeReport], dict[str, bool]]:
        """The journal, the nodes with their interfaces now, and whether each init lives."""
        record = self.journal.read(token)
        if record is None:
            return None, [], {}
        plan = codec.plan_from_dict(record.header["plan"]).for_host(record.header["host"])
        spawns = [op for op in plan.ops if isinstance(op, ops.SpawnNode)] if plan else []
        driver = self._driver_factory()
        reports: list[NodeReport] = []
        alive: dict[str, bool] = {}
        try:
            for op in spawns:
                process = record.nodes.get(op.node)
                alive[op.node] = process is not None and driver.alive(process)
                interfaces = (
                    tuple(driver.interfaces(op.netns))
                    if op.netns is None or op.netns in driver.netns_names(op.netns)
                    else ()
                )
                reports.append(
                    NodeReport(op.node, process.pid if process else 0, op.netns, interfaces)
                )
        finally:
            driver.close()
        return record, reports, alive
