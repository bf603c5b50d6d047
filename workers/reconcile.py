"""Making the kernel and the control plane agree: on start, finishing what a crash cut
short (so every deployment ends RUNNING or FAILED, never stuck), and comparing the kernel
with a plan (drift).

A job the job log shows "started" is run again with its own arguments: the executor is
idempotent, so an apply converges (or fails and rolls back) and a destroy completes, and
the result is reported and recorded under the job's task id, which then answers the
message's redelivery. A journal still "applying" with no such job (an apply by hand) is
converged the same way from the plan it holds.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from labplan import naming, ops
from labplan.envelope import Refused
from workers.executor import Executor

if TYPE_CHECKING:
    from workers.tasks import Agent

log = logging.getLogger("labmgr.agent")

RERUN = ("apply", "destroy", "check", "sweep")  # an exec's caller gave up long ago


def reconcile_on_start(agent: Agent) -> list[str]:
    """Finish every job and apply a crash left half-done; what was done, as lines.

    A kept job runs again only while the control plane still vouches for it: its
    message must still open with this host's key and be fresh (an agent restarted under
    another install, whose key differs, or long after, drops it). What a dropped apply
    left half-built is removed, as a failed apply's rollback would have."""
    done: list[str] = []
    dropped: set[str] = set()
    agent.jobs.prune()
    for task_id, entry in agent.jobs.started():
        job, kwargs = str(entry.get("job")), dict(entry.get("kwargs") or {})
        if job not in RERUN:
            agent.jobs.finish(task_id, [], {"exit": -1, "stdout": "", "stderr": "agent restarted"})
            continue
        signed = entry.get("signed")
        if agent.signer is not None:
            try:
                kwargs = agent.signer.open(f"labmgr.agent.{job}", signed, task_id).kwargs
            except Refused as exc:
                log.warning("reconcile: %s %s is not run again: %s", job, task_id, exc)
                agent.jobs.finish(task_id, [], None)
                if job == "apply" and (token := _token_of(kwargs)) is not None:
                    dropped.add(token)
                done.append(f"{job} {task_id} not run again: {exc}")
                continue
        log.info("reconcile: running %s %s again after a restart", job, task_id)
        agent.run(task_id, job, kwargs, signed if isinstance(signed, dict) else None)
        done.append(f"{job} {task_id} run again")
    for token in agent.executor.journal.tokens():
        record = agent.executor.journal.read(token)
        deployment = naming.deployment_from_token(token)
        if record is None or record.state == "applied" or deployment is None:
            continue
        if "plan" not in record.header or token in dropped:
            # A journal cut before its header, or the half of an apply nobody wants now.
            agent.executor.destroy(token)
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
        agent.run(None, "apply", kwargs)
        done.append(f"apply {token} converged")
    return done


def _token_of(kwargs: dict[str, object]) -> str | None:
    deployment = kwargs.get("deployment")
    return naming.deployment_token(deployment) if isinstance(deployment, int) else None


def drift(executor: Executor, plan: ops.HostPlan) -> tuple[list[str], list[str]]:
    """What the plan has that the kernel lacks, and what the kernel has of the deployment
    that the plan does not: namespaces, host-side links, running node inits."""
    prefix = plan.deployment + "-"
    want_netns = {op.netns for op in plan.ops if isinstance(op, ops.CreateNetns)}
    want_links = {
        op.name
        for op in plan.ops
        if isinstance(op, ops.CreateBridge | ops.CreateVethPair | ops.CreateVxlan)
    }
    record = executor.journal.read(plan.deployment)
    driver = executor.driver()
    try:
        have_netns = set(driver.netns_names(prefix))
        have_links = {name for name, _ in driver.host_links() if name.startswith(prefix)}
        stopped = []
        for op in plan.ops:
            if isinstance(op, ops.SpawnNode):
                process = record.nodes.get(op.node) if record is not None else None
                if process is None or not driver.alive(process):
                    stopped.append(f"node {op.node} (not running)")
    finally:
        driver.close()
    missing = [f"netns {n}" for n in sorted(want_netns - have_netns)]
    missing += [f"link {n}" for n in sorted(want_links - have_links)]
    extra = [f"netns {n}" for n in sorted(have_netns - want_netns)]
    extra += [f"link {n}" for n in sorted(have_links - want_links)]
    return missing + stopped, extra
