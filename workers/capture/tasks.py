"""The `labmgr.agent.capture_start` and `capture_stop` jobs of docs/messages.md, bound to
a Celery app: each message opened with the host's key first, the node found through the
journal."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from labplan import envelope, naming, ops
from labplan.messages import AgentTask, CaptureStartAnswer, ControlTask
from workers.capture.registry import CaptureRefused, Captures, Target
from workers.capture.watcher import RedisUpload, Request
from workers.celery_app import redis_url
from workers.journal import RunningNode
from workers.kernel.cgroups import Cgroups
from workers.kernel.processes import start_time
from workers.reports import Send

log = logging.getLogger("labmgr.agent")


class Journal(Protocol):
    def node(self, token: str, name: str) -> RunningNode | None: ...


class AgentLike(Protocol):
    """What the capture tasks need of `workers.agent.Agent`."""

    send: Send

    @property
    def executor(self) -> Any: ...


def node_target(journal: Journal, token: str, node: str) -> Target | None:
    """The running node's init, cgroup and the interfaces its plan gives it; None if the
    node does not run here or shares the host's network namespace."""
    found = journal.node(token, node)
    if found is None or found.spawn.netns is None:
        return None
    return Target(
        pid=found.init.pid,
        start=found.init.start,
        cgroup_procs=tuple(Cgroups().procs_files(found.spawn.cgroup)),
        interfaces=interfaces_in(found.plan.ops, found.spawn.netns),
    )


def op_ends(op: ops.CreatePeerLink) -> tuple[tuple[str, str], tuple[str, str]]:
    return (op.netns, op.ifname), (op.peer_netns, op.peer_ifname)


def interfaces_in(plan_ops: Sequence[ops.Op], netns: str) -> tuple[str, ...]:
    """The names the plan gives links inside `netns`, in plan order."""
    names: list[str] = []
    for op in plan_ops:
        if isinstance(op, ops.CreateVethPair) and op.peer_netns == netns:
            names.append(op.peer_ifname)
        elif (
            isinstance(op, ops.CreateMacvlan | ops.CreateIpvlan | ops.CreateVlan)
            and op.netns == netns
        ):
            names.append(op.ifname)
        elif isinstance(op, ops.CreatePeerLink):
            names += [name for ns, name in op_ends(op) if ns == netns]
    return tuple(names)


def capture_start(
    captures: Captures,
    journal: Journal,
    *,
    capture: str,
    deployment: int,
    token: str,
    node: str,
    interface: str,
    filter: str,
    max_bytes: int,
    max_seconds: float,
) -> CaptureStartAnswer:
    """The `labmgr.agent.capture_start` job: `{ok, field, error}`."""
    target = (
        node_target(journal, token, node) if token == naming.deployment_token(deployment) else None
    )
    if target is None:
        return {"ok": False, "field": "node", "error": f"no running node {node!r} in {token}"}
    if start_time(target.pid) != target.start:  # enter_node checks again, by pidfd
        error = f"node {node!r} of {token} is not running: its init is gone"
        return {"ok": False, "field": "node", "error": error}
    request = Request(capture, token, node, interface, filter, int(max_bytes), float(max_seconds))
    try:
        captures.start(request, target)
    except CaptureRefused as exc:
        return {"ok": False, "field": exc.field, "error": exc.message}
    return {"ok": True, "field": "", "error": ""}


def capture_stop(captures: Captures, *, capture: str) -> None:
    """The `labmgr.agent.capture_stop` job. A capture this agent does not run (it
    restarted, or the capture ended already) is reported ended, so nothing waits."""
    if not captures.stop(capture) and not captures.knows(capture):
        captures.send(
            ControlTask.CAPTURE_FINISHED,
            {
                "capture": capture,
                "state": "failed",
                "packets": 0,
                "bytes": 0,
                "reason": "this host runs no such capture (its agent restarted?)",
                "chunks": 0,
            },
        )


class Guard(Protocol):
    """Opens a capture job's message (workers.tasks.Inbox): its verified arguments and
    envelope, or None when it is refused."""

    def open(self, task: str, request_id: str | None, kwargs: dict[str, Any]) -> Any: ...
    def once(self, task: str, request_id: str | None, kwargs: dict[str, Any]) -> Any: ...
    def answer(self, task: str, request_id: str, value: Any) -> dict[str, Any]: ...


def register(
    app: Any,
    agent: AgentLike,
    *,
    inbox: Guard,
    progress: Send,
    captures: Captures | None = None,
) -> Captures:
    """Bind the capture jobs to `app` under the names of docs/messages.md; `progress`
    sends the frequent reports that a newer one soon replaces (no retry)."""
    if captures is None:
        captures = Captures(
            agent.executor.data_dir, agent.send, RedisUpload(redis_url()), progress=progress
        )
    for line in captures.reap_orphans():
        log.info("capture: reaped %s", line)
    running = captures
    journal = agent.executor.journal

    def start(self: Any, **kwargs: Any) -> dict[str, Any]:
        name = AgentTask.CAPTURE_START
        opened = inbox.once(name, self.request.id, kwargs)
        if opened is None:
            return {"refused": "the agent refused the message (see its log)"}
        arguments = opened[0]
        value: CaptureStartAnswer
        if not envelope.STREAM_ID_RE.fullmatch(str(arguments.get("capture", ""))):
            value = {"ok": False, "field": "capture", "error": "not an unguessable capture id"}
        else:
            value = capture_start(running, journal, **arguments)
        return inbox.answer(name, self.request.id, value)

    def stop(self: Any, **kwargs: Any) -> None:
        opened = inbox.once(AgentTask.CAPTURE_STOP, self.request.id, kwargs)
        if opened is not None:
            capture_stop(running, **opened[0])

    app.task(name=str(AgentTask.CAPTURE_START), bind=True)(start)
    app.task(name=str(AgentTask.CAPTURE_STOP), bind=True, ignore_result=True)(stop)
    return running
