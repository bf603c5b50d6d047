"""Writes on deployments: the record, its one status transition, and what agents report.

Every status change goes through `deployment_transition`, which locks the row, checks the
transitions table against the status in the database and publishes `deployment.status`
after commit. Reports from agents (`*_record`) are idempotent: a duplicate delivery, or a
report that no longer fits the deployment's status, changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from labmgr import events
from labmgr.deployments import dispatch
from labmgr.deployments.choices import (
    ALLOWED_TRANSITIONS,
    FINISHED_STATES,
    DeploymentStatus,
    StepStatus,
)
from labmgr.deployments.models import (
    Deployment,
    DeploymentHost,
    DeploymentNode,
    DeploymentStep,
    VniAllocation,
)
from labmgr.errors import Conflict
from labmgr.hosts.models import Host
from labmgr.labs import spec
from labmgr.labs.models import Lab
from labplan import codec, compiler, naming
from labplan import labfile as labfile_module
from labplan.model import Labfile

log = logging.getLogger(__name__)

LOCAL_HOST = "local"
S = DeploymentStatus
# Automatic VNIs start above the small numbers people pick by hand in labfiles.
VNI_FIRST = 100_000
VNI_LAST = 2**24 - 1
# Step statuses as agents word them.
AGENT_STEP_STATUS = {
    "started": StepStatus.STARTED,
    "running": StepStatus.STARTED,
    "done": StepStatus.SUCCEEDED,
    "succeeded": StepStatus.SUCCEEDED,
    "ok": StepStatus.SUCCEEDED,
    "failed": StepStatus.FAILED,
    "errored": StepStatus.ERRORED,
    "rolled back": StepStatus.ROLLED_BACK,
    "rolled_back": StepStatus.ROLLED_BACK,
}


def deployment_create(
    *,
    lab: Lab,
    owner: Any,
    host: Host | None = None,
    labfile: Labfile | None = None,
    hosts: Sequence[Host] = (),
) -> Deployment:
    """A PENDING deployment holding a snapshot of the lab's labfile and its compiled plan,
    placed on `hosts` (default: `host` alone); `host` is the first of them, where nodes
    that name no host run.

    The plan names every kernel object after the deployment's id, so the row is created
    first and the plan filled in within the same transaction.
    """
    labfile = labfile or spec.lab_to_labfile(lab)
    placed = list(hosts) or ([host] if host else [])
    with transaction.atomic():
        deployment = Deployment.objects.create(lab=lab, owner=owner, host=host)
        DeploymentHost.objects.bulk_create(
            DeploymentHost(deployment=deployment, host=h) for h in placed
        )
        deployment.token = naming.deployment_token(deployment.pk)
        deployment_compile(deployment=deployment, labfile=labfile, hosts=placed)
        deployment.save(update_fields=["token", "labfile", "plan", "indexes", "updated"])
        names = ", ".join(str(h) for h in placed) or LOCAL_HOST
        deployment_step_add(
            deployment=deployment,
            name="created",
            status=StepStatus.SUCCEEDED,
            message=f"Plan compiled for {names}.",
        )
    return deployment


def deployment_compile(
    *, deployment: Deployment, labfile: Labfile, hosts: Sequence[Host] | None = None
) -> None:
    """Fill in the deployment's snapshot and plan from `labfile` (not saved), for the
    `hosts` it is placed on (default: its first host alone). Overlay networks keep the
    VNIs they hold and new ones get free VNIs; nodes and networks keep their kernel names;
    call inside a transaction."""
    host = deployment.host
    previous = compiler.Indexes.from_dict(deployment.indexes) if deployment.indexes else None
    indexes = compiler.assign_indexes(labfile, previous)
    plan = compiler.compile_plan(
        labfile,
        deployment=deployment.pk,
        default_host=host.slug if host else LOCAL_HOST,
        underlay=underlay_addresses(hosts if hosts is not None else [host] if host else []),
        vnis=vni_allocate(deployment=deployment, labfile=labfile),
        indexes=indexes,
    )
    deployment.labfile = labfile_module.dump(labfile)
    deployment.plan = codec.plan_to_dict(plan)
    deployment.indexes = indexes.as_dict()
    deployment.compiled = plan


def underlay_addresses(hosts: Sequence[Host]) -> dict[str, str]:
    """Each host's VXLAN underlay address, for the hosts that have one."""
    return {h.slug: address for h in hosts if (address := h.underlay_address)}


