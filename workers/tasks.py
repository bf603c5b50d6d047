"""The agent's jobs behind the `labmgr.agent.*` tasks of docs/messages.md: apply (and
redeploy), destroy, check, exec, sweep, terminal_open.

`Agent` holds the executor and the `send` seam; each job runs under one lock (kernel
changes on a host are strictly serial) and is recorded in the `JobLog` by task id, so a
duplicate delivery re-sends the recorded reports and changes nothing. `register` binds
the jobs to a Celery app by their explicit names; every message is opened with the
host's key first (workers.keys), and one that is not signed for this host and task, is
stale, or came again after it was done, is refused before it reaches a job.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable
from typing import Any, Protocol

from labplan import envelope, naming, ops
from labplan.envelope import Refused
from workers import capture, config
from workers.diff import HostDiff, diff, prune
from workers.executor import (
    ApplyError,
    Executor,
    MoveRefusedError,
    NodeReport,
    RefusedError,
    decode,
    decode_budget,
)
from workers.kernel.cgroups import Cgroups
from workers.kernel.processes import NodeProcess, Processes, alive
from workers.keys import Signer, new_id
from workers.reconcile import drift
from workers.reports import JobLog, Reporter, Send, StepGroups

log = logging.getLogger("labmgr.agent")

MAX_OUTPUT = 1 << 20  # bytes of a command's stdout (and of its stderr) sent back
Observe = Callable[[NodeReport], list[dict[str, Any]]]


class Terminals(Protocol):
    def open(
        self, session: str, init: NodeProcess, spawn: ops.SpawnNode, cols: int, rows: int
    ) -> None: ...
    def close_token(self, token: str) -> None: ...


def observe_node(node: NodeReport) -> list[dict[str, Any]]:
    """A node's interfaces as the executor read them from the kernel at the end of the
    apply, on the job's own sockets (not `lo`, nor a host-network node's: those are the
    host's)."""
    if node.netns is None:
        return []
    return [
        {"ifname": i.name, "mac": i.mac, "addresses": list(i.addresses)}
        for i in node.interfaces
        if i.name != "lo"
    ]


