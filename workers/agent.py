"""The host agent's jobs (`Job`: apply and redeploy, destroy, check, exec, sweep), terminals,
and its recovery after a restart; Celery delivers them (workers.tasks).

`Agent` holds the executor and the `send` seam; each job runs under one lock (kernel
changes on a host are strictly serial) and is recorded in the `JobLog` by task id, so a
duplicate delivery re-sends the recorded reports and changes nothing.

`Agent.recover`, on start, finishes what a crash cut short, so every deployment ends
RUNNING or FAILED, never stuck: a job the log shows "started" runs again with its own
arguments (the executor is idempotent, so an apply converges, or fails and rolls back,
and a destroy completes), its result recorded under the job's task id, which then
answers the message's redelivery. A journal still "applying" with no such job (an apply
by hand) is converged the same way from the plan it holds.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from collections.abc import Callable
from typing import Any, Protocol

from labplan import naming, ops
from labplan.envelope import Refused
from labplan.messages import STEP_DONE, ControlTask, DriftArgs
from workers import config
from workers.decoding import decode, decode_budget
from workers.diff import HostDiff, diff, prune
from workers.driver import NodeProcess
from workers.errors import ApplyError, MoveRefusedError, RefusedError
from workers.executor import Executor, NodeReport
from workers.init.build import lminit_path
from workers.jobs import Job
from workers.kernel.cgroups import Cgroups
from workers.kernel.processes import Processes, alive
from workers.keys import Signer
from workers.reports import JobLog, Reporter, Send, StepGroups
from workers.status import drift

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
        self._jobs: dict[Job, Callable[..., Any]] = {
            Job.APPLY: self._apply,
            Job.DESTROY: self._destroy,
            Job.CHECK: self._check,
            Job.EXEC: self._exec,
            Job.SWEEP: self._sweep,
        }

    # --- running a job once ---------------------------------------------------------------

    def run(
        self,
        task_id: str | None,
        job: Job,
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
                if job in (Job.APPLY, Job.DESTROY) and "deployment" in kwargs:
                    error = f"the agent failed: {type(exc).__name__}: {exc}"
                    reporter.result(kwargs["deployment"], job, False, error)
            if task_id:
                self.jobs.finish(task_id, reporter.sent, value)
        return value

    def recover(self) -> list[str]:
        """Finish every job and apply a crash left half-done; what was done, as lines.

        A kept job runs again only while the control plane still vouches for it: its
        message must still open with this host's key and be fresh (an agent restarted
        under another install, whose key differs, or long after, drops it). What a dropped
        apply left half-built is removed, as a failed apply's rollback would have."""
        done: list[str] = []
        dropped: set[str] = set()
        self.jobs.prune()
        for task_id, entry in self.jobs.started():
            kwargs = dict(entry.get("kwargs") or {})
            job = Job.named(entry.get("job"))
            if job is None or not job.rerun:
                gone = {"exit": -1, "stdout": "", "stderr": "agent restarted"}
                self.jobs.finish(task_id, [], gone)
                continue
            signed = entry.get("signed")
            if self.signer is not None:
                try:
                    kwargs = self.signer.open(job.task, signed, task_id).kwargs
                except Refused as exc:
                    log.warning("reconcile: %s %s is not run again: %s", job, task_id, exc)
                    self.jobs.finish(task_id, [], None)
                    if job is Job.APPLY and (token := _token_of(kwargs)) is not None:
                        dropped.add(token)
                    done.append(f"{job} {task_id} not run again: {exc}")
                    continue
            log.info("reconcile: running %s %s again after a restart", job, task_id)
            self.run(task_id, job, kwargs, signed if isinstance(signed, dict) else None)
            done.append(f"{job} {task_id} run again")
        for token in self.executor.journal.tokens():
            record = self.executor.journal.read(token)
            deployment = naming.deployment_from_token(token)
            if record is None or record.state == "applied" or deployment is None:
                continue
            if "plan" not in record.header or token in dropped:
                # A journal cut before its header, or the half of an apply nobody wants now.
                self.executor.destroy(token)
                if token in dropped:
                    done.append(f"{token} removed: its apply is not run again")
                continue
            log.info("reconcile: converging %s, left %s", token, record.state)
            kwargs = {
                "deployment": deployment,
                "plan": record.header["plan"],
                "previous": None,
                "budget": record.budget,  # back into the reservation's cgroup it was put in
            }
            self.run(None, Job.APPLY, kwargs)
            done.append(f"apply {token} converged")
        return done

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
            reporter.result(deployment, Job.APPLY, False, str(exc))
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
            reporter.result(deployment, Job.APPLY, False, str(exc))
            return
        finally:
            self.executor.progress = lambda step: None
        nodes = [self._node(n) for n in result.nodes]
        reporter.result(deployment, Job.APPLY, True, "", nodes)

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
        steps.extra_step("redeploy", summary, STEP_DONE, "; ".join(removed))

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
            reporter.result(deployment, Job.DESTROY, False, f"{token!r} is not this deployment")
            return
        if self.terminals is not None:
            self.terminals.close_token(token)
        try:
            removed = self.executor.destroy(token)
        except Exception as exc:  # reported, not raised: the control plane must hear of it
            log.exception("destroying %s failed", token)
            reporter.result(deployment, Job.DESTROY, False, f"{type(exc).__name__}: {exc}")
            return
        self.jobs.forget(token)
        log.info("destroyed %s: %d objects", token, len(removed))
        reporter.result(deployment, Job.DESTROY, True, "")

    def _check(self, reporter: Reporter, deployment: int, plan: dict[str, Any]) -> None:
        try:
            host_plan = self._host_plan(decode(plan), deployment)
        except ApplyError as exc:
            refused: DriftArgs = {"deployment": deployment, "missing": [str(exc)], "extra": []}
            reporter.report(ControlTask.DRIFT, **refused)
            return
        missing, extra = drift(self.executor, host_plan)
        found: DriftArgs = {"deployment": deployment, "missing": missing, "extra": extra}
        reporter.report(ControlTask.DRIFT, **found)

    def _sweep(self, reporter: Reporter, live: list[str]) -> dict[str, Any]:
        removed = self.executor.sweep(live)
        for line in removed:
            log.info("sweep removed %s", line)
        return {"removed": removed}

    # --- exec and terminals ---------------------------------------------------------------

    def _exec(
        self,
        reporter: Reporter,
        deployment: int,
        token: str,
        node: str,
        argv: list[str],
        timeout: float,
    ) -> dict[str, Any]:
        journal = self.executor.journal
        found = journal.node(token, node) if token == naming.deployment_token(deployment) else None
        if found is None:
            return {"exit": 127, "stdout": "", "stderr": f"no running node {node!r} in {token}"}
        if not alive(found.init):  # lminit checks again as it enters, by pidfd
            gone = f"node {node!r} of {token} is not running: its init is gone\n"
            return {"exit": 127, "stdout": "", "stderr": gone}
        data_dir = self.executor.data_dir
        processes = Processes(lminit_path(data_dir), data_dir)
        spawn = found.spawn
        env = {"HOSTNAME": spawn.hostname, **dict(spawn.environment)}
        try:
            done = processes.run(
                found.init, Cgroups().procs_files(spawn.cgroup), argv, env, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            return {
                "exit": 124,
                "stdout": _text(exc.stdout),
                "stderr": _text(exc.stderr) + f"timed out after {timeout:g} s\n",
            }
        return {"exit": done.returncode, "stdout": _text(done.stdout), "stderr": _text(done.stderr)}

    def terminal_open(self, session: str, token: str, node: str, cols: int, rows: int) -> bool:
        found = self.executor.journal.node(token, node)
        if found is None or self.terminals is None or not alive(found.init):
            log.warning("terminal %s: node %r of %s is not running", session, node, token)
            return False
        self.terminals.open(session, found.init, found.spawn, cols, rows)
        return True


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    raw = data.encode() if isinstance(data, str) else data
    return raw[:MAX_OUTPUT].decode(errors="replace")


def _token_of(kwargs: dict[str, object]) -> str | None:
    deployment = kwargs.get("deployment")
    return naming.deployment_token(deployment) if isinstance(deployment, int) else None