def vni_allocate(*, deployment: Deployment, labfile: Labfile) -> dict[str, int]:
    """The VNI of each overlay network: the labfile's own, else the one the deployment
    already holds, else the lowest free one. Refused when another deployment holds it."""
    overlays = {n.name: n for n in labfile.networks if n.driver == "overlay"}
    held = dict(VniAllocation.objects.filter(deployment=deployment).values_list("network", "vni"))
    VniAllocation.objects.filter(deployment=deployment).exclude(network__in=overlays).delete()
    wanted = {name: net.vni or held.get(name) for name, net in overlays.items()}
    taken = set(VniAllocation.objects.exclude(deployment=deployment).values_list("vni", flat=True))
    for name, vni in wanted.items():
        if vni is not None and vni in taken:
            raise Conflict.for_field(
                f"networks.{name}.vni", f"VNI {vni} is in use by another deployment."
            )
    free = (v for v in range(VNI_FIRST, VNI_LAST + 1) if v not in taken)
    used = {v for v in wanted.values() if v is not None}
    result: dict[str, int] = {}
    for name in sorted(wanted):
        vni = wanted[name]
        if vni is None:
            vni = next(v for v in free if v not in used)
            used.add(vni)
        result[name] = vni
        if held.get(name) != vni:
            VniAllocation.objects.update_or_create(
                deployment=deployment, network=name, defaults={"vni": vni}
            )
    return result


def deployment_transition(
    *, deployment: Deployment, to: DeploymentStatus | str, reason: str = ""
) -> Deployment:
    """Move the deployment to status `to` if the transitions table allows it from the
    status it has in the database (locked, so two workers cannot both move it)."""
    target = DeploymentStatus(to)
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
        current = DeploymentStatus(locked.status)
        if target not in ALLOWED_TRANSITIONS[current]:
            raise Conflict.for_field(
                "status", f"A {current.label.lower()} deployment cannot become {target.value}."
            )
        _move(locked, current, target, reason)
    deployment.status, deployment.finished = locked.status, locked.finished
    deployment.unknown_from, deployment.updated = locked.unknown_from, locked.updated
    return deployment


def deployment_advance(
    *, deployment_id: int, to: DeploymentStatus, reason: str = "", only_from: frozenset[str]
) -> bool:
    """Move to `to` if the deployment is in one of `only_from` and the table allows it;
    False (and nothing changed) otherwise. The form reports from agents and beat tasks
    use, which may arrive twice or late."""
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().filter(pk=deployment_id).first()
        if locked is None:
            return False
        current = DeploymentStatus(locked.status)
        if current not in only_from or to not in ALLOWED_TRANSITIONS[current]:
            return False
        _move(locked, current, to, reason)
    return True


def _move(
    locked: Deployment, current: DeploymentStatus, target: DeploymentStatus, reason: str
) -> None:
    locked.status = target
    fields = ["status", "unknown_from", "updated"]
    locked.unknown_from = current if target == S.UNKNOWN else ""
    if target in FINISHED_STATES:
        locked.finished = timezone.now()
        fields.append("finished")
    locked.save(update_fields=fields)
    if target in (S.DESTROYED, S.CANCELLED):
        # Nothing of it is left in any kernel: its VNIs are free for others.
        locked.vnis.all().delete()
    message = f"{current.value} -> {target.value}" + (f": {reason}" if reason else "")
    deployment_step_add(
        deployment=locked, name="status", status=StepStatus.SUCCEEDED, message=message
    )
    events.publish(
        [events.lab_group(locked.lab_id)],
        {
            "type": "deployment.status",
            "lab": locked.lab_id,
            "deployment": locked.pk,
            "status": target.value,
            "reason": reason,
            "host": locked.host.slug if locked.host else None,
            "drift": locked.drift,
        },
    )


