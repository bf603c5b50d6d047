"""Applying a host's plan: op by op, reported as it goes, rolled back when it fails.

The plan is decoded and validated (workers.decoding) before anything runs as root, and
checked against the host's facts so a plan needing a missing feature is refused before
anything is created. Every op is idempotent, so re-applying after a crash converges; a
failed apply is rolled back (workers.teardown, which also destroys and sweeps).

An apply may come with a budget (docs/messages.md): a reservation's puts the deployment's
cgroup in the reservation's (`labmgr/r<id>/<token>`), which holds the share, and the
journal says so (the reservation's cgroup goes with its last lab); a host-wide one, with
no reservation, bounds the deployment's own cgroup. Either way the `labmgr` parent holds
the host's ceiling (workers.kernel.ceiling), which no message changes.

A plan's images are pulled first (its `pull_image` ops, workers.images), before any kernel
object is made, so a missing image or an unreachable registry fails the apply with nothing
to undo; each node of an image then starts from the image's unpacked tree with the
image's config (Entrypoint, Cmd, Env, WorkingDir, User) under the labfile's overrides.
"""

from __future__ import annotations

import dataclasses
import errno
import shlex
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from labplan import ops, subnets
from labplan.messages import (
    STEP_DONE,
    STEP_FAILED,
    STEP_ROLLED_BACK,
    STEP_RUNNING,
    Budget,
    RegistryLogin,
    StepState,
)
from workers import facts as host_facts
from workers import hostguard
from workers.decoding import decode, decode_budget
from workers.driver import Driver, Interface, NodeProcess
from workers.errors import ApplyError, ConflictRefusedError, MoveRefusedError, RefusedError
from workers.journal import Journal, Record
from workers.kernel.cgroups import budget_limits
from workers.kernel.processes import UID_RANGE, SpawnError
from workers.teardown import Teardown, teardown
from workers.uids import uid_slots

if TYPE_CHECKING:
    from workers.images.store import Image, ImageStore, PullProgress


EXEC_OUTPUT_SHOWN = 4000  # characters of an exec command's output a step keeps


@dataclass(frozen=True)
class Step:
    """One op of a job, reported as it ends."""

    index: int
    total: int
    kind: str
    target: str
    state: StepState
    seconds: float
    detail: str = ""  # what a running step has done so far, or why a step failed


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
    images: dict[str, str] = field(default_factory=dict)  # reference -> digest it ran


Progress = Callable[[Step], None]


def deployment_cgroup(token: str, budget: Budget | None) -> str:
    """Where a deployment's cgroup goes below the `labmgr` parent: in its reservation's,
    or, outside reservations, right below the parent."""
    holder = budget["cgroup"] if budget is not None else None
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
        case ops.CreateMacvlan() | ops.CreateIpvlan() | ops.CreateVlan() | ops.CreateDummy():
            return f"{op.netns}:{op.ifname}"
        case ops.CreateTunnel():
            return f"{op.netns}:{op.ifname} -> {op.remote}"
        case ops.SetAltname():
            return f"{op.link} ({op.altname})"
        case ops.SetPortVlans():
            return f"{op.link} pvid {op.pvid} tagged {','.join(map(str, op.tagged)) or '-'}"
        case ops.AddBridgeVlan():
            return f"{op.bridge} vid {op.vid}"
        case ops.CreatePeerLink():
            return f"{op.netns}:{op.ifname} <-> {op.peer_netns}:{op.peer_ifname}"
        case ops.AddFdbEntry():
            return f"{op.vxlan} -> {op.dst}"
        case ops.SetLinkUp() | ops.SetShaping():
            return f"{op.netns or 'host'}:{op.ifname}"
        case ops.AddAddress():
            return f"{op.netns or 'host'}:{op.ifname} {op.address}"
        case ops.AddRoute():
            return f"{op.netns} {op.dst} via {op.via}"
        case ops.SetSysctl():
            return f"{op.netns} {op.key}={op.value}"
        case ops.CreateVolume():
            return f"{op.volume} ({op.size} bytes)"
        case ops.SetNat() | ops.IsolateBridge():
            return f"{op.bridge} {op.subnet}"
        case ops.GuardBridge():
            return f"{op.bridge} {op.gateway or '(no gateway)'}" + (
                f" {op.gateway6}" if op.gateway6 else ""
            )
        case ops.SpawnNode():
            return op.node
        case ops.PullImage():
            return op.ref if op.digest is None or op.digest in op.ref else f"{op.ref} ({op.digest})"
        case ops.ExecInNode():
            return f"{op.node}: {shlex.join(op.command)}"
        case _:
            return ""