class Agent:
    def __init__(
        self,
        executor: Executor,
        send: Send,
        host: str | None = None,
        observe: Observe = observe_node,
        terminals: Terminals | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.executor = executor
        self.send = send
        self.host = host or config.host_name()
        self.observe = observe
        self.terminals = terminals
        # None only where no broker is involved (jobs driven in-process); then a job cut
        # by a crash is run again as recorded.
        self.signer = signer
        self.jobs = JobLog(executor.data_dir / "jobs")
        self.lock = threading.Lock()
        self._jobs: dict[str, Callable[..., Any]] = {
            "apply": self._apply,
            "destroy": self._destroy,
            "check": self._check,
            "exec": self._exec,
            "sweep": self._sweep,
        }

    # --- running a job once ---------------------------------------------------------------

    def run(
        self,
        task_id: str | None,
        job: str,
        kwargs: dict[str, Any],
        signed: dict[str, Any] | None = None,
    ) -> Any:
        """Run a job, or answer a duplicate delivery of a finished one from the log.
        `signed`: the message it came in, kept with the job so that a restart runs it
        again only while the control plane's signature still holds."""
        record = self.jobs.read(task_id) if task_id else None
        if record is not None and record.get("state") == "done":
            log.info("%s %s delivered again: reporting its result again", job, task_id)
            for task, report in record.get("reports", []):
                self.send(task, report)
            return record.get("value")
        with self.lock:
            if task_id:
                self.jobs.start(task_id, job, kwargs, signed)
            reporter = Reporter(self.send)
            try:
                value = self._jobs[job](reporter, **kwargs)
            except Exception as exc:  # a bug: still answer, so nothing waits forever
                log.exception("%s %s failed", job, task_id)
                value = None
                if job in ("apply", "destroy") and "deployment" in kwargs:
                    error = f"the agent failed: {type(exc).__name__}: {exc}"
                    reporter.result(kwargs["deployment"], job, False, error)
            if task_id:
                self.jobs.finish(task_id, reporter.sent, value)
        return value

    # --- apply ----------------------------------------------------------------------------

    def _apply(
        self,
        reporter: Reporter,
        deployment: int,
        plan: dict[str, Any],
        previous: dict[str, Any] | None = None,
        budget: dict[str, Any] | None = None,
    ) -> None:
        try:
            decoded = decode(plan)
            host_plan = self._host_plan(decoded, deployment)
            share = decode_budget(budget)
            # Before a redeploy prunes anything: a deployment cannot change cgroup.
            self.executor.check_move(host_plan.deployment, share)
        except ApplyError as exc:
            reporter.result(deployment, "apply", False, str(exc))
            return
        token = host_plan.deployment
        job = self.jobs.next_job(token)
        before = self._running_plan(token, previous)
        change = diff(before, host_plan) if before is not None else None
        if change is not None and change.unchanged:
            change = None
        steps = StepGroups(reporter, deployment, job, host_plan, extra=1 if change else 0)
        try:
            if change is not None:
                self._prune(steps, token, change)
            self.executor.progress = steps
            result = self.executor.apply_decoded(decoded, plan, self.host, share)
        except ApplyError as exc:
            if not isinstance(exc, RefusedError | MoveRefusedError):
                steps.rolled_back(str(exc))
            reporter.result(deployment, "apply", False, str(exc))
            return
        finally:
            self.executor.progress = lambda step: None
        nodes = [self._node(n) for n in result.nodes]
        reporter.result(deployment, "apply", True, "", nodes)

    def _host_plan(self, plan: ops.Plan, deployment: int) -> ops.HostPlan:
        expected = naming.deployment_token(deployment)
        if plan.deployment != expected:
            raise ApplyError(f"the plan is for deployment {plan.deployment}, not {expected}")
        host_plan = plan.for_host(self.host)
        if host_plan is None:
            raise ApplyError(f"the plan has nothing for host {self.host!r}")
        return host_plan

    def _running_plan(self, token: str, previous: dict[str, Any] | None) -> ops.HostPlan | None:
        """What this host runs for the deployment: its journal's plan, which is what the
        kernel has, else the `previous` plan the control plane sent."""
        record = self.executor.journal.read(token)
        data = record.header.get("plan") if record is not None else previous
        if data is None:
            return None
        try:
            return decode(data).for_host(self.host)
        except ApplyError:
            return None

    def _prune(self, steps: StepGroups, token: str, change: HostDiff) -> None:
        removed: list[str] = []
        driver = self.executor.driver()
        try:
            prune(
                driver,
                change,
                token,
                lambda cg: self.executor.data_dir / "run" / cg,
                removed.append,
            )
        finally:
            driver.close()
        summary = (
            f"kept {len(change.kept)}, replaced {len(change.replaced)}, "
            f"added {len(change.added)}, removed {len(change.removed)} nodes"
        )
        steps.extra_step("redeploy", summary, "done", "; ".join(removed))

    def _node(self, node: NodeReport) -> dict[str, Any]:
        return {
            "name": node.name,
            "pid": node.pid,
            "netns": node.netns,
            "interfaces": self.observe(node),
            "note": node.note,
        }

    # --- destroy, check, sweep ------------------------------------------------------------

    def _destroy(self, reporter: Reporter, deployment: int, token: str) -> None:
        if token != naming.deployment_token(deployment):
            reporter.result(deployment, "destroy", False, f"{token!r} is not this deployment")
            return
        if self.terminals is not None:
            self.terminals.close_token(token)
        try:
            removed = self.executor.destroy(token)
        except Exception as exc:  # reported, not raised: the control plane must hear of it
            log.exception("destroying %s failed", token)
            reporter.result(deployment, "destroy", False, f"{type(exc).__name__}: {exc}")
            return
        self.jobs.forget(token)
        log.info("destroyed %s: %d objects", token, len(removed))
        reporter.result(deployment, "destroy", True, "")

    def _check(self, reporter: Reporter, deployment: int, plan: dict[str, Any]) -> None:
        try:
            host_plan = self._host_plan(decode(plan), deployment)
        except ApplyError as exc:
            reporter.report(
                "labmgr.control.drift", deployment=deployment, missing=[str(exc)], extra=[]
            )
            return
        missing, extra = drift(self.executor, host_plan)
        reporter.report("labmgr.control.drift", deployment=deployment, missing=missing, extra=extra)

    def _sweep(self, reporter: Reporter, live: list[str]) -> dict[str, Any]:
        removed = self.executor.sweep(live)
        for line in removed:
            log.info("sweep removed %s", line)
        return {"removed": removed}

    # --- exec and terminals ---------------------------------------------------------------

    def node(self, token: str, node: str) -> tuple[NodeProcess, ops.SpawnNode] | None:
        """A node's init as the journal knows it (pid and start time: whether it still
        runs is `alive`'s to say) and its spawn op, None if the deployment has no such
        node here."""
        record = self.executor.journal.read(token)
        if record is None or node not in record.nodes:
            return None
        host_plan = decode(record.header["plan"]).for_host(record.header["host"])
        if host_plan is None:
            return None
        for op in host_plan.ops:
            if isinstance(op, ops.SpawnNode) and op.node == node:
                return record.nodes[node], op
        return None

    def _exec(
        self,
        reporter: Reporter,
        deployment: int,
        token: str,
        node: str,
        argv: list[str],
        timeout: float,
    ) -> dict[str, Any]:
        found = self.node(token, node) if token == naming.deployment_token(deployment) else None
        if found is None:
            return {"exit": 127, "stdout": "", "stderr": f"no running node {node!r} in {token}"}
        init, spawn = found
        if not alive(init):  # lminit checks again as it enters, by pidfd
            gone = f"node {node!r} of {token} is not running: its init is gone\n"
            return {"exit": 127, "stdout": "", "stderr": gone}
        processes = Processes(self.executor.data_dir / "bin" / "lminit", self.executor.data_dir)
        env = {"HOSTNAME": spawn.hostname, **dict(spawn.environment)}
        try:
            done = processes.run(
                init, Cgroups().procs_files(spawn.cgroup), argv, env, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            return {
                "exit": 124,
                "stdout": _text(exc.stdout),
                "stderr": _text(exc.stderr) + f"timed out after {timeout:g} s\n",
            }
        return {"exit": done.returncode, "stdout": _text(done.stdout), "stderr": _text(done.stderr)}

    def terminal_open(self, session: str, token: str, node: str, cols: int, rows: int) -> bool:
        found = self.node(token, node)
        if found is None or self.terminals is None or not alive(found[0]):
            log.warning("terminal %s: node %r of %s is not running", session, node, token)
            return False
        self.terminals.open(session, found[0], found[1], cols, rows)
        return True


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    raw = data.encode() if isinstance(data, str) else data
    return raw[:MAX_OUTPUT].decode(errors="replace")


class Inbox:
    """Opens every message of this host's queue before a job sees it: signed with this
    host's key, for this task, under the id it came with, fresh, and not seen before."""

    def __init__(self, agent: Agent, signer: Signer) -> None:
        self.agent = agent
        self.signer = signer

    def open(self, task: str, request_id: str | None, kwargs: dict[str, Any]) -> Any:
        """The message's verified arguments and its envelope, or None (refused: logged,
        never answered with a report, which a forger could aim at someone's lab)."""
        signed = kwargs.get(envelope.FIELD)
        try:
            if set(kwargs) != {envelope.FIELD} or not request_id:
                raise Refused("the message is not signed")
            opened = self.signer.open(task, signed, request_id)
        except Refused as exc:
            log.warning("refused %s %s: %s", task, request_id, exc)
            return None
        return opened.kwargs, signed

    def once(self, task: str, request_id: str | None, kwargs: dict[str, Any]) -> Any:
        """`open`, also refusing a message whose id was acted on before (a job that does
        not go through `Agent.run`, which answers repeats from its record)."""
        opened = self.open(task, request_id, kwargs)
        if opened is None or request_id is None:
            return None
        if self.agent.jobs.read(request_id) is not None:
            log.warning("refused %s %s: it was delivered before", task, request_id)
            return None
        self.agent.jobs.finish(request_id, [], None)
        return opened

    def answer(self, task: str, request_id: str, value: Any) -> dict[str, Any]:
        """A job's Celery result, signed so the control plane knows this host said it."""
        return self.signer.seal(envelope.result_task(task), {"value": value}, id=request_id)


def register(app: Any, agent: Agent, signer: Signer) -> None:
    """Bind the jobs to `app` under the names of docs/messages.md: each takes one
    keyword argument, `signed` (labplan.envelope)."""
    inbox = Inbox(agent, signer)

    def job(name: str) -> Callable[..., Any]:
        task_name = f"labmgr.agent.{name}"

        def task(self: Any, **kwargs: Any) -> Any:
            opened = inbox.open(task_name, self.request.id, kwargs)
            if opened is None:
                return {"refused": "the agent refused the message (see its log)"}
            value = agent.run(self.request.id, name, opened[0], opened[1])
            return inbox.answer(task_name, self.request.id, value)

        return task

    for name in ("apply", "destroy", "check", "sweep"):
        app.task(name=f"labmgr.agent.{name}", bind=True, ignore_result=True)(job(name))
    app.task(name="labmgr.agent.exec", bind=True)(job("exec"))

    def terminal_open(self: Any, **kwargs: Any) -> bool:
        opened = inbox.once("labmgr.agent.terminal_open", self.request.id, kwargs)
        if opened is None:
            return False
        arguments = opened[0]
        if not envelope.STREAM_ID_RE.fullmatch(str(arguments.get("session", ""))):
            log.warning("refused terminal %r: not an unguessable session id", arguments)
            return False
        return agent.terminal_open(**arguments)

    app.task(name="labmgr.agent.terminal_open", bind=True, ignore_result=True)(terminal_open)

    def rekey(self: Any, **kwargs: Any) -> None:
        opened = inbox.once("labmgr.agent.rekey", self.request.id, kwargs)
        if opened is None:
            return
        try:
            signer.rekey(signer.open("labmgr.agent.rekey", opened[1], self.request.id))
        except Refused as exc:
            log.warning("refused a key rotation: %s", exc)
            return
        log.info("host key rotated")
        agent.send("labmgr.control.rekeyed", {})

    app.task(name="labmgr.agent.rekey", bind=True, ignore_result=True)(rekey)
    capture.register(app, agent, inbox=inbox, progress=celery_send(app, signer, retry=False))


def celery_send(app: Any, signer: Signer, *, retry: bool = True) -> Send:
    """The `send` seam over a Celery app: a task by name to queue `control`, signed with
    the host's key under a fresh task id. With `retry` a report waits for Redis to come
    back rather than being lost."""
    policy = {"max_retries": None, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 3}

    def send(task: str, kwargs: dict[str, Any]) -> None:
        task_id = new_id()
        signed = {envelope.FIELD: signer.seal(task, kwargs, id=task_id)}
        app.send_task(
            task,
            kwargs=signed,
            task_id=task_id,
            queue="control",
            retry=retry,
            retry_policy=policy,
        )

    return send
