"""Applying a host's plan, destroying a deployment, sweeping what nobody owns.

The plan is decoded and validated by `labplan.codec` before anything runs as root, and
checked against the host's facts so a plan needing a missing feature is refused before
anything is created. Every op is idempotent, so re-applying after a crash converges; a
failed apply is rolled back, and `destroy` works on half-built or already-gone labs
because it finds objects by their names, not only through the journal.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from labplan import codec, naming, ops
from labplan.errors import LabfileError
from workers import facts as host_facts
from workers.driver import Driver, Interface
from workers.journal import Journal, Record
from workers.kernel.processes import NodeProcess, SpawnError, uid_base

MAX_UID_SLOTS = 65_000  # 100000 + 65536 * slot stays below 2**32


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


Progress = Callable[[Step], None]


def decode(plan_data: object) -> ops.Plan:
    """The plan a codec dict stands for, checked at the privilege boundary."""
    try:
        return codec.plan_from_dict(plan_data)
    except LabfileError as exc:
        raise ApplyError(f"the plan is invalid:\n{exc}") from exc


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

    @property
    def facts(self) -> host_facts.Facts:
        if callable(self._facts):
            self._facts = self._facts()
        return self._facts

    # --- apply ----------------------------------------------------------------------------

    def driver(self) -> Driver:
        """A driver session for work beside the executor's own jobs; the caller closes it."""
        return self._driver_factory()

    def apply(self, plan_data: object, host: str) -> ApplyResult:
        """Decode, check and apply this host's part of a plan (a codec dict)."""
        return self.apply_decoded(decode(plan_data), plan_data, host)

    def apply_decoded(self, plan: ops.Plan, plan_data: object, host: str) -> ApplyResult:
        """`apply` for a caller that has already decoded `plan_data` into `plan`."""
        host_plan = plan.for_host(host)
        if host_plan is None:
            raise ApplyError(f"the plan has nothing for host {host!r}")
        missing = host_facts.check_plan(self.facts, host_plan)
        if missing:
            raise RefusedError(missing)
        return self._apply(plan.lab, host_plan, plan_data)

    def _apply(self, lab: str, plan: ops.HostPlan, plan_data: object) -> ApplyResult:
        started = time.monotonic()
        token = plan.deployment
        previous = self.journal.read(token)
        slots = self._uid_slots(token, plan, previous)
        self.journal.append(
            token,
            {"token": token, "lab": lab, "host": plan.host, "group": plan.group, "plan": plan_data},
        )
        driver = self._driver_factory()
        result = ApplyResult(token, lab, plan.host, 0.0)
        try:
            self._run_all(driver, plan, previous, slots, result)
            self.journal.append(token, {"state": "applied"})
        except Exception as exc:
            self.journal.append(token, {"state": "failed", "error": str(exc)})
            self._teardown(driver, token, plan.group, report=self._rolled_back)
            self.journal.remove(token)
            raise ApplyError(
                f"{type(exc).__name__}: {exc}; the deployment was rolled back"
            ) from exc
        finally:
            self.journal.close(token)
            driver.close()
        result.seconds = time.monotonic() - started
        return result

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
            NodeReport(n.name, n.pid, n.netns, tuple(driver.interfaces(n.netns)))
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
                },
            )
        elapsed = time.monotonic() - began
        for offset, op in enumerate(spawns):
            process = nodes[op.node]
            result.nodes.append(NodeReport(op.node, process.pid, op.netns, ()))
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
            self._teardown(driver, token, int(group), report=removed.append)
        finally:
            driver.close()
        if self.journal.remove(token):
            removed.append(f"journal {token}")
        return removed

    def _teardown(
        self, driver: Driver, token: str, group: int, report: Callable[[str], None]
    ) -> None:
        """Reverse of the build: processes, firewall, host links, namespaces, cgroups,
        files. Each step accepts "already gone"."""
        # Processes die and cgroups go while links and namespaces go.
        driver.start_removing_cgroup(token)
        try:
            self._remove_network(driver, token, group, report)
        finally:
            killed, removed = driver.finish_removing_cgroup(token)
        if killed:
            report(f"{killed} processes in cgroup {token}")
        if removed:
            report(f"cgroup {token}")
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
            names += driver.cgroup_children()
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