class Executor:
    def __init__(
        self,
        data_dir: Path,
        driver_factory: Callable[[], Driver],
        facts: host_facts.Facts | Callable[[], host_facts.Facts] = host_facts.probe,
        progress: Progress | None = None,
        images: Callable[[], ImageStore] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self._images = images
        self._store: ImageStore | None = None
        self.journal = Journal(data_dir / "journal")
        self._driver_factory = driver_factory
        self._facts = facts
        self.progress = progress or (lambda step: None)
        self.host = hostguard.HostGuard(data_dir)
        self.teardown = Teardown(self.journal, driver_factory, self.host)

    @property
    def facts(self) -> host_facts.Facts:
        if callable(self._facts):
            self._facts = self._facts()
        return self._facts

    @property
    def images(self) -> ImageStore:
        """The host's image store (made on first use: a lab without images needs none)."""
        if self._store is None:
            if self._images is not None:
                self._store = self._images()
            else:
                from workers.images.store import ImageStore

                self._store = ImageStore.from_env(self.data_dir)
        return self._store

    # --- apply ----------------------------------------------------------------------------

    def driver(self) -> Driver:
        """A driver session for work beside the executor's own jobs; the caller closes it."""
        return self._driver_factory()

    def apply(
        self,
        plan_data: object,
        host: str,
        budget: object = None,
        logins: Sequence[RegistryLogin] = (),
    ) -> ApplyResult:
        """Decode, check and apply this host's part of a plan (a codec dict), inside the
        reservation's budget if one is given (its message form), pulling its images with
        the registry `logins` an admin set."""
        return self.apply_decoded(decode(plan_data), plan_data, host, decode_budget(budget), logins)

    def apply_decoded(
        self,
        plan: ops.Plan,
        plan_data: object,
        host: str,
        budget: Budget | None = None,
        logins: Sequence[RegistryLogin] = (),
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
        return self._apply(plan.lab, host_plan, plan_data, budget, logins)

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
            asked = budget["cgroup"] if budget is not None else None
            then = f"reservation cgroup {asked}" if asked else "no reservation"
            raise MoveRefusedError(
                f"{token} runs in {now}, not {then}; destroy and deploy it again to move it"
            )

    def _apply(
        self,
        lab: str,
        plan: ops.HostPlan,
        plan_data: object,
        budget: Budget | None,
        logins: Sequence[RegistryLogin] = (),
    ) -> ApplyResult:
        started = time.monotonic()
        token = plan.deployment
        previous = self.journal.read(token)
        slots = uid_slots(self.journal, plan, previous)
        header = {"token": token, "lab": lab, "host": plan.host, "group": plan.group}
        if budget is not None:
            # The share as the journal has always kept it: its cgroup is the header's.
            share = {kind: value for kind, value in budget.items() if kind != "cgroup"}
            header |= {"budget": share, "cgroup": deployment_cgroup(token, budget)}
        self.journal.append(token, {**header, "plan": plan_data})
        driver = self._driver_factory()
        result = ApplyResult(token, lab, plan.host, 0.0)
        try:
            # Images before any kernel object: a pull that fails leaves nothing to undo.
            pulled = self._pull_all(plan, logins, result)
            # The host-wide rules the journal now says (this plan's included) come first.
            self.host.sync(driver, self.journal)
            if budget is not None:
                self._place(driver, token, budget)
            self._run_all(driver, plan, previous, slots, result, pulled)
            self.journal.append(token, {"state": "applied"})
        except Exception as exc:
            self.journal.append(token, {"state": "failed", "error": str(exc)})
            cgroup = deployment_cgroup(token, budget)
            teardown(driver, token, plan.group, self._rolled_back, cgroup)
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
        holder = budget["cgroup"] or token
        driver.ensure_cgroup(holder)
        for key, value in budget_limits(budget):
            driver.set_cgroup_limit(holder, key, value)
        driver.ensure_cgroup(deployment_cgroup(token, budget))

    def _run_all(
        self,
        driver: Driver,
        plan: ops.HostPlan,
        previous: Record | None,
        slots: dict[str, int],
        result: ApplyResult,
        pulled: dict[str, Image] | None = None,
    ) -> None:
        nodes = dict(previous.nodes) if previous else {}
        started: dict[str, ops.SpawnNode] = {}  # the nodes this apply starts, as started
        index = 0
        while index < len(plan.ops):
            op = plan.ops[index]
            if isinstance(op, ops.PullImage):  # done first, by _pull_all
                index += 1
                continue
            if isinstance(op, ops.SpawnNode):
                # Nodes start together: a run of spawns is one parallel step of the job.
                end = index
                while end < len(plan.ops) and isinstance(plan.ops[end], ops.SpawnNode):
                    end += 1
                self._spawn_run(
                    driver, plan, index, end, nodes, slots, result, pulled or {}, started
                )
                index = end
                continue
            if isinstance(op, ops.ExecInNode):
                self._exec(driver, plan, index, nodes, started)
                index += 1
                continue
            self.journal.append(plan.deployment, {"op": index, "kind": op.kind})
            began = time.monotonic()
            try:
                self._run(driver, plan, op)
            except Exception:
                self._report(plan, index, STEP_FAILED, 0.0)
                raise
            self._report(plan, index, STEP_DONE, time.monotonic() - began)
            index += 1
        # A redeploy that drops a volume (or every node mounting it here) frees it.
        driver.prune_volumes(
            plan.deployment, {op.volume for op in plan.ops if isinstance(op, ops.CreateVolume)}
        )
        result.nodes = [
            NodeReport(n.name, n.pid, n.netns, tuple(driver.interfaces(n.netns)), n.note)
            for n in result.nodes
        ]

    def _report(
        self, plan: ops.HostPlan, index: int, state: StepState, seconds: float, detail: str = ""
    ) -> None:
        op = plan.ops[index]
        self.progress(Step(index, len(plan.ops), op.kind, target_of(op), state, seconds, detail))

    def _pull_all(
        self, plan: ops.HostPlan, logins: Sequence[RegistryLogin], result: ApplyResult
    ) -> dict[str, Image]:
        """Every image of the plan in the host's store (pulled when missing), each a step
        reported as it goes; the first that cannot be had fails the apply, naming the
        nodes that wanted it."""
        from workers.images.store import ImageError

        pulled: dict[str, Image] = {}
        for index, op in enumerate(plan.ops):
            if not isinstance(op, ops.PullImage):
                continue
            self.journal.append(plan.deployment, {"op": index, "kind": op.kind})
            began = time.monotonic()

            def running(progress: PullProgress, index: int = index, began: float = began) -> None:
                self._report(plan, index, STEP_RUNNING, time.monotonic() - began, progress.text)

            try:
                image = self.images.ensure(op.ref, op.digest, logins=logins, progress=running)
            except ImageError as exc:
                users = [
                    o.node for o in plan.ops if isinstance(o, ops.SpawnNode) and o.image == op.ref
                ]
                who = ", ".join(users) or "no node"
                self._report(plan, index, STEP_FAILED, time.monotonic() - began, str(exc))
                raise ApplyError(f"node {who}: {exc}") from None
            self.images.touch(image.digest)
            self.journal.append(plan.deployment, {"image": op.ref, "digest": image.digest})
            pulled[op.ref] = image
            result.images[op.ref] = image.digest
            self._report(plan, index, STEP_DONE, time.monotonic() - began, image.digest)
        return pulled

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
            case ops.CreatePeerLink():
                driver.ensure_peer_link(op)
            case ops.CreateDummy():
                driver.ensure_dummy(op)
            case ops.CreateTunnel():
                driver.ensure_tunnel(op)
            case ops.SetAltname():
                driver.set_altname(op.link, op.altname)
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
            case ops.CreateVolume():
                driver.ensure_volume(plan.deployment, op.volume, op.size)
            case ops.SetSysctl():
                try:
                    driver.set_sysctl(op.netns, op.key, op.value)
                except OSError as exc:
                    reason = {errno.ENOENT: "the kernel has no such sysctl here"}.get(
                        exc.errno or 0, exc.strerror or str(exc)
                    )
                    raise ApplyError(
                        f"nodes.{op.node}.sysctls.{op.key}: {op.value!r} not set: {reason}"
                    ) from None
            case ops.SetNat():
                driver.set_nat(plan.deployment, op.bridge, op.subnet)
            case ops.IsolateBridge():
                driver.isolate(plan.deployment, op.bridge, op.subnet)
            case ops.GuardBridge():
                driver.guard_bridge(plan.deployment, op.bridge, op.gateway, op.gateway6)
            case ops.SetShaping():
                driver.set_shaping(op)
            case ops.SetPortVlans():
                driver.set_port_vlans(op)
            case ops.AddBridgeVlan():
                driver.add_bridge_vlan(op.bridge, op.vid)
            case ops.CreateVlan():
                driver.ensure_vlan(op)
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
        pulled: dict[str, Image],
        started: dict[str, ops.SpawnNode],
    ) -> None:
        """Start the nodes of ops[first:end] that are not running, together, then journal
        and report each in plan order. Each is idempotent: a running node is kept.
        `started` gains the nodes started, with their spawn as run (an image's config in)."""
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
            try:
                starts.append((resolved_spawn(op, pulled), base))
            except ApplyError:
                self._report(plan, first + offset, STEP_FAILED, 0.0)
                raise
        try:
            spawned = driver.spawn_all(starts, plan.deployment)
        except Exception as exc:
            failed = exc.node if isinstance(exc, SpawnError) else starts[0][0].node
            self._report(plan, first + [o.node for o in spawns].index(failed), STEP_FAILED, 0.0)
            raise
        for (op, _), process in zip(starts, spawned, strict=True):
            nodes[op.node] = process
            started[op.node] = op
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
            self._report(plan, first + offset, STEP_DONE, elapsed if offset == 0 else 0.0)

    def _exec(
        self,
        driver: Driver,
        plan: ops.HostPlan,
        index: int,
        nodes: dict[str, NodeProcess],
        started: dict[str, ops.SpawnNode],
    ) -> None:
        """A node's exec command, if this apply started the node (one kept running ran
        its commands when it started); its output is the step's detail. A non-zero exit
        fails the apply, naming the labfile field."""
        op = cast(ops.ExecInNode, plan.ops[index])
        spawn = started.get(op.node)
        if spawn is None:
            self._report(plan, index, STEP_DONE, 0.0, "kept running: not run again")
            return
        self.journal.append(plan.deployment, {"op": index, "kind": op.kind})
        began = time.monotonic()
        status, output = driver.run_in_node(nodes[op.node], spawn, op.command, op.timeout)
        seconds = time.monotonic() - began
        shown = _tail(output)
        if status != 0:
            self._report(plan, index, STEP_FAILED, seconds, shown)
            field = f"nodes.{op.node}.exec.{op.index}"
            said = f": {shown.strip()}" if shown.strip() else ""
            raise ApplyError(f"{field}: {shlex.join(op.command)} exited {status}{said}")
        self._report(plan, index, STEP_DONE, seconds, shown)

    def _rolled_back(self, what: str) -> None:
        self.progress(Step(0, 0, "rollback", what, STEP_ROLLED_BACK, 0.0))

    # --- destroy and sweep ----------------------------------------------------------------

    def destroy(self, token: str) -> list[str]:
        """Remove everything of the deployment on this host; what was removed, by name."""
        return self.teardown.destroy(token)

    def sweep(self, live: Iterable[str]) -> list[str]:
        """Destroy every deployment found on this host that is not in `live`."""
        return self.teardown.sweep(live)

    def found_tokens(self) -> set[str]:
        """Tokens of every deployment with anything left on this host."""
        return self.teardown.found_tokens()


def _tail(output: str, limit: int = EXEC_OUTPUT_SHOWN) -> str:
    """The end of a command's output, as much as a step shows."""
    return output if len(output) <= limit else "…" + output[-limit:]


def resolved_spawn(op: ops.SpawnNode, pulled: dict[str, Image]) -> ops.SpawnNode:
    """The spawn as the node starts: for a node of an image, its root the image's
    unpacked tree and its command, environment, work directory and user the image's
    config under the labfile's own, as Docker combines them (an `entrypoint` given clears
    the image's Cmd); a `user` as the numeric "uid:gid" the node's tree names."""
    from workers.images.store import ImageError
    from workers.images.users import resolve_user

    ids = UID_RANGE if "user" in op.namespaces and not op.privileged else None
    if op.image is None:
        if op.user is None:
            return op
        try:
            uid, gid = resolve_user(Path("/"), op.user, ids)
        except ImageError as exc:
            raise ApplyError(f"node {op.node}: {exc}") from None
        return dataclasses.replace(op, user=f"{uid}:{gid}")
    image = pulled.get(op.image)
    if image is None:
        raise ApplyError(f"node {op.node}: image {op.image} was not pulled")
    config = image.config
    entrypoint = op.entrypoint if op.entrypoint is not None else config.entrypoint
    # Docker's rule: a new entrypoint runs without the image's Cmd.
    cmd = op.command if op.command is not None else () if op.entrypoint else config.cmd
    environment = dict(config.env) | dict(op.environment)
    try:
        uid, gid = resolve_user(image.rootfs, op.user or config.user, ids)
    except ImageError as exc:
        raise ApplyError(f"node {op.node}: {exc}") from None
    return dataclasses.replace(
        op,
        rootfs=str(image.rootfs),
        command=(*entrypoint, *cmd),
        environment=tuple(sorted(environment.items())),
        workdir=op.workdir or config.workdir or "/",
        user=f"{uid}:{gid}",
    )