def deployment_step_add(
    *,
    deployment: Deployment,
    name: str,
    status: StepStatus,
    message: str = "",
    **agent_fields: Any,
) -> DeploymentStep:
    """Append a step to the deployment's log; call inside a transaction holding its lock
    when several writers may log at once."""
    last = deployment.steps.aggregate(last=Max("seq"))["last"]
    return DeploymentStep.objects.create(
        deployment=deployment,
        seq=(last or 0) + 1,
        name=name,
        status=status,
        message=message,
        **agent_fields,
    )


def deployment_job_sent(*, deployment: Deployment) -> None:
    """Note that a job (apply, destroy) is on its way to the agent: its steps get a new
    job number and the stuck-deployment clock restarts."""
    deployment.job += 1
    deployment.dispatched = timezone.now()
    deployment.save(update_fields=["job", "dispatched", "updated"])


# --- what agents report ---------------------------------------------------------------


def deployment_step_record(
    *,
    deployment_id: int,
    seq: int,
    total: int,
    name: str,
    target: str,
    status: str,
    message: str,
    seconds: float,
    host: str = "",
) -> DeploymentStep | None:
    """Store a step the agent of `host` reported (once, however often it is delivered)
    and publish it. The first news of a pending deployment means its agent has started:
    DEPLOYING."""
    step_status = AGENT_STEP_STATUS.get(status.lower(), StepStatus.ERRORED)
    if step_status == StepStatus.ERRORED and status.lower() not in AGENT_STEP_STATUS:
        message = f"[{status}] {message}"
    deployment_advance(
        deployment_id=deployment_id,
        to=S.DEPLOYING,
        reason="the agent started",
        only_from=frozenset({S.PENDING}),
    )
    try:
        with transaction.atomic():
            locked = Deployment.objects.select_for_update().filter(pk=deployment_id).first()
            if locked is None:
                log.warning("step %s for unknown deployment %s ignored", seq, deployment_id)
                return None
            reported = locked.steps.filter(
                host=host[:50], job=locked.job, agent_seq=seq, status=step_status
            )
            if reported.exists():
                return None
            step = deployment_step_add(
                deployment=locked,
                name=name[:100],
                status=step_status,
                message=message,
                host=host[:50],
                job=locked.job,
                agent_seq=seq,
                total=total,
                target=target[:200],
                seconds=seconds,
            )
            locked.heard = timezone.now()
            locked.save(update_fields=["heard", "updated"])
    except IntegrityError:
        return None  # the same step, delivered twice at once: the other delivery stored it
    events.publish(
        [events.lab_group(locked.lab_id)],
        {
            "type": "deployment.step",
            "lab": locked.lab_id,
            "deployment": locked.pk,
            "seq": step.seq,
            "name": step.name,
            "target": step.target,
            "status": step.status,
            "message": step.message,
            "total": step.total,
            "seconds": step.seconds,
            "host": step.host or None,
        },
    )
    return step


