"""What this host's kernel holds of a deployment, read back: its nodes now (`status`, for
`python -m workers status`) and how it differs from a plan (`drift`, for the `check` job).
"""

from __future__ import annotations

from labplan import ops
from workers.executor import Executor, NodeReport
from workers.journal import Record


def status(
    executor: Executor, token: str
) -> tuple[Record | None, list[NodeReport], dict[str, bool]]:
    """The journal, the nodes with their interfaces now, and whether each init lives."""
    record = executor.journal.read(token)
    if record is None:
        return None, [], {}
    plan = record.host_plan()
    spawns = [op for op in plan.ops if isinstance(op, ops.SpawnNode)] if plan else []
    driver = executor.driver()
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
            reports.append(NodeReport(op.node, process.pid if process else 0, op.netns, interfaces))
    finally:
        driver.close()
    return record, reports, alive


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
                if record is not None and op.node in record.stopped:
                    continue  # stopped on purpose (a live change), not drift
                if process is None or not driver.alive(process):
                    stopped.append(f"node {op.node} (not running)")
    finally:
        driver.close()
    missing = [f"netns {n}" for n in sorted(want_netns - have_netns)]
    missing += [f"link {n}" for n in sorted(want_links - have_links)]
    extra = [f"netns {n}" for n in sorted(have_netns - want_netns)]
    extra += [f"link {n}" for n in sorted(have_links - want_links)]
    return missing + stopped, extra
