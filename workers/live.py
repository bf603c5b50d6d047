"""The `live` job: changes of running nodes without a redeploy (labplan.live makes them,
docs/live.md says what each does).

Every node and interface is found in the agent's own journal of the deployment: a node is
its spawn op there, an interface one the plan brings up in that node's own namespace (not
`lo`, never a host-network node's, which are the host's). Nothing a message says names a
namespace, a cgroup or a host link.

A refused change undoes the ones made before it, newest first, so the lab is left as it
was: impairments go back to the `previous` ones, states are flipped back, a stopped node
is started again. A node stopped here keeps its namespace, so its interfaces (parked:
set down, which its neighbours see as lost carrier), addresses and routes stay; its start
brings them up again, puts back what going down removed (the kernel drops a down
interface's routes and IPv6 addresses) and starts its command again; its `exec` commands
are not run again (what they did to its namespace is still there).
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from labplan import ops
from labplan.messages import LiveAnswer
from workers.driver import Driver
from workers.executor import Executor, resolved_spawn
from workers.journal import Record

log = logging.getLogger("labmgr.agent")

STOP_GRACE = 5.0  # seconds a stopped node's init has to end before its cgroup is killed
POLL = 0.02


class LiveRefused(Exception):
    """A change that names nothing of the deployment, or that the kernel refused."""


class LiveChanges:
    def __init__(self, executor: Executor, record: Record, plan: ops.HostPlan) -> None:
        self.executor = executor
        self.record = record
        self.plan = plan
        self.spawns = {op.node: op for op in plan.ops if isinstance(op, ops.SpawnNode)}

    def run(self, changes: Sequence[Mapping[str, Any]]) -> LiveAnswer:
        began = time.monotonic()
        driver = self.executor.driver()
        undo: list[Callable[[], None]] = []
        done = 0
        error = ""
        change: Mapping[str, Any] = {}
        try:
            for change in changes:
                self._one(driver, change, undo)
                done += 1
        except Exception as exc:
            error = f"{_who(change)}: {exc}"
            log.warning("live change of %s refused: %s", self.record.token, error)
            for step in reversed(undo):
                try:
                    step()
                except Exception as again:  # said, and the rest still undone
                    log.warning("undoing a live change of %s: %s", self.record.token, again)
        finally:
            self.executor.journal.close(self.record.token)
            driver.close()
        touched = sorted({str(c.get("node")) for c in changes})
        return {
            "ok": not error,
            "error": error,
            "done": done if not error else 0,
            # The record follows every line this job wrote to the journal.
            "stopped": [n for n in touched if n in self.record.stopped],
            "seconds": time.monotonic() - began,
        }

    # --- one change -----------------------------------------------------------------------

    def _one(
        self, driver: Driver, change: Mapping[str, Any], undo: list[Callable[[], None]]
    ) -> None:
        spawn = self._spawn(change)
        if "action" in change:
            action = change["action"]
            if action in ("stop", "kill"):
                self._stop(driver, spawn, kill=action == "kill")
                undo.append(lambda: self._start(driver, spawn, []))
            elif action == "start":
                self._start(driver, spawn, [str(i) for i in change.get("down") or ()])
                undo.append(lambda: self._stop(driver, spawn, kill=True))
            else:
                raise LiveRefused(f"no such action {action!r}")
            return
        netns = self._netns(spawn)
        ifname = self._interface(spawn, netns, change.get("ifname"))
        if "impairments" in change:
            new, old = change.get("impairments"), change.get("previous")
            self._shape(driver, netns, ifname, new, old)
            undo.append(lambda: self._shape(driver, netns, ifname, old, new))
        elif "up" in change:
            up = bool(change["up"])
            self._state(driver, spawn, netns, ifname, up)
            undo.append(lambda: self._state(driver, spawn, netns, ifname, not up))
        else:
            raise LiveRefused("a change of an interface sets impairments or up")

    def _spawn(self, change: Mapping[str, Any]) -> ops.SpawnNode:
        spawn = self.spawns.get(str(change.get("node")))
        if spawn is None:
            raise LiveRefused(f"{self.record.token} has no node {change.get('node')!r} here")
        return spawn

    @staticmethod
    def _netns(spawn: ops.SpawnNode) -> str:
        if spawn.netns is None:
            raise LiveRefused(
                f"{spawn.node} is on the host's network: its interfaces are the host's"
            )
        return spawn.netns

    def _interface(self, spawn: ops.SpawnNode, netns: str, ifname: object) -> str:
        if not isinstance(ifname, str) or ifname not in self._interfaces(netns):
            raise LiveRefused(f"{spawn.node} has no interface {ifname!r} of the lab's")
        return ifname

    # --- interfaces -----------------------------------------------------------------------

    @staticmethod
    def _shape(
        driver: Driver,
        netns: str,
        ifname: str,
        new: Mapping[str, Any] | None,
        old: Mapping[str, Any] | None,
    ) -> None:
        """The interface's impairments now `new`: replaced in place when the same qdiscs
        hold them (no packet lost), cleared first when the kinds differ (a netem root
        cannot be replaced by a tbf, nor lose the tbf under it by a replace)."""
        fields = _shaping_fields(new) if new is not None else None
        try:
            if fields is None or _qdiscs(new) != _qdiscs(old):
                driver.clear_shaping(netns, ifname)
            if fields is not None:
                driver.set_shaping(ops.SetShaping(netns, ifname, **fields))
        except Exception:
            # The kernel refused: the old ones back before saying so.
            driver.clear_shaping(netns, ifname)
            if old is not None:
                driver.set_shaping(ops.SetShaping(netns, ifname, **_shaping_fields(old)))
            raise

    def _state(
        self, driver: Driver, spawn: ops.SpawnNode, netns: str, ifname: str, up: bool
    ) -> None:
        if not up:
            driver.set_down(netns, ifname)
            return
        driver.set_up(netns, ifname)
        self._readdress(driver, netns, {ifname})

    def _readdress(self, driver: Driver, netns: str, ifnames: set[str]) -> None:
        """What a down interface lost, back: its addresses (IPv6 ones go with it) and the
        namespace's routes (those through it go too). A route whose way is still down is
        left for later (said in the log)."""
        for op in self.plan.ops:
            if isinstance(op, ops.AddAddress) and op.netns == netns and op.ifname in ifnames:
                driver.ensure_address(netns, op.ifname, op.address)
        for op in self.plan.ops:
            if isinstance(op, ops.AddRoute) and op.netns == netns:
                try:
                    driver.ensure_route(netns, op.dst, op.via)
                except Exception as exc:
                    log.info("route %s via %s in %s not back yet: %s", op.dst, op.via, netns, exc)

    def _interfaces(self, netns: str | None) -> list[str]:
        if netns is None:
            return []
        return [
            op.ifname
            for op in self.plan.ops
            if isinstance(op, ops.SetLinkUp) and op.netns == netns and op.ifname != "lo"
        ]

    # --- nodes ----------------------------------------------------------------------------

    def _stop(self, driver: Driver, spawn: ops.SpawnNode, *, kill: bool) -> None:
        """The node's processes ended (asked first, unless `kill`), its interfaces
        parked, and the journal told, so no check calls it drift."""
        process = self.record.nodes.get(spawn.node)
        if process is not None and not kill and driver.alive(process):
            driver.signal_init(process, signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE
            while driver.alive(process) and time.monotonic() < deadline:
                time.sleep(POLL)
        driver.kill_cgroup(spawn.cgroup)
        if spawn.netns is not None and not self._shared(spawn):
            for ifname in self._interfaces(spawn.netns):
                driver.set_down(spawn.netns, ifname)
        self.executor.journal.append(self.record.token, {"stopped": spawn.node})
        self.record.stopped.add(spawn.node)

    def _shared(self, spawn: ops.SpawnNode) -> bool:
        """Whether another running node of the lab lives in this node's namespace (a node
        that joins it, or the one it joins): its interfaces are not this node's to park."""
        return any(
            other.netns == spawn.netns
            and other.node != spawn.node
            and other.node not in self.record.stopped
            for other in self.spawns.values()
        )

    def _start(self, driver: Driver, spawn: ops.SpawnNode, down: list[str]) -> None:
        record = self.record
        running = record.nodes.get(spawn.node)
        if running is not None and driver.alive(running):
            raise LiveRefused(f"{spawn.node} is running")
        images = self.executor.images
        pulled = {}
        if spawn.image is not None:
            digest = record.images.get(spawn.image)
            image = images.get(digest) if digest else None
            if image is None:
                raise LiveRefused(f"image {spawn.image} of {spawn.node} is no longer on this host")
            pulled[spawn.image] = image
        resolved = resolved_spawn(spawn, pulled)
        base = record.uid_bases.get(spawn.node)
        uid_base = base if "user" in spawn.namespaces and not spawn.privileged else None
        if spawn.netns is not None:
            up = [i for i in self._interfaces(spawn.netns) if i not in down]
            for ifname in up:
                driver.set_up(spawn.netns, ifname)
            self._readdress(driver, spawn.netns, set(up))
        driver.kill_cgroup(spawn.cgroup)  # what a stop left, if anything
        (process,) = driver.spawn_all([(resolved, uid_base)], self.plan.deployment)
        record.nodes[spawn.node] = process
        record.stopped.discard(spawn.node)
        self.executor.journal.append(
            record.token,
            {
                "node": spawn.node,
                "pid": process.pid,
                "start": process.start,
                "uid_base": base,
                **({"note": process.note} if process.note else {}),
            },
        )


def _qdiscs(impairments: Mapping[str, Any] | None) -> tuple[bool, bool]:
    """Which qdiscs hold these impairments: (netem, tbf)."""
    if not impairments:
        return False, False
    netem = any(
        impairments.get(k) is not None
        for k in ("delay", "jitter", "loss", "duplicate", "corrupt", "reorder")
    )
    return netem, impairments.get("rate") is not None


SHAPING_FIELDS = ("rate", "delay", "jitter", "loss", "duplicate", "corrupt", "reorder")


def _shaping_fields(impairments: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in SHAPING_FIELDS:
        value = impairments.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise LiveRefused(f"impairment {key} is not a number")
        if value is not None and (
            value < 0 or (key not in ("rate", "delay", "jitter") and value > 100)
        ):
            raise LiveRefused(f"impairment {key} is out of range")
        values[key] = (
            int(value) if key in ("rate", "delay", "jitter") and value is not None else value
        )
    return values


def _who(change: Mapping[str, Any]) -> str:
    node = change.get("node")
    return f"{node}:{change['ifname']}" if "ifname" in change else str(node)