def deployment_result_record(
    *,
    deployment_id: int,
    action: str,
    ok: bool,
    error: str,
    nodes: list[dict[str, Any]],
    host: str = "",
) -> bool:
    """Move the status machine on the result of the agent of `host`; True when it
    changed something.

    An apply result counts while the deployment is being deployed, a destroy result while
    it is being destroyed; anything else is a duplicate or overtaken (e.g. a cancel), and
    changes nothing. A deployment placed on several hosts waits for each one's result
    (`_spread_result_record`).
    """
    if host and action in ("apply", "destroy") and _spread(deployment_id):
        return _spread_result_record(
            deployment_id=deployment_id, host=host, action=action, ok=ok, error=error, nodes=nodes
        )
    reason = error or ""
    if action == "apply":
        _agent_started(deployment_id)
        target = S.RUNNING if ok else S.FAILED
        accepted = frozenset({S.DEPLOYING, S.UNKNOWN})
    elif action == "destroy":
        target = S.DESTROYED if ok else S.FAILED
        accepted = frozenset({S.DESTROYING, S.UNKNOWN})
    else:
        log.warning("result of unknown action %r for deployment %s", action, deployment_id)
        return False
    with transaction.atomic():
        changed = deployment_advance(
            deployment_id=deployment_id, to=target, reason=reason, only_from=accepted
        )
        if changed and action == "apply" and ok:
            deployment_nodes_store(deployment_id=deployment_id, nodes=nodes, host=host)
    return changed


def _agent_started(deployment_id: int) -> None:
    """A pending deployment whose apply result arrives before its first step was processed
    has been started by its agent: DEPLOYING first, so the result finds it there."""
    deployment_advance(
        deployment_id=deployment_id,
        to=S.DEPLOYING,
        reason="the agent started",
        only_from=frozenset({S.PENDING}),
    )


def _spread(deployment_id: int) -> bool:
    return DeploymentHost.objects.filter(deployment_id=deployment_id).count() > 1


def _spread_result_record(
    *,
    deployment_id: int,
    host: str,
    action: str,
    ok: bool,
    error: str,
    nodes: list[dict[str, Any]],
) -> bool:
    """One host's result for a deployment placed on several: stored once, for the job it
    was sent last. RUNNING once every host applied its part, DESTROYED once every host
    destroyed it. A failed apply fails the deployment and sends every host a destroy, so
    no part of a half-built lab is left on any host."""
    if action == "apply":
        _agent_started(deployment_id)
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().filter(pk=deployment_id).first()
        if locked is None:
            return False
        placements = list(locked.placements.select_related("host"))
        mine = next((p for p in placements if p.host.slug == host), None)
        if mine is None or mine.action != action or mine.ok is not None:
            return False  # not awaited: delivered twice, or overtaken by a later job
        mine.ok, mine.error = ok, error
        mine.save(update_fields=["ok", "error"])
        locked.heard = timezone.now()
        locked.save(update_fields=["heard", "updated"])
        if action == "apply" and ok:
            deployment_nodes_store(deployment_id=deployment_id, nodes=nodes, host=host, spread=True)
        if not ok:
            return _spread_failed(locked, placements, host=host, action=action, error=error)
        if any(p.ok is not True for p in placements):
            return True  # stored; other hosts are still at work
        done = S.RUNNING if action == "apply" else S.DESTROYED
        wanted = S.DEPLOYING if action == "apply" else S.DESTROYING
        return deployment_advance(
            deployment_id=deployment_id,
            to=done,
            reason=f"every host ({', '.join(p.host.slug for p in placements)}) is done",
            only_from=frozenset({wanted, S.UNKNOWN}),
        )


def _spread_failed(
    locked: Deployment, placements: list[DeploymentHost], *, host: str, action: str, error: str
) -> bool:
    wanted = S.DEPLOYING if action == "apply" else S.DESTROYING
    reason = f"host {host}: {error}" if error else f"host {host} failed"
    if action == "apply":
        reason += "; every host removes its part"
    failed = deployment_advance(
        deployment_id=locked.pk,
        to=S.FAILED,
        reason=reason,
        only_from=frozenset({wanted, S.UNKNOWN}),
    )
    if failed and action == "apply":
        deployment_hosts_destroy(deployment=locked, placements=placements)
    return failed


def deployment_hosts_await(
    *, deployment: Deployment, action: str, placements: Sequence[DeploymentHost] = ()
) -> None:
    """Note that each host of a deployment placed on several (or those of `placements`)
    was sent `action`: its result is awaited."""
    query = DeploymentHost.objects.filter(deployment=deployment)
    if placements:
        query = query.filter(pk__in=[p.pk for p in placements])
    query.update(action=action, ok=None, error="")


def deployment_hosts_destroy(
    *, deployment: Deployment, placements: Sequence[DeploymentHost]
) -> None:
    """Send each host a destroy of its part (after commit); call holding the row's lock."""
    deployment_job_sent(deployment=deployment)
    deployment_hosts_await(deployment=deployment, action="destroy", placements=placements)
    slugs, pk, token = [p.host.slug for p in placements], deployment.pk, deployment.token

    def send() -> None:
        for slug in slugs:
            try:
                dispatch.destroy(host=slug, deployment=pk, token=token)
            except Exception:  # the heartbeat's sweep removes it once the host is back
                log.exception("could not send host %s the destroy of deployment %s", slug, pk)

    transaction.on_commit(send)


NOTE_LENGTH = 1000  # characters of an agent's note about a node that are kept


def deployment_nodes_store(
    *, deployment_id: int, nodes: list[dict[str, Any]], host: str = "", spread: bool = False
) -> None:
    """Replace the record of the deployment's nodes (`spread`, on a deployment placed on
    several hosts: of its nodes on `host`) with what the agent of `host` observed."""
    stored = DeploymentNode.objects.filter(deployment_id=deployment_id)
    if not host:  # an agent that does not say which host it is: the deployment's one
        host = (
            Deployment.objects.filter(pk=deployment_id).values_list("host__slug", flat=True).first()
            or ""
        )
    if spread:
        stored = stored.filter(host=host)
    stored.delete()
    DeploymentNode.objects.bulk_create(
        DeploymentNode(
            deployment_id=deployment_id,
            host=host[:50],
            name=str(node.get("name") or node.get("node") or "")[:31],
            pid=_int_or_none(node.get("pid")),
            netns=str(node.get("netns") or "")[:15],
            interfaces=[
                _interface(i) for i in node.get("interfaces") or [] if isinstance(i, Mapping)
            ],
            note=str(node.get("note") or "")[:NOTE_LENGTH],
        )
        for node in nodes
        if isinstance(node, Mapping)
    )


def _drift_merged(locked: Deployment, host: str, found: dict[str, list[str]]) -> dict[str, Any]:
    if not _spread(locked.pk):
        return found
    previous = locked.drift if isinstance(locked.drift, dict) else {}
    by_host = {**(previous.get("hosts") or {}), host: found}
    return {
        "missing": sorted({m for h in by_host.values() for m in h["missing"]}),
        "extra": sorted({e for h in by_host.values() for e in h["extra"]}),
        "hosts": by_host,
    }


def _interface(data: Mapping[str, Any]) -> dict[str, Any]:
    addresses = data.get("addresses") or []
    return {
        "ifname": str(data.get("ifname") or data.get("name") or ""),
        "mac": str(data.get("mac") or ""),
        "addresses": [str(a) for a in addresses] if isinstance(addresses, list) else [],
    }


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


def deployment_drift_record(
    *, deployment_id: int, missing: list[str], extra: list[str], host: str = ""
) -> bool:
    """Store what the agent of `host` found missing or extra in the kernel and publish
    it. On a deployment placed on several hosts each host's findings are kept under
    `hosts` and `missing`/`extra` are their union."""
    with transaction.atomic():
        locked = Deployment.objects.select_for_update().filter(pk=deployment_id).first()
        if locked is None:
            return False
        found = {"missing": sorted(map(str, missing)), "extra": sorted(map(str, extra))}
        locked.drift = _drift_merged(locked, host, found) if host else found
        locked.drift_checked = locked.heard = timezone.now()
        locked.save(update_fields=["drift", "drift_checked", "heard", "updated"])
        events.publish(
            [events.lab_group(locked.lab_id)],
            {
                "type": "deployment.status",
                "lab": locked.lab_id,
                "deployment": locked.pk,
                "status": locked.status,
                "reason": "drift checked",
                "host": locked.host.slug if locked.host else None,
                "drift": locked.drift,
            },
        )
    return True
